/**
 * node:http, loaded with require. An ESM `import ... from 'node:http'` builds the module's ESM
 * facade, which reads every export, including the lazy `WebSocket`, `CloseEvent` and
 * `MessageEvent` getters: that loads Node's whole internal copy of undici (fetch, WebSocket,
 * FormData), about 13 MiB of RSS that reprise never uses. require() reads no export it is not
 * asked for. Types still come from `import type ... from 'node:http'`.
 */
import { createRequire } from 'node:module';

const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export const { createServer, request, ServerResponse, STATUS_CODES } = http;
export type ServerResponse = import('node:http').ServerResponse;
