/**
 * The client of a packet-loss run, started inside the namespace: `concurrency` closed-loop
 * workers make `requests` GETs in all, directly or through a proxy (absolute form, as an
 * HTTP_PROXY client does), each given up after `timeoutMs`. Prints one JSON line: how each
 * request ended, as the client saw it. With `caFile` the upstream speaks HTTPS: a direct
 * client verifies it against that CA; a proxied one calls `http://` (the proxy originates TLS).
 * argv: a JSON ClientPlan.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

interface ClientPlan {
  readonly url: string;
  /** Send through this proxy port; undefined = direct. */
  readonly proxyPort?: number;
  readonly requests: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** Pause between one worker's requests, so the run spans the loss schedule. */
  readonly paceMs: number;
  readonly expectBytes: number;
  /** The upstream speaks HTTPS with a certificate this CA signed. */
  readonly caFile?: string;
}

const plan = JSON.parse(process.argv[2] as string) as ClientPlan;
const target = new URL(plan.url);
const direct = plan.proxyPort === undefined;
/** Only a direct client speaks TLS: through the proxy it calls `http://`. */
const caFile = direct ? plan.caFile : undefined;
const agentOptions = { keepAlive: true, maxSockets: plan.concurrency };
const agent =
  caFile === undefined
    ? new http.Agent(agentOptions)
    : new https.Agent({ ...agentOptions, ca: readFileSync(caFile) });
const request = caFile === undefined ? http.request : https.request;

/** ok | body-cut (head, then a broken body) | body-timeout | timeout (no head) | error:NAME | status:N | connect-error */
function one(): Promise<string> {
  return new Promise((resolve) => {
    let settled = false;
    let head = false;
    const done = (outcome: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const req = request(
      direct
        ? { host: target.hostname, port: target.port, path: target.pathname, agent }
        : { host: '127.0.0.1', port: plan.proxyPort, path: plan.url, agent },
      (res) => {
        head = true;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        res.on('end', () => {
          const error = res.headers['x-reprise-error'];
          if (error !== undefined) return done(`error:${error}`);
          if (res.statusCode !== 200) return done(`status:${res.statusCode}`);
          done(bytes === plan.expectBytes ? 'ok' : 'body-cut');
        });
        res.on('error', () => done('body-cut'));
        res.on('aborted', () => done('body-cut'));
      },
    );
    const timer = setTimeout(() => {
      done(head ? 'body-timeout' : 'timeout');
      req.destroy();
    }, plan.timeoutMs);
    req.on('error', () => done(head ? 'body-cut' : 'connect-error'));
    req.end();
  });
}

async function main(): Promise<void> {
  const outcomes: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < plan.requests) {
      next++;
      const outcome = await one();
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      await new Promise((resolve) => setTimeout(resolve, plan.paceMs));
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  const durationMs = Math.round(performance.now() - started);
  process.stdout.write(`${JSON.stringify({ outcomes, durationMs })}\n`);
  agent.destroy();
}

void main();
