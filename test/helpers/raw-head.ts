/**
 * A raw socket that writes a request as given and reads the answer's head, then hands over
 * the socket (for CONNECT tunnels and Upgrades, where the bytes after the head matter).
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  readonly statusLine: string;
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Positioned after the head; paused. */
  readonly socket: Socket;
}

/** Writes `request` raw and reads the answer's head. */
export function sendRaw(port: number, request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      const rest = buffered.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      const [statusLine = '', ...lines] = buffered
        .subarray(0, end)
        .toString('latin1')
        .split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ statusLine, status: Number(statusLine.split(' ')[1]), headers, socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('end', () => reject(new Error(`closed before an answer: ${buffered}`)));
    socket.write(request);
  });
}

/** Reads until the peer ends (or `bytes` arrived); resolves with the text, the socket paused. */
export function readText(socket: Socket, bytes = Number.POSITIVE_INFINITY): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const finish = () => {
      socket.off('data', onData);
      socket.pause();
      resolve(text);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.length >= bytes) finish();
    };
    socket.on('data', onData);
    socket.once('end', finish);
    socket.once('close', finish);
    socket.resume();
  });
}
