/**
 * The parts of prom-client reprise uses, imported from their own files. The package's index
 * also loads its Pushgateway client, and with it node:https, node:zlib and Node's TLS code,
 * which a process that only answers scrapes never runs (about 3 MiB of RSS).
 */
import type * as promClient from 'prom-client';
import CounterClass from 'prom-client/lib/counter.js';
import collect from 'prom-client/lib/defaultMetrics.js';
import GaugeClass from 'prom-client/lib/gauge.js';
import RegistryClass from 'prom-client/lib/registry.js';

export const Counter: typeof promClient.Counter = CounterClass;
export const Gauge: typeof promClient.Gauge = GaugeClass;
export const Registry: typeof promClient.Registry = RegistryClass;
export type Registry = promClient.Registry;
export type Metric = promClient.Metric;
export const collectDefaultMetrics: typeof promClient.collectDefaultMetrics = collect;
