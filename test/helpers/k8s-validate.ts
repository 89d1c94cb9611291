/**
 * Validates Kubernetes objects against the OpenAPI schemas compiled into kubernetes-models
 * (and @kubernetes-models/prometheus-operator for the ServiceMonitor and PrometheusRule CRDs):
 * types, enums, required fields, formats.
 *
 * Those schemas accept fields they do not name, as Kubernetes' own OpenAPI does, while the API
 * server rejects them under strict field validation (kubectl's default), and a misspelt key
 * (`restartpolicy: Always`) would pass unnoticed. So this also reports every field the
 * validator never read: a compiled ajv validator reads exactly the properties its schema
 * declares, and every key of a map (labels, data), so a key nobody read is unknown to the
 * schema. A schema that allowed free-form objects would show up here as a false alarm, never
 * as a silent pass.
 */

import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';

interface ModelClass {
  new (data: never): { validate(): void; toJSON(): unknown };
}

const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as unknown as ModelClass,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule as unknown as ModelClass,
};

/** The problems found, each as `Kind/name: message`; empty when the object is valid. */
export function validateObject(obj: {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown };
}): string[] {
  const where = `${String(obj.kind)}/${String(obj.metadata?.name)}`;
  const Model = MODELS[`${String(obj.apiVersion)}/${String(obj.kind)}`];
  if (Model === undefined)
    return [`${where}: no schema for ${String(obj.apiVersion)} ${String(obj.kind)}`];
  const model = new Model(obj as never);
  const data = model.toJSON();
  const read = new Set<string>();
  try {
    model.validate.call(tracked(data, '', read));
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
  return fieldPaths(data, '')
    .filter((path) => !read.has(path))
    .map((path) => `${where}: unknown field ${path}`);
}

/** A view of `value` that records the path of every own property read through it. */
function tracked(value: unknown, path: string, read: Set<string>): unknown {
  if (value === null || typeof value !== 'object') return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string' || !Object.hasOwn(target, key)) return v;
      read.add(`${path}/${key}`);
      return tracked(v, `${path}/${key}`, read);
    },
  });
}

function fieldPaths(value: unknown, path: string): string[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, v]) => [
    `${path}/${key}`,
    ...fieldPaths(v, `${path}/${key}`),
  ]);
}
