/**
 * undici's Agent, required from its own file. The package's index loads all of undici (fetch,
 * WebSocket, the cache and mock interceptors: 109 modules) and adds the request/stream API to
 * every dispatcher; reprise calls only an Agent's `dispatch` and `close`, which need 22.
 */
import { createRequire } from 'node:module';
import type * as undici from 'undici';

export const Agent = createRequire(import.meta.url)(
  'undici/lib/dispatcher/agent.js',
) as typeof undici.Agent;
export type Agent = undici.Agent;
