/**
 * The connect a link probe makes (resilience/link-probe.ts), through the one dialer: the deny
 * list and the address guard apply as to any try, and a denied address is never connected to.
 * Plain TCP whatever the upstream speaks, given up after `QUICK_MS` (one SYN: the kernel's
 * first resend comes at a second), and reset as soon as it connects: nothing is sent. The host
 * answered if it connected or refused.
 */
import type { ConnectProbe } from '../../resilience/link-probe.ts';
import { QUICK_MS } from '../../resilience/link-recovery.ts';
import { splitAuthority, unbracket } from '../../routing/authority.ts';
import type { Dialer } from './dialer.ts';

export function probeConnects(dialer: Dialer): ConnectProbe {
  return (origin, done) => {
    const { host, port } = splitAuthority(origin.slice(origin.indexOf('//') + 2));
    if (port < 0) {
      done(false);
      return ignore;
    }
    const pending = dialer.dial({ host: unbracket(host), port, connectTimeoutMs: QUICK_MS });
    void pending.result.then((dialed) => {
      if (dialed.kind === 'connected') dialed.socket.resetAndDestroy();
      // a refusal is the host's answer: the link carried it both ways
      done(dialed.kind === 'connected' || dialed.error.reason === 'ECONNREFUSED');
    });
    return pending.cancel;
  };
}

function ignore(): void {}
