/**
 * Config text loaded as if from a file in a TLS fixture's directory, so the PEM paths it names
 * resolve there; errors come back as `file:line:col: key: message` lines without that directory.
 */
import { ConfigError } from '../../src/config/config-error.ts';
import { loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import type { TlsFixture } from './tls.ts';

export interface FixtureConfig {
  /** Compiles `version: 1` and these lines; throws on a bad config. */
  load(...lines: string[]): Config;
  /** The errors of `version: 1` and these lines; [] when they compile. */
  errorsOf(...lines: string[]): string[];
}

/** `fixture` is read on each call: a suite's beforeAll may make it after this is called. */
export function configInFixture(fixture: () => TlsFixture): FixtureConfig {
  const load = (...lines: string[]): Config =>
    loadConfigText(['version: 1', ...lines].join('\n'), fixture().file('c.yaml'));
  const errorsOf = (...lines: string[]): string[] => {
    try {
      load(...lines);
    } catch (error) {
      if (error instanceof ConfigError) {
        return error.format().map((line) => line.replaceAll(`${fixture().dir}/`, ''));
      }
      throw error;
    }
    return [];
  };
  return { load, errorsOf };
}
