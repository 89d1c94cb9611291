/**
 * What an access line is joined on elsewhere: the request id (the client's `x-request-id`, or
 * one made here and forwarded), the W3C trace id, the client's address, and the bytes each
 * request moved on its client connection.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { socketAddress } from '../routing/authority.ts';
import type { RequestOrigin } from '../summary.ts';
import { randomRequestId } from './request-id.ts';
import { tunnelledOf } from './tunnelled.ts';

/** Longer client ids are logged cut to this (the header itself goes upstream whole). */
const MAX_LOGGED_ID_CHARS = 128;
/** version-traceid-parentid-flags; version ff and all-zero ids are invalid (W3C Trace Context §3.2). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}/;
const ZERO_TRACE_ID = '0'.repeat(32);

export interface ArrivingRequest extends RequestOrigin {
  /** True when the client sent no `x-request-id`: the made one must be added upstream. */
  readonly requestIdMade: boolean;
}

export function requestOrigin(
  method: string,
  headers: IncomingHttpHeaders,
  socket: Socket,
  nowMs: number,
): ArrivingRequest {
  const sent = headers['x-request-id'];
  const given = Array.isArray(sent) ? sent[0] : sent;
  const made = given === undefined || given === '';
  return {
    startMs: nowMs,
    method,
    requestId: made ? randomRequestId() : (given as string).slice(0, MAX_LOGGED_ID_CHARS),
    requestIdMade: made,
    traceId: traceIdOf(headers.traceparent),
    client: clientAddress(socket),
    tunnel: tunnelledOf(socket)?.kind,
  };
}

const clientOf = Symbol('client');
type AddressedSocket = Socket & { [clientOf]?: string };

/** The client's `ip:port`, spelled once per connection (keep-alive requests share it). */
function clientAddress(socket: Socket): string {
  const known = socket as AddressedSocket;
  let client = known[clientOf];
  if (client === undefined) {
    client = socketAddress(socket.remoteAddress, socket.remotePort);
    // a socket already gone has no address yet to remember
    if (client !== '') known[clientOf] = client;
  }
  return client;
}

/** The trace id of a valid `traceparent`, else undefined. */
export function traceIdOf(traceparent: string | string[] | undefined): string | undefined {
  // two traceparent headers are invalid (W3C Trace Context §3.2)
  if (typeof traceparent !== 'string') return undefined;
  const match = TRACEPARENT.exec(traceparent.trim());
  if (match === null || match[1] === 'ff') return undefined;
  const traceId = match[2] as string;
  if (traceId === ZERO_TRACE_ID || match[3] === '0000000000000000') return undefined;
  return traceId;
}

const countedIn = Symbol('countedIn');
const countedOut = Symbol('countedOut');
type CountedSocket = Socket & { [countedIn]?: number; [countedOut]?: number };

/**
 * Bytes read and written on `socket` since the last call for it: on a keep-alive connection,
 * what this request moved, heads included. A tunnel or Upgrade counts its whole life.
 */
export function takeConnectionBytes(socket: Socket): { bytesIn: number; bytesOut: number } {
  const counted = socket as CountedSocket;
  const read = socket.bytesRead;
  const written = socket.bytesWritten;
  const bytesIn = read - (counted[countedIn] ?? 0);
  const bytesOut = written - (counted[countedOut] ?? 0);
  counted[countedIn] = read;
  counted[countedOut] = written;
  return { bytesIn, bytesOut };
}
