/**
 * undici's Agent, Pool and Client, required from their own files. The package's index loads
 * all of undici (fetch, WebSocket, the cache and mock interceptors: 109 modules) and adds the
 * request/stream API to every dispatcher; reprise calls only `dispatch` and `close`.
 */
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof undici.Agent;
export type Agent = undici.Agent;
export const Pool = require('undici/lib/dispatcher/pool.js') as typeof undici.Pool;
export const Client = require('undici/lib/dispatcher/client.js') as typeof undici.Client;
