/**
 * The package version, read from package.json. `../package.json` resolves from both
 * `src/version.ts` and `dist/version.js` (the same depth), and package.json ships in every
 * npm package, so this works under tests, from the built CLI and when installed.
 */
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
