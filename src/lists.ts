/**
 * Lists that most requests leave empty or fill with one item (tries, actions, retry reasons).
 * They start as one empty array shared by all of them, frozen so that a push meant for
 * `appended` throws in a test instead of reaching every request; the first item makes an
 * array of one (a `[]` pushed to grows to 17 slots).
 */
export const NONE: readonly never[] = Object.freeze([]);

/** `NONE` where the list is typed for `appended` to add to. */
export function emptyList<T>(): T[] {
  return NONE as never[];
}

/** `list` with `item` added: a first item makes a new array of one, later ones are pushed. */
export function appended<T>(list: T[], item: T): T[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}
