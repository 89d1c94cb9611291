/**
 * Scenario 10, TLS origination (issue 22): 1 KiB GET at 50 connections where the app calls
 * `http://` and the proxy speaks verified TLS to a local HTTPS upstream, side by side in one
 * run with the bare proxies (bare-proxies.ts) originating TLS the same way (same CA, same SNI,
 * undici keep-alive pools). Figures: proxy CPU µs per request, req/s, and upstream TLS
 * handshakes per 1,000 requests; reprise's as ratios to each bare proxy's.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Measured, Row } from './measure.ts';
import { type Proc, startBareTls, startUpstream } from './processes.ts';
import { startReprise, UNBOUNDED } from './proxies.ts';
import { type BenchContext, compare, get, OK, type Target } from './scenarios.ts';

/** The upstream's certificate names this; every proxy verifies it as SNI. */
export const TLS_SERVERNAME = 'localhost';

/** A CA and a server certificate it signed, with the `openssl` CLI, in `dir`. */
export function makeCertificates(dir: string): {
  caFile: string;
  certFile: string;
  keyFile: string;
} {
  const file = (name: string) => `${dir}/tls-${name}`;
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    ...['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2'],
    ...['-subj', '/CN=reprise bench CA', '-addext', 'basicConstraints=critical,CA:TRUE'],
  );
  openssl(
    ...['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr')],
    ...['-subj', `/CN=${TLS_SERVERNAME}`],
  );
  writeFileSync(file('server.ext'), `subjectAltName=DNS:${TLS_SERVERNAME},IP:127.0.0.1\n`);
  openssl(
    ...['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem')],
    ...['-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '2'],
    ...['-extfile', file('server.ext')],
  );
  return { caFile: file('ca.pem'), certFile: file('server.pem'), keyFile: file('server.key') };
}

/** 10: TLS origination against the bare TLS-originating proxies. */
export async function tlsOrigination(ctx: BenchContext): Promise<Row[]> {
  const { caFile, certFile, keyFile } = makeCertificates(ctx.tmpDir);
  const upstream = await startUpstream({
    BENCH_UPSTREAM_CERT: certFile,
    BENCH_UPSTREAM_KEY: keyFile,
  });
  const procs: Proc[] = [];
  const once = (start: () => Promise<Proc>) => {
    let started: Promise<Proc> | undefined;
    return () => {
      started ??= start().then((proc) => {
        procs.push(proc);
        return proc;
      });
      return started;
    };
  };
  const config = {
    upstreams: [{ match: '127.0.0.1', tls: { ca: caFile, servername: TLS_SERVERNAME } }],
  };
  const targets: Target[] = [
    { via: 'reference', proc: once(() => startBareTls('reference', caFile, TLS_SERVERNAME)) },
    { via: 'floor', proc: once(() => startBareTls('floor', caFile, TLS_SERVERNAME)) },
    { via: 'reprise', proc: once(() => startReprise(config, ctx.tmpDir, 'reprise-tls')) },
    // the bare proxies run on node's defaults: the same build without its V8 settings, too
    {
      via: 'reprise-unbounded',
      proc: once(() =>
        startReprise(config, ctx.tmpDir, 'reprise-tls-unbounded', { node: UNBOUNDED }),
      ),
    },
  ];
  const meta = {
    key: 'tls-get-1024-c50',
    group: 10,
    scenario: '1 KiB GET, app calls http://, proxy originates TLS',
    connections: 50,
  };
  const arms = targets.map((target) => ({
    meta,
    target,
    request: get(1024),
    mode: OK,
    extra: (m: Measured) => {
      const perKilo = (m.upstreamHandshakes * 1000) / Math.max(1, m.load.responses);
      return { note: `${perKilo.toFixed(2)} handshakes per 1,000 requests` };
    },
  }));
  try {
    const rows = await compare({ ...ctx, upstream }, arms);
    for (const bare of rows.filter((r) => r.via === 'reference' || r.via === 'floor')) {
      for (const reprise of rows.filter((r) => r.via.startsWith('reprise'))) {
        if (!bare.proxyCpuUsPerReq || !reprise.proxyCpuUsPerReq) continue;
        if (!bare.reqPerS || !reprise.reqPerS) continue;
        const cpu = reprise.proxyCpuUsPerReq / bare.proxyCpuUsPerReq;
        const rate = reprise.reqPerS / bare.reqPerS;
        const line = `${cpu.toFixed(2)}× the bare TLS ${bare.via}'s CPU per request (target ≤ 1.1×), ${rate.toFixed(2)}× its req/s`;
        reprise.note = [reprise.note, line].filter(Boolean).join('; ');
        ctx.progress(`tls origination, ${reprise.via}: ${line}`);
      }
    }
    return rows;
  } finally {
    await Promise.all([...procs.map((p) => p.stop()), upstream.stop()]);
  }
}
