/**
 * The client agent in the client namespace: readiness probes, the bulk source, and the idle
 * connections. `node client.js`; requests: probe, send, open, held, close.
 */
import { once } from 'node:events';
import net from 'node:net';
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

function main(): void {
  const idle = new IdleConnections();
  serveRequests(
    {
      probe: (r) => probe(r.host as string, r.port as number),
      send: (r) => send(r.host as string, r.port as number, r.seconds as number),
      open: (r) => idle.open(r.host as string, r.port as number, r.n as number),
      held: () => idle.held.size,
      close: () => idle.close(),
    },
    () => {
      for (const s of idle.held) s.destroy();
    },
  );
  emit({ event: 'ready' });
}

if (require.main === module) runChild(main);
