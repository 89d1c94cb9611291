/**
 * A real loopback HTTPS upstream (node:https) that follows a script of steps, as
 * `startUpstream` does for plain HTTP, and counts the TLS handshakes it completed.
 *
 *   const up = await startHttpsUpstream([reply(503), reply(200, 'ok')], { cert, key });
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { closeLater } from './close-after-each.ts';
import type { Seen, Step, Upstream } from './upstream.ts';

export interface HttpsUpstreamOptions {
  /** PEM server certificate and key. */
  readonly cert: string;
  readonly key: string;
  /** Demand a client certificate signed by this PEM CA. */
  readonly clientCa?: string;
}

export interface HttpsUpstream extends Upstream {
  /** Handshakes completed (full or resumed). */
  readonly handshakes: number;
  /** Of those, resumed from a session. */
  readonly resumed: number;
  /** The client certificate subject CN of each request's connection, if one was presented. */
  readonly clientNames: (string | undefined)[];
}

export async function startHttpsUpstream(
  script: Step[],
  options: HttpsUpstreamOptions,
): Promise<HttpsUpstream> {
  const seen: Seen[] = [];
  const clientNames: (string | undefined)[] = [];
  let connections = 0;
  let heads = 0;
  let handshakes = 0;
  let resumed = 0;
  const sockets = new Set<TLSSocket>();
  const ids = new WeakMap<object, number>();
  const server: Server = createServer(
    {
      cert: options.cert,
      key: options.key,
      ...(options.clientCa !== undefined && {
        ca: options.clientCa,
        requestCert: true,
        rejectUnauthorized: true,
      }),
    },
    (req, res) => {
      heads++;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const index = seen.length;
        const socket = req.socket as TLSSocket;
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body,
          connection: ids.get(socket) ?? 0,
        });
        const peer = socket.getPeerCertificate();
        const name = peer?.subject?.CN;
        clientNames.push(Array.isArray(name) ? name[0] : name);
        const step = script[Math.min(index, script.length - 1)] as Step;
        step(req, res, body);
      });
    },
  );
  server.on('connection', () => {
    connections++;
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    handshakes++;
    if (socket.isSessionReused()) resumed++;
    ids.set(socket, handshakes);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `https://127.0.0.1:${port}`,
    authority: `127.0.0.1:${port}`,
    seen,
    clientNames,
    get heads() {
      return heads;
    },
    get connections() {
      return connections;
    },
    get handshakes() {
      return handshakes;
    },
    get resumed() {
      return resumed;
    },
    close: closeLater(async () => {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }),
  };
}
