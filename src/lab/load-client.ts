/**
 * The lab's load: a few clients each making one HTTPS GET per new TLS connection, back to back,
 * through VIP:6443, the figures being what those clients saw (requests done and failed, latency
 * percentiles). New connections are where a balancer meets a dead or unreachable backend, so they
 * show whether it hides one from clients. The drill runs it in the client namespace
 * (`node load-client.js HOST PORT --clients 4 --seconds 6`, JSON lines on stdout); a test can call
 * `runLoad` in-process. `waitForBackends` checks every apiserver serves through the VIP again.
 *
 * The timeouts are client-go's transport's: 10 s for the TLS handshake (which through a TCP
 * balancer waits for the balancer's connect to a backend), then 30 s for the answer.
 */
import https from 'node:https';
import { describeError } from '../errors';
import { numberFlag } from './program-args';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  /** Concurrent clients (default 4). */
  readonly clients?: number;
  readonly seconds: number;
  /** What each request asks for (default /readyz). */
  readonly path?: string;
  readonly handshakeTimeoutMs?: number;
  readonly responseTimeoutMs?: number;
}

/** One request: when it started, how long until its outcome, and what went wrong if it failed. */
export interface RequestResult {
  readonly t: number;
  readonly ms: number;
  readonly error?: string;
}

export interface LoadResult {
  readonly started: number;
  readonly done: number;
  readonly failed: number;
  /** Failures by cause (an error code, "HTTP 503", "tls-handshake-timeout", ...). */
  readonly errors: Readonly<Record<string, number>>;
  /** Over every request, done or failed, from its start to its outcome. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;
const RESPONSE_TIMEOUT_MS = 30_000;

/** One GET on a connection of its own; resolves with its outcome, never rejects. */
export function requestOnce(o: LoadOptions, path = o.path ?? '/readyz'): Promise<RequestResult & { body?: string }> {
  const t = Date.now();
  const start = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (error: string | undefined, body?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      const ms = Math.round(performance.now() - start);
      resolve({ t, ms, ...(error === undefined ? {} : { error }), ...(body === undefined ? {} : { body }) });
    };
    const req = https.request(
      {
        host: o.host,
        port: o.port,
        path,
        method: 'GET',
        agent: false,
        rejectUnauthorized: false,
        headers: { Connection: 'close' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () =>
          finish(
            res.statusCode === 200 ? undefined : `HTTP ${res.statusCode ?? 0}`,
            Buffer.concat(chunks).toString('utf8'),
          ),
        );
        res.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
      },
    );
    req.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    timer = setTimeout(() => finish('tls-handshake-timeout'), o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    req.once('socket', (socket) =>
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        timer = setTimeout(() => finish('response-timeout'), o.responseTimeoutMs ?? RESPONSE_TIMEOUT_MS);
      }),
    );
    req.end();
  });
}

/**
 * The load: `clients` loops of back-to-back requests for `seconds`; a request under way at the end
 * is waited for (its timeouts bound it). `onStart` runs as the first requests go out.
 */
export async function runLoad(o: LoadOptions, onStart?: (t: number) => void): Promise<LoadResult> {
  const started = Date.now();
  const until = started + o.seconds * 1000;
  const results: RequestResult[] = [];
  onStart?.(started);
  // Each loop ends at `until`; a request takes at least a round trip, so the count is bounded too.
  await Promise.all(
    Array.from({ length: o.clients ?? 4 }, async () => {
      while (Date.now() < until) results.push(await requestOnce(o));
    }),
  );
  return summarize(started, results);
}

export function summarize(started: number, results: readonly RequestResult[]): LoadResult {
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)] ?? 0;
  const errors: Record<string, number> = {};
  for (const r of results) if (r.error !== undefined) errors[r.error] = (errors[r.error] ?? 0) + 1;
  const failed = results.filter((r) => r.error !== undefined).length;
  return {
    started,
    done: results.length - failed,
    failed,
    errors,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: ms.at(-1) ?? 0,
  };
}

/**
 * Asks /whoami through the balancer until `want` different apiservers answered, or `timeoutMs`
 * passed: after a fault is cleared, every backend serves again. Resolves with the names seen.
 * Not waitFor (wait.ts): this deadline counts the requests too (each up to 4 s while a backend
 * hangs), and a timeout is an answer here (the names seen so far), not a failure.
 */
export async function waitForBackends(o: {
  host: string;
  port: number;
  want: number;
  timeoutMs: number;
}): Promise<string[]> {
  const seen = new Set<string>();
  const until = Date.now() + o.timeoutMs;
  while (seen.size < o.want && Date.now() < until) {
    const quick = { host: o.host, port: o.port, seconds: 0, handshakeTimeoutMs: 2000, responseTimeoutMs: 2000 };
    const r = await requestOnce(quick, '/whoami');
    if (r.error === undefined && r.body !== undefined) seen.add(r.body.trim());
    else await new Promise((res) => setTimeout(res, 100));
  }
  return [...seen].sort();
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const [host = '', port = '6443'] = args;
  const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const want = numberFlag(args, '--backends', 0);
  const job =
    want > 0
      ? waitForBackends({ host, port: Number(port), want, timeoutMs: numberFlag(args, '--timeout', 20_000) }).then(
          (names) => say({ kind: 'backends', names }),
        )
      : runLoad(
          {
            host,
            port: Number(port),
            clients: numberFlag(args, '--clients', 4),
            seconds: numberFlag(args, '--seconds', 6),
          },
          (t) => say({ kind: 'started', t }),
        ).then((r) => say({ kind: 'result', ...r }));
  void job.then(
    () => process.exit(0),
    (err: unknown) => {
      say({ kind: 'error', error: describeError(err) });
      process.exit(1);
    },
  );
}
