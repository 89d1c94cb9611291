/**
 * Calls `onChange` when the config file's content changes. Watches the file's directory, not
 * the file: a Kubernetes ConfigMap mount swaps the `..data` symlink atomically, which a watch
 * on the file itself never sees. Changes are debounced and compared by content.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';

const DEBOUNCE_MS = 100;

export interface ConfigWatcher {
  close(): void;
}

export function watchConfigFile(path: string, onChange: () => void): ConfigWatcher {
  let last = digest(path);
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    timer = undefined;
    const now = digest(path);
    if (now === last) return;
    last = now;
    onChange();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(check, DEBOUNCE_MS);
    });
    // an FSWatcher error without a listener would crash the proxy; the poll carries on alone
    watcher.on('error', () => watcher?.close());
  } catch {
    // an unwatchable directory leaves SIGHUP as the way to reload
  }
  // some filesystems (overlay, NFS) miss events: look now and then as well
  const poll = setInterval(check, 2_000);
  poll.unref();
  return {
    close(): void {
      watcher?.close();
      clearInterval(poll);
      clearTimeout(timer);
    },
  };
}

function digest(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}
