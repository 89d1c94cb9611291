/**
 * `npm run build`: bundles src/cli/main.ts into dist/ (type checking is `npm run typecheck`).
 *
 * One bundle rather than a file per module, because a sidecar starts in every pod and lives
 * small: Node resolves, reads and compiles each module file on its own, and the resolving alone
 * (hundreds of paths for typebox and undici) got hot enough to be optimised at start-up, which
 * maps in the optimising compiler's code for good. Measured on the embedded defaults: idle RSS
 * 72.8 → 62.0 MiB, start-up with a config file 560 → 310 ms (README, "Performance").
 *
 * The code a command loads only when needed (the config loader with the YAML parser and the
 * schema library; `explain`) stays in chunks of its own, imported on demand. Whitespace is
 * minified but no name is changed, so an unexpected error's stack still reads; the source maps
 * and the bundled packages' licence notices sit beside the files.
 */
import { rmSync } from 'node:fs';
import { build, type Plugin } from 'esbuild';

const OUT = new URL('../dist/', import.meta.url).pathname;

/**
 * undici's llhttp and Milo parsers are WebAssembly held in base64 strings, about 170 KiB of
 * source each, that undici requires only when it opens its first connection, and then only
 * the one it uses. Left in the bundle, all four would sit in memory from the start; left out,
 * they load from node_modules as undici's own files.
 */
const UNDICI_WASM = /\/(llhttp|milo)\/(llhttp(_simd)?-wasm|simd|no-simd)\.js$/;

/**
 * reprise speaks HTTP/1.1 to upstreams (undici's `allowH2` is never set), but undici requires
 * node:http2 when it loads, which maps in Node's HTTP/2 and TLS code: 5 MiB of RSS that nothing
 * uses. undici is written to run where node:http2 is missing (it then uses `{ constants: {} }`),
 * so the bundle gives it exactly that.
 */
const NO_HTTP2 = 'reprise:no-http2';

/**
 * Node's built-in modules, required rather than imported: an ESM import of one builds its ESM
 * facade, which reads every export, lazy ones included (node:crypto's webcrypto, node:fs's
 * promises and with them readline), and so loads code reprise never runs.
 */
const BUILTIN = 'reprise:builtin';

const builtinsAsCommonJs: Plugin = {
  name: 'builtins-as-commonjs',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, ({ path, kind }) =>
      kind === 'import-statement' ? { path, namespace: BUILTIN } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: BUILTIN }, ({ path }) => ({
      contents: `module.exports = require(${JSON.stringify(path)});`,
      loader: 'js',
    }));
  },
};

const trimUndici: Plugin = {
  name: 'trim-undici',
  setup(b) {
    b.onResolve({ filter: UNDICI_WASM }, ({ path, importer }) => {
      if (!importer.includes('/node_modules/undici/')) return undefined;
      const [, dir, file] = path.match(/(llhttp|milo)\/([^/]+)$/) ?? [];
      return { path: `undici/lib/${dir}/${file}`, external: true };
    });
    b.onResolve({ filter: /^(node:)?http2$/ }, ({ importer }) =>
      importer.includes('/node_modules/undici/')
        ? { path: NO_HTTP2, namespace: NO_HTTP2 }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: NO_HTTP2 }, () => ({
      contents: 'module.exports = { constants: {} };',
      loader: 'js',
    }));
  },
};

rmSync(OUT, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: `${OUT}cli`,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  chunkNames: 'chunks/[name]-[hash]',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  legalComments: 'external',
  logLevel: 'warning',
  // the bundled CommonJS packages (undici, prom-client, pino) call require
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  plugins: [builtinsAsCommonJs, trimUndici],
});
