/**
 * Graceful stop of the built CLI (SPEC §9): on SIGTERM/SIGINT `/readyz` turns 503, the
 * listener refuses new connections, in-flight requests (retries included) finish with their
 * real answers within `limits.drainTimeout`, and the process exits 0; a second signal exits at once.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningCli, removeTempDirs, sleep, startCli, writeConfig } from '../helpers/cli.ts';
import { type Answer, viaProxy } from '../helpers/proxy.ts';
import {
  delayed,
  hang,
  reply,
  type Step,
  startUpstream,
  type Upstream,
} from '../helpers/upstream.ts';

let cli: RunningCli | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  if (cli !== undefined) cli.child.kill('SIGKILL');
  await cli?.exited;
  await upstream?.close();
  cli = undefined;
  upstream = undefined;
  removeTempDirs();
});

/** Starts the CLI and an upstream, sends one GET, and resolves once the upstream has it. */
async function inFlight(
  script: Step[],
  yaml = '',
): Promise<{ cli: RunningCli; answer: Promise<Answer>; sentAt: number }> {
  upstream = await startUpstream(script);
  cli = await startCli(writeConfig(yaml));
  const sentAt = Date.now();
  const answer = viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/slow`);
  answer.catch(() => {});
  while (upstream.seen.length === 0) await sleep(10);
  return { cli, answer, sentAt };
}

async function readyz(adminPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  await res.arrayBuffer();
  return res.status;
}

/** Resolves with the error code of a fresh TCP connect (undefined: it connected). */
async function connectError(port: number): Promise<string | undefined> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  } finally {
    socket.destroy();
  }
}

describe('graceful stop', () => {
  it('lets a 1.5 s request finish with its real answer, then exits 0', async () => {
    const run = await inFlight([delayed(1_500, reply(200, 'the real answer'))]);
    expect(await readyz(run.cli.adminPort)).toBe(200);
    run.cli.child.kill('SIGTERM');
    await run.cli.waitForLog((line) => line.msg === 'draining');

    const res = await run.answer;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('the real answer');
    expect(Date.now() - run.sentAt).toBeGreaterThanOrEqual(1_450);
    expect(await run.cli.exited).toEqual({ code: 0, signal: null });
    expect(run.cli.logs.filter((line) => line.msg === 'request')).toMatchObject([{ status: 200 }]);
  });

  it('answers /readyz 503 while draining', async () => {
    const run = await inFlight([delayed(1_500, reply(200, 'ok'))]);
    run.cli.child.kill('SIGTERM');
    await run.cli.waitForLog((line) => line.msg === 'draining');
    expect(await readyz(run.cli.adminPort)).toBe(503);
    expect((await run.answer).status).toBe(200);
  });

  it('refuses new connections while draining', async () => {
    const run = await inFlight([delayed(1_500, reply(200, 'ok'))]);
    expect(await connectError(run.cli.proxyPort)).toBeUndefined();
    run.cli.child.kill('SIGTERM');
    await run.cli.waitForLog((line) => line.msg === 'draining');
    expect(await connectError(run.cli.proxyPort)).toBe('ECONNREFUSED');
    expect((await run.answer).status).toBe(200);
  });

  it('stops on SIGINT the same way', async () => {
    const run = await inFlight([delayed(500, reply(200, 'ok'))]);
    run.cli.child.kill('SIGINT');
    expect((await run.answer).status).toBe(200);
    expect(await run.cli.exited).toEqual({ code: 0, signal: null });
  });

  it('finishes a request that is waiting to retry', async () => {
    const run = await inFlight(
      [reply(503), reply(200, 'healed')],
      'defaults:\n  route:\n    retry:\n      backoff: { base: 800ms, max: 800ms, jitter: none }\n',
    );
    run.cli.child.kill('SIGTERM');
    const res = await run.answer;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('healed');
    expect(res.headers['x-reprise-attempts']).toBe('2');
    expect(await run.cli.exited).toEqual({ code: 0, signal: null });
  });

  it('gives up on in-flight requests after limits.drainTimeout and still exits 0', async () => {
    const run = await inFlight([hang()], 'limits:\n  drainTimeout: 300ms\n');
    const signalledAt = Date.now();
    run.cli.child.kill('SIGTERM');
    expect(await run.cli.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(2_000);
  });

  it('exits at once on a second signal', async () => {
    const run = await inFlight([delayed(5_000, reply(200, 'too late'))]);
    run.cli.child.kill('SIGTERM');
    await run.cli.waitForLog((line) => line.msg === 'draining');
    const secondAt = Date.now();
    run.cli.child.kill('SIGTERM');
    const exit = await run.cli.exited;
    expect(Date.now() - secondAt).toBeLessThan(1_000);
    expect(exit).toEqual({ code: 1, signal: null });
    // the client never got an answer: its connection went down with the process
    expect(
      await run.answer.then(
        (res) => res.status,
        () => 'broken',
      ),
    ).toBe('broken');
  });
});
