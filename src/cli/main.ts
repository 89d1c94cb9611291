#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --expose-gc --max-semi-space-size=4 --max-old-space-size=160 --initial-old-space-size=48
/**
 * The command line: `reprise [--config FILE]`, `reprise check FILE`,
 * `reprise explain [--config FILE] METHOD URL [-H 'K: V']…`, `reprise demo-upstream`.
 * The only place that exits.
 * User errors print one line (no stack); anything unexpected prints the stack.
 *
 * The first line holds the memory settings of a small long-lived process, which V8 and glibc
 * read only at process start: `npx reprise` runs it as it is, and `npm start` and the image's
 * ENTRYPOINT repeat it (test/unit/runtime-settings.test.ts keeps the three in step). Without
 * them, V8 sizes its heap for the machine (semi-spaces up to 64 MiB, an old generation up to a
 * quarter of RAM) and glibc keeps one malloc arena per thread: under sustained load RSS climbs
 * past 200 MiB and stays there. With them it stays near 100 MiB (`npm run bench`, scenario 7).
 * An old-space limit alone makes V8 grow the old generation in small steps, so a full GC runs
 * every few MiB of promoted or external memory: 256 KiB PUTs took 1.4-2x the CPU per request
 * (139 full GCs in 10 s). Starting the old generation's limit at 48 MiB puts that back (8 full
 * GCs, the CPU of no limit at all) at about 10 MiB more RSS under load. 160 MiB rather than
 * less keeps room for 30,000 idle client connections (about 4 KiB of heap each).
 * Semi-spaces of 4 MiB: against 2, two proxies side by side took 8.5% less CPU per 1 KiB GET
 * (73 against 80 µs) and the same per 256 KiB PUT, for a peak under load of 123 MiB, not 113;
 * 8 raised the peak to 136 MiB and slowed 256 KiB PUTs below the bare reference's rate.
 * `--expose-gc` lets src/quiet-collector.ts give memory back once traffic has stopped.
 */
import { parseArgs } from 'node:util';
import { type App, startApp } from '../app.ts';
import { embeddedDefaults } from '../config/compile.ts';
import { ConfigError } from '../config/config-error.ts';
import { tlsFilePaths } from '../config/tls-files.ts';
import type { Config } from '../config/types.ts';
import { watchConfigFiles } from '../config/watch.ts';
import { createLogger, flushLogs, type Logger, logConfigError, logConfigLoaded } from '../log.ts';
import { VERSION } from '../version.ts';

// The YAML parser, the schema library and explain load only when a command needs them (the
// bundle keeps them in chunks of their own): a proxy started on the embedded defaults never
// pays their memory (about 5 MiB of RSS) or their start-up time.
const configLoader = () => import('../config/load.ts');

async function loadConfig(file: string | undefined): Promise<Config> {
  if (file === undefined) return embeddedDefaults();
  return (await configLoader()).loadConfigFile(file);
}

const USAGE = `usage:
  reprise [--config FILE]                       run the proxy (also REPRISE_CONFIG=FILE)
  reprise check FILE                            validate a config file
  reprise explain [--config FILE] METHOD URL [-H 'Name: value']…
                                                what reprise would do with such a request
  reprise demo-upstream                         a flaky upstream on 127.0.0.1:8503 to try
                                                retries with (README, "Set up")
  reprise --version
  reprise --help`;

/** A mistake by the user: one line on stderr, exit 1. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  if (command === 'check') return check(argv.slice(1));
  if (command === 'explain') return explain(argv.slice(1));
  if (command === 'demo-upstream') return demoUpstream(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`reprise ${VERSION}\n`);
    return 0;
  }
  return run(values.config ?? process.env.REPRISE_CONFIG);
}

async function check(args: string[]): Promise<number> {
  const file = args[0];
  if (file === undefined || args.length > 1) throw new UsageError('usage: reprise check FILE');
  const result = (await configLoader()).checkConfigFile(file);
  if (result.ok) {
    process.stdout.write('ok\n');
    return 0;
  }
  process.stderr.write(`${result.lines.join('\n')}\n`);
  return 1;
}

async function explain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      header: { type: 'string', short: 'H', multiple: true },
    },
  });
  const [method, url] = positionals;
  if (method === undefined || url === undefined || positionals.length > 2) {
    throw new UsageError("usage: reprise explain [--config FILE] METHOD URL [-H 'Name: value']…");
  }
  const config = await loadConfig(values.config ?? process.env.REPRISE_CONFIG);
  const { explainRequest, parseHeaderArgs, upstreamSettingsFromConfig } = await import(
    './explain.ts'
  );
  const headers = parseHeaderArgs(values.header ?? []);
  process.stdout.write(
    explainRequest(config, upstreamSettingsFromConfig(config), method, url, headers),
  );
  return 0;
}

async function demoUpstream(args: string[]): Promise<number> {
  if (args.length > 0) throw new UsageError('usage: reprise demo-upstream');
  const { runDemoUpstream } = await import('./demo-upstream.ts');
  try {
    return await runDemoUpstream((line) => process.stdout.write(`${line}\n`));
  } catch (err) {
    throw new UsageError(`demo-upstream cannot listen: ${(err as Error).message}`);
  }
}

async function run(file: string | undefined): Promise<number> {
  const logger = createLoggerFromEnv();
  const config = await loadConfig(file);
  let app: App;
  try {
    app = await startApp(config, { logger });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new UsageError(`cannot listen: ${(err as Error).message}`);
    }
    // tls/intercept-ca.ts' INTERCEPT_FILE_ERROR (not imported: it loads the certificate library)
    if (code === 'ERR_REPRISE_INTERCEPT_FILE') throw new UsageError((err as Error).message);
    throw err;
  }
  logConfigLoaded(logger, file);
  logger.info(
    {
      proxy: `${config.listen.host}:${app.proxyPort}`,
      admin: `${config.admin.host}:${app.adminPort}`,
      version: VERSION,
    },
    'listening',
  );

  const reload = async (): Promise<void> => {
    if (file === undefined) {
      logger.warn('no config file to reload: running on the embedded defaults');
      return;
    }
    try {
      await app.reload(await loadConfig(file));
    } catch (err) {
      // whatever went wrong, the running config keeps serving (SPEC §9): a reload never
      // takes the proxy down from a signal handler or a file watcher
      if (err instanceof ConfigError) logConfigError(logger, err.format());
      else logger.error({ err }, 'config reload failed');
      app.metrics?.configReload('error');
      return;
    }
    app.metrics?.configReload('ok');
    logConfigLoaded(logger, file);
  };
  const reloadNow = (): void => void reload();
  // a rotated certificate (a Secret update) is a reload too: the PEM files are read afresh
  const watcher =
    file === undefined
      ? undefined
      : watchConfigFiles(() => [file, ...tlsFilePaths(app.config())], reloadNow);
  process.on('SIGHUP', reloadNow);

  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        resolve(1);
        return;
      }
      stopping = true;
      watcher?.close();
      // stop() closes the listeners and turns /readyz 503 before its first await, so the
      // line below is already true when it is read
      const stopped = app.stop();
      logger.info({ signal }, 'draining');
      stopped.then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/** A bad LOG_LEVEL is a user error: one line, no stack. */
function createLoggerFromEnv(): Logger {
  try {
    // an empty LOG_LEVEL= is unset, as for most environment variables
    return createLogger({ level: process.env.LOG_LEVEL || 'info' });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function exit(code: number): never {
  flushLogs();
  process.exit(code);
}

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.format().join('\n')}\n`);
    } else if (isArgError(err)) {
      // node:util's wording, then where the right spelling is
      process.stderr.write(`reprise: ${(err as Error).message} (see reprise --help)\n`);
    } else if (err instanceof UsageError || isExplainError(err)) {
      process.stderr.write(`reprise: ${(err as Error).message}\n`);
    } else {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    }
    exit(1);
  },
);

/** explain.ts is loaded on demand, so its error class is known here by name only. */
function isExplainError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ExplainError';
}

function isArgError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}
