// Files of undici and prom-client imported on their own (src/proxy/upstream/undici-agent.ts,
// src/admin/prom-client.ts give each import the type of the package index's export).
declare module 'undici/lib/*';
declare module 'prom-client/lib/*';
