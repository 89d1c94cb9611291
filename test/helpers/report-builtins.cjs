// Preloaded with `--require`: when the process exits, writes the names of the Node built-in
// modules it loaded (internal ones included) to stderr, as one line `builtins: a b c`.
const { writeSync } = require('node:fs');

process.on('exit', () => {
  const names = process.moduleLoadList
    .filter((entry) => entry.startsWith('NativeModule '))
    .map((entry) => entry.slice('NativeModule '.length));
  writeSync(2, `builtins: ${names.join(' ')}\n`);
});
