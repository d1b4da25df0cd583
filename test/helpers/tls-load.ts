/**
 * A small load of new TLS connections for the balancer's fault tests, run in a client namespace:
 *
 *   ip netns exec NS node dist/test/helpers/tls-load.js --host H --port P [--clients 4] [--seconds 6]
 *     [--timeout-ms 2000] [--path /readyz]
 *
 * `--clients` loops each make one HTTPS GET at a time, every one on a fresh connection (TLS over a
 * plain TCP socket it owns, `Connection: close`), as a client that reconnects does. A request fails
 * on an error, a close before a complete answer, a status other than 200, or no answer within
 * `--timeout-ms`. Each failure records whether the server had sent anything yet (`answered`):
 * once it has, the TLS session belongs to that server, and no TCP balancer can move it elsewhere.
 * Prints one JSON line `{"event":"started"}` when the first requests are sent and one
 * `{"event":"done",...}` (LoadSummary) at the end, then exits. Test-only: the lab's benchmark loads
 * live in src/lab/.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface LoadFailure {
  /** Milliseconds since the load started. */
  readonly atMs: number;
  readonly tookMs: number;
  readonly error: string;
  /** Whether any byte had come back from the server when it failed. */
  readonly answered: boolean;
}

export interface LoadSummary {
  readonly event: 'done';
  readonly ok: number;
  readonly failed: number;
  readonly failures: readonly LoadFailure[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The slowest successful requests: when they started (ms since the load started) and took. */
  readonly slowest: ReadonlyArray<{ readonly atMs: number; readonly tookMs: number }>;
}

interface Options {
  readonly host: string;
  readonly port: number;
  readonly clients: number;
  readonly seconds: number;
  readonly timeoutMs: number;
  readonly path: string;
}

/** At most this many requests per client, so a loop is bounded even if the clock misbehaves. */
const MAX_REQUESTS_PER_CLIENT = 1_000_000;

function once(options: Options): Promise<{ ok: boolean; error: string; answered: boolean }> {
  return new Promise((resolve) => {
    let settled = false;
    let head = '';
    const raw = net.connect({ host: options.host, port: options.port });
    const socket = tls.connect({ socket: raw, rejectUnauthorized: false });
    const finish = (ok: boolean, error: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const answered = raw.bytesRead > 0;
      socket.destroy();
      raw.destroy();
      resolve({ ok, error, answered });
    };
    const timer = setTimeout(() => finish(false, `no answer within ${options.timeoutMs}ms`), options.timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => finish(false, `${err.code ?? ''} ${err.message}`.trim());
    raw.on('error', onError);
    socket.on('error', onError);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (head.length < 64) head += chunk;
    });
    socket.once('end', () =>
      finish(
        head.startsWith('HTTP/1.1 200 '),
        head === '' ? 'closed without an answer' : (head.split('\r\n')[0] ?? ''),
      ),
    );
    socket.once('close', () => finish(false, 'closed'));
    socket.once('secureConnect', () => {
      socket.write(`GET ${options.path} HTTP/1.1\r\nHost: ${options.host}\r\nConnection: close\r\n\r\n`);
    });
  });
}

export async function runLoad(options: Options, onStarted: () => void = () => undefined): Promise<LoadSummary> {
  const t0 = performance.now();
  const end = t0 + options.seconds * 1000;
  const took: number[] = [];
  const done: Array<{ atMs: number; tookMs: number }> = [];
  const failures: LoadFailure[] = [];
  const client = async () => {
    for (let i = 0; i < MAX_REQUESTS_PER_CLIENT && performance.now() < end; i++) {
      const start = performance.now();
      const r = await once(options);
      const ms = performance.now() - start;
      if (r.ok) {
        took.push(ms);
        done.push({ atMs: Math.round(start - t0), tookMs: Math.round(ms * 10) / 10 });
      } else {
        failures.push({ atMs: Math.round(start - t0), tookMs: Math.round(ms), error: r.error, answered: r.answered });
      }
    }
  };
  const clients = Array.from({ length: options.clients }, client);
  onStarted();
  await Promise.all(clients);
  took.sort((a, b) => a - b);
  const tenth = (ms: number) => Math.round(ms * 10) / 10;
  const at = (q: number) =>
    took.length === 0 ? 0 : tenth(took[Math.min(took.length - 1, Math.floor(q * took.length))] ?? 0);
  return {
    event: 'done',
    ok: took.length,
    failed: failures.length,
    failures,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: Math.round((took[took.length - 1] ?? 0) * 10) / 10,
    slowest: done.sort((a, b) => b.tookMs - a.tookMs).slice(0, 5),
  };
}

function arg(args: readonly string[], flag: string, fallback?: string): string {
  const i = args.indexOf(flag);
  const value = i >= 0 ? args[i + 1] : fallback;
  if (value === undefined) throw new Error(`${flag} is required`);
  return value;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const options: Options = {
    host: arg(args, '--host'),
    port: Number(arg(args, '--port')),
    clients: Number(arg(args, '--clients', '4')),
    seconds: Number(arg(args, '--seconds', '6')),
    timeoutMs: Number(arg(args, '--timeout-ms', '2000')),
    path: arg(args, '--path', '/readyz'),
  };
  runLoad(options, () => process.stdout.write(`${JSON.stringify({ event: 'started' })}\n`)).then(
    (summary) => {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
