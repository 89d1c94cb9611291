/**
 * A client that opens a CONNECT tunnel through the proxy and speaks inside it: raw bytes, TLS
 * (node:tls with the options a test picks: SNI, ALPN, trusted CA), or HTTP/1.1 over either.
 */
import { once } from 'node:events';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { Answer } from './proxy.ts';

/** A socket past `200 Connection Established` to `authority`; rejects on any other answer. */
export async function openTunnel(proxyPort: number, authority: string): Promise<Socket> {
  const socket = netConnect(proxyPort, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  let read = Buffer.alloc(0);
  while (read.indexOf('\r\n\r\n') === -1) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    read = Buffer.concat([read, chunk]);
  }
  const end = read.indexOf('\r\n\r\n') + 4;
  const head = read.subarray(0, end).toString('latin1');
  // what came after the head is the tunnel's first bytes (a server that speaks first): kept
  // for the caller, who resumes the socket to read them
  if (end < read.length) {
    socket.pause();
    socket.unshift(read.subarray(end));
  }
  if (!head.startsWith('HTTP/1.1 200')) {
    socket.destroy();
    throw new Error(`CONNECT refused: ${head.split('\r\n')[0]}`);
  }
  return socket;
}

/** A TLS handshake inside a tunnel; rejects with the handshake's error. */
export async function tlsInTunnel(
  proxyPort: number,
  authority: string,
  options: ConnectionOptions,
): Promise<TLSSocket> {
  const socket = await openTunnel(proxyPort, authority);
  const tls = tlsConnect({ socket, ...options });
  try {
    await once(tls, 'secureConnect');
  } catch (error) {
    socket.destroy();
    throw error;
  }
  return tls;
}

export interface TunnelRequest {
  readonly method?: string;
  readonly path?: string;
  readonly body?: Buffer | string;
  readonly headers?: Record<string, string>;
}

/** One HTTP/1.1 request on a socket already inside a tunnel (plain or TLS). */
export function requestOn(
  socket: Socket,
  authority: string,
  r: TunnelRequest = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        createConnection: () => socket,
        method: r.method ?? 'GET',
        path: r.path ?? '/',
        headers: { host: authority, ...r.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            complete: res.complete,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}
