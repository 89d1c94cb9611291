/**
 * undici's Agent, Pool and Client, imported from their own files. The package's index loads
 * all of undici (fetch, WebSocket, the cache and mock interceptors: 109 modules) and adds the
 * request/stream API to every dispatcher; reprise calls only `dispatch` and `close`.
 */
import type * as undici from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ClientClass from 'undici/lib/dispatcher/client.js';
import PoolClass from 'undici/lib/dispatcher/pool.js';

export const Agent: typeof undici.Agent = AgentClass;
export type Agent = undici.Agent;
export const Pool: typeof undici.Pool = PoolClass;
export const Client: typeof undici.Client = ClientClass;
