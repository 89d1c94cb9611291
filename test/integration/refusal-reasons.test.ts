/**
 * A refused request's access line says why, in the words of its answer's `message` (README
 * "Logs"): which client, which port, a denied upstream. `"error":"forbidden"` alone does not
 * tell an operator which rule fired.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

/** Sends `CONNECT authority` on a raw socket; resolves with what came back before close. */
function connectThrough(port: number, authority: string): Promise<string> {
  return rawExchange(port, `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
}

/** Writes `head` on a raw socket; resolves with what came back before close. */
function rawExchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('the reason of a 403 in the access line', () => {
  it('names the client rule for a client outside access.allowedClients', async () => {
    const proxy = await startProxy(`${FAST}access: { allowedClients: [10.0.0.0/8] }\n`);
    const answer = await viaProxy(proxy.port, 'GET', 'http://127.0.0.1:1/');
    expect(answer.status).toBe(403);
    expect(proxy.requests()).toEqual([
      expect.objectContaining({
        status: 403,
        error: 'forbidden',
        reason: 'client not in access.allowedClients',
        client: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      }),
    ]);
  });

  it('names the port for a CONNECT outside connect.allowedPorts', async () => {
    const proxy = await startProxy(FAST);
    const answer = await connectThrough(proxy.port, '127.0.0.1:8443');
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(proxy.requests()).toEqual([
      expect.objectContaining({
        method: 'CONNECT',
        status: 403,
        error: 'forbidden',
        reason: 'port 8443 is not in connect.allowedPorts',
      }),
    ]);
  });

  it('names the deny list for an upstream in access.deniedUpstreams', async () => {
    const upstream = await startUpstream([reply(200, 'ok')]);
    const proxy = await startProxy(`${FAST}access: { deniedUpstreams: [127.0.0.0/8] }\n`);
    const answer = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`);
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body.toString()).message).toBe(
      'the upstream address is in access.deniedUpstreams',
    );
    expect(proxy.requests()).toEqual([
      expect.objectContaining({
        status: 403,
        error: 'forbidden',
        reason: 'the upstream address is in access.deniedUpstreams',
      }),
    ]);
  });

  it('names the deny list for a CONNECT or an Upgrade to a denied upstream', async () => {
    const upstream = await startUpstream([reply(200, 'ok')]);
    const proxy = await startProxy(
      `${FAST}access: { deniedUpstreams: [127.0.0.0/8] }\nconnect: { allowedPorts: [${upstream.port}] }\n`,
    );
    const tunnel = await connectThrough(proxy.port, upstream.authority);
    expect(tunnel).toMatch(/^HTTP\/1\.1 403 /);
    const upgrade = await rawExchange(
      proxy.port,
      `GET ${upstream.origin}/ws HTTP/1.1\r\nhost: ${upstream.authority}\r\n` +
        'connection: upgrade\r\nupgrade: websocket\r\n\r\n',
    );
    expect(upgrade).toMatch(/^HTTP\/1\.1 403 /);
    const reason = 'the upstream address is in access.deniedUpstreams';
    expect(proxy.requests()).toEqual([
      expect.objectContaining({ method: 'CONNECT', status: 403, reason }),
      expect.objectContaining({ method: 'GET', status: 403, reason }),
    ]);
    expect(upstream.connections).toBe(0);
  });

  it('writes no reason for an answer that came from the upstream', async () => {
    const upstream = await startUpstream([reply(403, 'no')]);
    const proxy = await startProxy(FAST);
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/`)).status).toBe(403);
    expect(proxy.requests()[0]).not.toHaveProperty('reason');
  });
});
