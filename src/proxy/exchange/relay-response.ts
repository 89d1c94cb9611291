/**
 * Writes an upstream's answer to the client: the head and every held chunk in one write, then
 * the rest of the body as it comes, with backpressure both ways. The only writer of a relayed
 * response; the try (upstream-try.ts) only hands it bytes.
 */
import type { ServerResponse } from 'node:http';
import type { BodySink, UpstreamTry } from '../upstream/upstream-try.ts';

/** How a relayed response ended for the client. */
export type RelayOutcome =
  /** the client has the whole body */
  | 'complete'
  /** the body broke or stalled after the head went out: the client sees it broken */
  | 'body-cut'
  /** the client went away first */
  | 'client-gone';

/**
 * The outcome itself when the body was all there (most small answers): no promise to make and
 * await for what is already known.
 */
export function relayResponse(
  body: UpstreamTry,
  res: ServerResponse,
  status: number,
  headers: string[],
): RelayOutcome | Promise<RelayOutcome> {
  res.writeHead(status, headers);
  const held = body.takeHeld();
  res.cork();
  for (const chunk of held) res.write(chunk);
  res.uncork();
  const end = body.bodyEnd;
  if (end instanceof Error) {
    res.destroy(end);
    return 'body-cut';
  }
  if (end === 'ended') {
    res.end();
    return 'complete';
  }
  // nothing of the body yet (a stream that starts later): the client gets the head now
  if (held.length === 0) res.flushHeaders();
  return new Promise((resolve) => {
    const writer = new ClientWriter(res, body, resolve);
    body.stream(writer, res.writableNeedDrain);
  });
}

class ClientWriter implements BodySink {
  readonly #res: ServerResponse;
  #settle: ((outcome: RelayOutcome) => void) | undefined;

  constructor(res: ServerResponse, body: UpstreamTry, settle: (outcome: RelayOutcome) => void) {
    this.#res = res;
    this.#settle = settle;
    res.on('drain', () => body.resume());
    res.on('close', () => {
      if (this.#settle === undefined) return;
      body.cancel();
      this.#done('client-gone');
    });
  }

  write(chunk: Buffer): boolean {
    return this.#res.write(chunk);
  }

  end(): void {
    this.#res.end();
    this.#done('complete');
  }

  fail(error: Error): void {
    // the head (maybe part of the body) went out: the client must see a broken response,
    // never a clean end
    this.#done('body-cut');
    this.#res.destroy(error);
  }

  #done(outcome: RelayOutcome): void {
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.(outcome);
  }
}
