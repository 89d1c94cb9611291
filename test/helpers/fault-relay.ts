/**
 * Network faults injected in user space (the kernel here has no netem):
 *
 * - `startFaultRelay(upstreamPort, [faults…])`: a TCP relay in front of a real upstream; each
 *   new connection takes the next fault of the script (the last repeats). `refuse()` kills it
 *   (open connections reset, connects refused); `restore()` listens again on the same port.
 * - `startRawUpstream(respond)`: an upstream that writes exact bytes (bad framing, odd heads).
 * - `startBlackHole()`: a port whose accept queue is full, so SYNs are dropped and connects
 *   time out (a stopped child process holds the listening socket).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export type Fault =
  | { readonly kind: 'pass' }
  /** Accepts, reads the request, never answers. */
  | { readonly kind: 'black-hole' }
  /** Forwards the request (the upstream runs it), then resets as the answer starts. */
  | { readonly kind: 'reset-before-headers' }
  /** Relays `afterBytes` of the answer, then resets (RST) or closes (FIN) both sides. */
  | { readonly kind: 'truncate'; readonly afterBytes: number; readonly end: 'reset' | 'close' }
  /** Holds every chunk of the answer for `ms`. */
  | { readonly kind: 'delay'; readonly ms: number };

export interface FaultRelay {
  readonly port: number;
  readonly origin: string;
  /** Connections accepted so far. */
  readonly connections: number;
  set(faults: readonly Fault[]): void;
  refuse(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultRelay(
  upstreamPort: number,
  initial: readonly Fault[] = [{ kind: 'pass' }],
): Promise<FaultRelay> {
  let faults = initial;
  let connections = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    return socket;
  };
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const fault = faults[Math.min(connections, faults.length - 1)] as Fault;
    connections++;
    track(client);
    if (fault.kind === 'black-hole') {
      client.resume();
      return;
    }
    const upstream = track(connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true }));
    client.pipe(upstream);
    const kill = (how: 'reset' | 'close'): void => {
      if (how === 'reset') {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      } else {
        client.end();
        upstream.destroy();
      }
    };
    let relayed = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (fault.kind === 'reset-before-headers') return kill('reset');
      if (fault.kind === 'truncate') {
        const room = fault.afterBytes - relayed;
        relayed += chunk.length;
        if (room > 0) client.write(chunk.subarray(0, room));
        if (relayed >= fault.afterBytes) kill(fault.end);
        return;
      }
      if (fault.kind === 'delay') {
        upstream.pause();
        setTimeout(() => client.write(chunk, () => upstream.resume()), fault.ms);
        return;
      }
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => client.end());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  const port = await listenOn(server, 0);
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    set(next) {
      faults = next;
    },
    async refuse() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.resetAndDestroy();
      await closed;
    },
    async restore() {
      await listenOn(server, port);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface RawUpstream {
  readonly port: number;
  readonly origin: string;
  /** Request heads received, in order (the request line and headers as text). */
  readonly heads: string[];
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * Answers each request with whatever `respond` writes on the socket. Request bodies are
 * assumed absent (the tests send GETs); `n` counts requests from 0.
 */
export async function startRawUpstream(
  respond: (socket: Socket, n: number, head: string) => void,
): Promise<RawUpstream> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        heads.push(head);
        respond(socket, heads.length - 1, head);
      }
    });
  });
  const port = await listenOn(server, 0);
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    heads,
    get connections() {
      return connections;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface BlackHole {
  readonly port: number;
  close(): void;
}

/**
 * A loopback port that never completes a TCP handshake: a child process listens with a
 * backlog of 1 and is stopped (SIGSTOP), and filler connections fill its accept queue, so
 * the kernel drops further SYNs and a connect waits until its own timeout.
 */
export async function startBlackHole(): Promise<BlackHole> {
  const script =
    "const s=require('node:net').createServer();" +
    "s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))";
  const child: ChildProcess = spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  child.kill('SIGSTOP');
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const filler = connect({ port, host: '127.0.0.1' });
    filler.on('error', () => {});
    fillers.push(filler);
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  return {
    port,
    close() {
      for (const filler of fillers) filler.destroy();
      child.kill('SIGKILL');
    },
  };
}

async function listenOn(server: Server, port: number): Promise<number> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}
