/**
 * The client agent in the client namespace: readiness probes, the bulk source, the idle
 * connections, and the reconnect storm. `node client.js`; requests: probe, tlsProbe, send, open,
 * held, close, storm, stormClose.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { IDLE_CONCURRENCY } from '../network';
import { emit, runChild, serveRequests } from './child-loop';

const noop = () => undefined;
const block = Buffer.alloc(1 << 20, 7);

/** One HTTP request; true when answered 200 within a second. */
function probe(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    let reply = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('close', () => done(false));
    s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c: Buffer) => {
      reply += c.toString();
      if (reply.includes('\r\n\r\n')) done(reply.startsWith('HTTP/1.1 200'));
    });
  });
}

/** One TLS handshake (any certificate); true when completed within a second. */
function tlsProbe(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('close', () => done(false));
    s.on('secureConnect', () => done(true));
  });
}

/** Writes 1 MiB blocks for `seconds` (the loop ends at the deadline), then FIN and wait for close. */
async function send(host: string, port: number, seconds: number): Promise<{ bytes: number }> {
  const s = net.connect({ host, port });
  s.on('error', noop); // once() below still rejects on an error while it waits
  await once(s, 'connect');
  const deadline = performance.now() + seconds * 1000;
  let bytes = 0;
  while (performance.now() < deadline) {
    bytes += block.length;
    if (!s.write(block)) await once(s, 'drain');
  }
  s.end();
  if (!s.destroyed) await once(s, 'close');
  return { bytes };
}

/** The idle connections, held until closed. */
class IdleConnections {
  readonly held = new Set<net.Socket>();

  /** Opens `n` connections, IDLE_CONCURRENCY at a time, each given 5 s to connect; keeps them. */
  async open(host: string, port: number, n: number): Promise<{ held: number; failed: number }> {
    let started = 0;
    let failed = 0;
    const one = async () => {
      const s = net.connect({ host, port });
      s.on('error', noop);
      s.setTimeout(5000, () => s.destroy(new Error('connect timeout')));
      try {
        await once(s, 'connect');
        s.setTimeout(0);
        this.held.add(s);
        s.on('close', () => this.held.delete(s));
      } catch {
        failed += 1;
        s.destroy();
      }
    };
    const worker = async () => {
      while (started < n) {
        started += 1;
        await one();
      }
    };
    await Promise.all(Array.from({ length: Math.min(IDLE_CONCURRENCY, n) }, worker));
    return { held: this.held.size, failed };
  }

  /** Closes them all; how many there were. */
  close(): number {
    const n = this.held.size;
    for (const s of this.held) s.destroy();
    this.held.clear();
    return n;
  }
}

/** What a storm reports: times in ms from its start, handshakes from each client's own start. */
export interface StormResult {
  /** From the start until every client has completed its handshake (secureConnect) or failed. */
  readonly allMs: number;
  readonly established: number;
  readonly failed: number;
  readonly handshakeP50Ms: number;
  readonly handshakeP99Ms: number;
}

/** Each storm client is given this long to complete its handshake. */
const STORM_TIMEOUT_MS = 30_000;

const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);

/** The reconnect storm: N TLS clients started in the same tick, held until closed. */
class Storm {
  readonly held = new Set<tls.TLSSocket>();
  /** One context for every client: tls.connect would otherwise build one per connection. */
  private readonly context = tls.createSecureContext();

  run(host: string, port: number, n: number): Promise<StormResult> {
    const times: number[] = [];
    let failed = 0;
    let pending = n;
    const start = performance.now();
    return new Promise<StormResult>((resolve) => {
      const settled = () => {
        pending -= 1;
        if (pending > 0) return;
        times.sort((a, b) => a - b);
        resolve({
          allMs: performance.now() - start,
          established: times.length,
          failed,
          handshakeP50Ms: percentile(times, 50),
          handshakeP99Ms: percentile(times, 99),
        });
      };
      for (let i = 0; i < n; i++) {
        const began = performance.now();
        const s = tls.connect({ host, port, secureContext: this.context, rejectUnauthorized: false });
        let done = false;
        const timer = setTimeout(() => s.destroy(new Error('handshake timeout')), STORM_TIMEOUT_MS);
        s.once('secureConnect', () => {
          done = true;
          clearTimeout(timer);
          times.push(performance.now() - began);
          this.held.add(s);
          settled();
        });
        const fail = () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          failed += 1;
          s.destroy();
          settled();
        };
        s.on('error', fail);
        s.on('close', () => {
          this.held.delete(s);
          fail();
        });
      }
    });
  }

  /** Closes them all; how many there were. */
  close(): number {
    const n = this.held.size;
    for (const s of this.held) s.destroy();
    this.held.clear();
    return n;
  }
}

function main(): void {
  const idle = new IdleConnections();
  const storm = new Storm();
  serveRequests(
    {
      probe: (r) => probe(r.host as string, r.port as number),
      tlsProbe: (r) => tlsProbe(r.host as string, r.port as number),
      send: (r) => send(r.host as string, r.port as number, r.seconds as number),
      open: (r) => idle.open(r.host as string, r.port as number, r.n as number),
      held: () => idle.held.size,
      close: () => idle.close(),
      storm: (r) => storm.run(r.host as string, r.port as number, r.n as number),
      stormClose: () => storm.close(),
    },
    () => {
      for (const s of idle.held) s.destroy();
      storm.close();
    },
  );
  emit({ event: 'ready' });
}

if (require.main === module) runChild(main);
