/**
 * Calls `onChange` when the content of the config file, or of a file it names (the PEM files
 * of `upstreams[].tls`), changes. Watches the files' directories, not the files: a Kubernetes
 * ConfigMap or Secret mount swaps the `..data` symlink atomically (cert-manager rotating a
 * certificate does exactly that), which a watch on the file itself never sees. Changes are
 * debounced and compared by content.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';

const DEBOUNCE_MS = 100;

export interface ConfigWatcher {
  close(): void;
}

/**
 * `paths` is asked again on every look, so the files watched follow the config in force
 * (a reload that names other PEM files moves the watch to them).
 */
export function watchConfigFiles(
  paths: () => readonly string[],
  onChange: () => void,
): ConfigWatcher {
  const watchers = new Map<string, FSWatcher | undefined>();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  };
  const watchDirectories = (current: readonly string[]): void => {
    const dirs = new Set(current.map((path) => dirname(path)));
    for (const [dir, watcher] of watchers) {
      if (dirs.has(dir)) continue;
      watcher?.close();
      watchers.delete(dir);
    }
    for (const dir of dirs)
      if (!watchers.has(dir)) watchers.set(dir, watchDirectory(dir, schedule));
  };
  let last = digest(paths());
  const check = (): void => {
    timer = undefined;
    const current = paths();
    watchDirectories(current);
    const now = digest(current);
    if (now === last) return;
    last = now;
    onChange();
  };
  watchDirectories(paths());
  // some filesystems (overlay, NFS) miss events: look now and then as well
  const poll = setInterval(check, 2_000);
  poll.unref();
  return {
    close(): void {
      for (const watcher of watchers.values()) watcher?.close();
      watchers.clear();
      clearInterval(poll);
      clearTimeout(timer);
    },
  };
}

function watchDirectory(dir: string, onEvent: () => void): FSWatcher | undefined {
  try {
    const watcher = watch(dir, { persistent: false }, onEvent);
    // an FSWatcher error without a listener would crash the proxy; the poll carries on alone
    watcher.on('error', () => watcher.close());
    return watcher;
  } catch {
    // an unwatchable directory leaves the poll and SIGHUP as the ways to reload
    return undefined;
  }
}

function digest(paths: readonly string[]): string {
  const hash = createHash('sha256');
  for (const path of paths) {
    hash.update(path);
    try {
      hash.update(createHash('sha256').update(readFileSync(path)).digest());
    } catch {
      hash.update('missing');
    }
  }
  return hash.digest('hex');
}
