/**
 * One health check: an HTTPS or HTTP GET (HAProxy's `option httpchk`, 2xx and 3xx pass, as there),
 * or a bare TCP connect. Never rejects: every outcome is a CheckRecord. Each check uses a fresh
 * connection (agent: false, Connection: close) so a check measures what a new client would get,
 * not a kept-alive socket to an apiserver that stopped accepting.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { CheckSettings } from './settings';

/** The outcome of one health check. */
export interface CheckRecord {
  readonly ok: boolean;
  /** "HTTP 200", "ECONNREFUSED", "timeout after 1000ms", ... */
  readonly detail: string;
  /** Wall-clock ms when the check finished. */
  readonly at: number;
  readonly durationMs: number;
}

/** A check's record as /status shows it: the time as ISO 8601. */
export interface CheckReport {
  readonly ok: boolean;
  readonly detail: string;
  readonly at: string;
  readonly durationMs: number;
}

/** The report of the last check, or null before the first. */
export function checkReport(record: CheckRecord | undefined): CheckReport | null {
  if (record === undefined) return null;
  return { ok: record.ok, detail: record.detail, at: new Date(record.at).toISOString(), durationMs: record.durationMs };
}

export interface ProbeTarget {
  readonly address: string;
  readonly port: number;
}

const USER_AGENT = 'vipd-health-check';

export function probe(target: ProbeTarget, check: CheckSettings, signal?: AbortSignal): Promise<CheckRecord> {
  const started = performance.now();
  return new Promise<CheckRecord>((resolve) => {
    let settled = false;
    let cleanup: () => void = () => undefined;
    const finish = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      resolve({ ok, detail, at: Date.now(), durationMs: Math.round(performance.now() - started) });
    };
    const onAbort = () => finish(false, 'aborted');
    // The verdict waits one turn of the event loop: timers run before I/O is polled, so after a
    // stall (a busy proxy, a GC pause) an answer already sitting in the socket would otherwise
    // lose to a timer that is only late because we were.
    const timer = setTimeout(() => setImmediate(finish, false, `timeout after ${check.timeoutMs}ms`), check.timeoutMs);
    if (signal?.aborted === true) return finish(false, 'aborted');
    signal?.addEventListener('abort', onAbort, { once: true });

    if (check.type === 'tcp') {
      const socket = net.connect({ host: target.address, port: target.port });
      cleanup = () => socket.destroy();
      socket.once('connect', () => finish(true, 'connected'));
      socket.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
      return;
    }

    const options: https.RequestOptions = {
      host: target.address,
      port: target.port,
      path: check.path,
      method: 'GET',
      agent: false,
      headers: { 'User-Agent': USER_AGENT, Accept: '*/*', Connection: 'close' },
    };
    if (check.type === 'https') {
      // Off by default: an apiserver's certificate names the node and the service IPs, rarely
      // the address we dial, and the check asks "is it serving", not "is it who it claims".
      options.rejectUnauthorized = check.tls.verify;
      if (check.tls.ca !== undefined) options.ca = check.tls.ca;
      if (check.tls.serverName !== undefined) options.servername = check.tls.serverName;
    }
    const req = (check.type === 'https' ? https : http).request(options, (res) => {
      const status = res.statusCode ?? 0;
      // Read the (small) body to the end so the server sees an orderly close, not a reset.
      res.resume();
      res.once('end', () => finish(status >= 200 && status < 400, `HTTP ${status}`));
      res.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    });
    cleanup = () => req.destroy();
    req.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    req.end();
  });
}
