/**
 * `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
 */

const DELTA_SECONDS = /^\d+$/;
// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms
const IMF_FIXDATE = /^[a-z]{3}, \d{2} [a-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/i;
const RFC_850 = /^[a-z]{6,9}, \d{2}-[a-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/i;
const ASCTIME = /^[a-z]{3} [a-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/i;

/**
 * Milliseconds the upstream asked to wait, measured from `nowMs` (epoch ms).
 * A date in the past gives 0; a missing or malformed value gives undefined.
 * Only the HTTP forms are accepted, not everything `Date.parse` would take (`-5`, `2024`).
 */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (DELTA_SECONDS.test(text)) return Number(text) * 1000;
  let dateMs: number;
  if (IMF_FIXDATE.test(text) || RFC_850.test(text)) dateMs = Date.parse(text);
  // asctime carries no zone; HTTP means GMT, Date.parse would read it as local time
  else if (ASCTIME.test(text)) dateMs = Date.parse(`${text} GMT`);
  else return undefined;
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}
