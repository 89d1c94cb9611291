/**
 * The deploy/ manifests: rendered as kustomize would (test/helpers/kustomize-lite.ts, and
 * checked against `kubectl kustomize` where kubectl exists), validated against the Kubernetes
 * and Prometheus Operator schemas, their reprise configs accepted by the built CLI's `check`,
 * and the sidecar wiring that docs/deploy.md promises held to it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateObject } from '../helpers/k8s-validate.ts';
import {
  hasKubectl,
  type K8sObject,
  readYamlDocuments,
  renderKustomization,
} from '../helpers/kustomize-lite.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DEPLOY = join(ROOT, 'deploy');
const CLI = join(ROOT, 'dist/cli/main.js');
const KUSTOMIZATIONS = [
  'deploy/kubernetes/base',
  'deploy/kubernetes/overlays/tuned',
  'deploy/kubernetes/overlays/intercept',
];
const ALERTS = join(DEPLOY, 'prometheus/alerts.yaml');
const IMAGE_CONFIG = join(DEPLOY, 'image/config.yaml');
const scratch = mkdtempSync(join(tmpdir(), 'reprise-deploy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `reprise check FILE` with the built CLI: exit 0 and `ok`, or the errors. */
function check(configText: string, name: string): { status: number | null; output: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const file = join(scratch, `${name.replaceAll('/', '_')}.yaml`);
  writeFileSync(file, configText);
  const run = spawnSync(process.execPath, [CLI, 'check', file], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms'];
}

function bytes(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|KiB|MiB|GiB)$/.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * 1024 ** { K: 1, M: 2, G: 3 }[(m[2] as string)[0] as 'K'];
}

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain JSON
type Any = any;

describe.each(KUSTOMIZATIONS)('%s', (dir) => {
  const rendered = renderKustomization(join(ROOT, dir));
  const find = (kind: string): Any => rendered.objects.find((o) => o.kind === kind);
  const deployment = find('Deployment');
  const pod = deployment?.spec.template.spec;
  const sidecar = pod?.initContainers?.find((c: Any) => c.name === 'reprise');
  const app = pod?.containers?.find((c: Any) => c.name === 'app');
  const configText: string = find('ConfigMap')?.data['config.yaml'];
  const config = parse(configText ?? '') ?? {};
  const listen: string = config.listen ?? '127.0.0.1:3128';
  const adminPort = Number((config.admin ?? '127.0.0.1:9901').split(':').at(-1));

  it('renders a Deployment, its ConfigMap, a metrics Service and a ServiceMonitor', () => {
    expect(rendered.objects.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'Deployment', 'Service', 'ServiceMonitor'].sort(),
    );
  });

  it('validates against the Kubernetes and Prometheus Operator schemas', () => {
    expect(rendered.objects.flatMap(validateObject)).toEqual([]);
  });

  it.skipIf(!hasKubectl())('renders the same objects as kubectl kustomize', () => {
    const run = spawnSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const byKey = (objects: K8sObject[]) => new Map(objects.map((o) => [key(o), o]));
    const kubectl = run.stdout.split(/^---$/m).map((doc) => parse(doc) as K8sObject);
    expect(byKey(rendered.objects)).toEqual(byKey(kubectl));
  });

  it('embeds a reprise config that passes reprise check', () => {
    expect(check(configText, dir)).toEqual({ status: 0, output: 'ok' });
  });

  it('runs reprise as a native sidecar: an init container with restartPolicy Always', () => {
    expect(sidecar?.restartPolicy).toBe('Always');
  });

  it('points the app at the proxy in both spellings of HTTP_PROXY and HTTPS_PROXY', () => {
    const env = Object.fromEntries(app.env.map((e: Any) => [e.name, e.value]));
    const url = `http://${listen}`;
    expect([env.HTTP_PROXY, env.http_proxy, env.HTTPS_PROXY, env.https_proxy]).toEqual([
      url,
      url,
      url,
      url,
    ]);
  });

  it('keeps loopback, the Kubernetes API and the metadata endpoints out of the proxy', () => {
    const env = Object.fromEntries(app.env.map((e: Any) => [e.name, e.value]));
    const noProxy = (env.NO_PROXY as string).split(',');
    for (const host of [
      'localhost',
      '127.0.0.1',
      '::1',
      'kubernetes.default.svc',
      '$(KUBERNETES_SERVICE_HOST)',
    ]) {
      expect(noProxy).toContain(host);
    }
    expect(noProxy).toEqual(
      expect.arrayContaining(['169.254.169.254', 'metadata.google.internal']),
    );
    expect(env.no_proxy).toBe('$(NO_PROXY)');
  });

  it('probes /healthz and /readyz on the admin port of the config', () => {
    const port = sidecar.ports.find((p: Any) => p.name === sidecar.livenessProbe.httpGet.port);
    expect(port.containerPort).toBe(adminPort);
    expect(sidecar.livenessProbe.httpGet.path).toBe('/healthz');
    expect(sidecar.readinessProbe.httpGet.path).toBe('/readyz');
    expect(sidecar.startupProbe.httpGet.path).toBe('/readyz');
  });

  it('mounts the ConfigMap as a directory at /etc/reprise, never through subPath', () => {
    const volume = pod.volumes.find(
      (v: Any) => v.configMap?.name === find('ConfigMap').metadata.name,
    );
    const mounts = sidecar.volumeMounts.filter((m: Any) => m.name === volume.name);
    expect(mounts).toEqual([{ name: volume.name, mountPath: '/etc/reprise', readOnly: true }]);
  });

  it('locks both containers down, with an emptyDir for /tmp', () => {
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const c of [sidecar, app]) {
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      const tmp = c.volumeMounts.find((m: Any) => m.mountPath === '/tmp');
      expect(pod.volumes.find((v: Any) => v.name === tmp?.name)?.emptyDir).toBeDefined();
      expect(c.resources.requests).toBeDefined();
      expect(c.resources.limits.memory).toBeDefined();
    }
  });

  it('gives the pod a grace period that covers limits.drainTimeout and 5 s more', () => {
    const drainMs = durationMs(config.limits?.drainTimeout ?? '20s');
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(drainMs + 5000);
  });

  it('gives reprise a memory limit of at least twice limits.maxBufferedBytes', () => {
    const buffered = bytes(config.limits?.maxBufferedBytes ?? '64MiB');
    expect(bytes(sidecar.resources.limits.memory)).toBeGreaterThanOrEqual(2 * buffered);
  });

  it('exposes the admin port to Prometheus by annotations, Service and ServiceMonitor', () => {
    expect(deployment.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(adminPort),
      'prometheus.io/path': '/metrics',
    });
    const service = find('Service');
    const monitor = find('ServiceMonitor');
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    const port = service.spec.ports.find((p: Any) => p.name === monitor.spec.endpoints[0].port);
    expect(port.targetPort).toBe(adminPort);
    expect(sidecar.ports.map((p: Any) => p.containerPort)).toContain(adminPort);
    expect(monitor.spec.endpoints[0].path).toBe('/metrics');
  });

  it('gives the metrics Service a numeric targetPort (named ports of init containers need 1.32)', () => {
    for (const port of find('Service').spec.ports) expect(typeof port.targetPort).toBe('number');
  });
});

describe('deploy/prometheus/alerts.yaml', () => {
  const rules: Any[] = readYamlDocuments(ALERTS).flatMap((o: Any) =>
    o.spec.groups.flatMap((g: Any) => g.rules),
  );

  it('validates against the PrometheusRule schema', () => {
    expect(readYamlDocuments(ALERTS).flatMap(validateObject)).toEqual([]);
  });

  it('has alert expressions that parse as PromQL', () => {
    const broken = rules.filter((r) => {
      let error = false;
      promql.parse(r.expr).iterate({
        enter: (n) => {
          if (n.type.isError) error = true;
        },
      });
      return error;
    });
    expect(broken.map((r) => r.alert)).toEqual([]);
  });

  it('alerts on an exhausted retry budget and on an open circuit', () => {
    const exprs = rules.map((r) => r.expr.replace(/\s+/g, ' '));
    expect(exprs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/reprise_retry_budget_available\) == 0$/),
        expect.stringMatching(/rate\(reprise_retries_suppressed_total\{cause="budget"\}/),
        expect.stringMatching(/reprise_circuit_state\{state="closed"\}\) == 0$/),
      ]),
    );
  });
});

describe('deploy/image/config.yaml', () => {
  it('passes reprise check', () => {
    expect(check(readFileSync(IMAGE_CONFIG, 'utf8'), 'image')).toEqual({ status: 0, output: 'ok' });
  });

  it('binds the admin port on all interfaces and the proxy on loopback', () => {
    const config = parse(readFileSync(IMAGE_CONFIG, 'utf8'));
    expect([config.admin, config.listen]).toEqual(['0.0.0.0:9901', '127.0.0.1:3128']);
  });
});

describe('the checks themselves', () => {
  const good = (): Any =>
    renderKustomization(join(ROOT, KUSTOMIZATIONS[0] as string)).objects.find(
      (o) => o.kind === 'Deployment',
    );

  it('reports a misspelt field that the schema does not name', () => {
    const deployment = good();
    deployment.spec.template.spec.initContainers[0].restartpolicy = 'Always';
    expect(validateObject(deployment)).toEqual([
      'Deployment/demo-app: unknown field /spec/template/spec/initContainers/0/restartpolicy',
    ]);
  });

  it('reports a field of the wrong type', () => {
    const deployment = good();
    deployment.spec.template.spec.terminationGracePeriodSeconds = 'forty-five';
    expect(validateObject(deployment)).toEqual([
      expect.stringMatching(/terminationGracePeriodSeconds/),
    ]);
  });

  it('refuses a kustomization feature that kustomize-lite does not implement', () => {
    const dir = mkdtempSync(join(scratch, 'k-'));
    writeFileSync(join(dir, 'kustomization.yaml'), 'namePrefix: staging-\n');
    expect(() => renderKustomization(dir)).toThrow(/"namePrefix" is not supported/);
  });

  it('covers every file under deploy/', () => {
    const covered = new Set([
      ...KUSTOMIZATIONS.flatMap((dir) => renderKustomization(join(ROOT, dir)).files),
      ALERTS,
      IMAGE_CONFIG,
      // its queries are parsed and checked against a real scrape in integration/metrics.test.ts
      join(DEPLOY, 'grafana', 'reprise-dashboard.json'),
    ]);
    const all = readdirSync(DEPLOY, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    expect(all.filter((file) => !covered.has(file))).toEqual([]);
  });
});
