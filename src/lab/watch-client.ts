/**
 * The lab's watching client: a `Watch` of @kubernetes/client-node (the JavaScript client the
 * Kubernetes project publishes) on the stand-in apiserver's event watch through VIP:6443, restarted
 * when it ends or fails, as an informer's reflector restarts it, and the arrival of every event
 * reported. The drill runs it in the client namespace (`node watch-client.js URL [maxSeconds]`,
 * JSON lines on stdout, stops when stdin closes); a test can run `WatchClient` in-process.
 *
 * What it does about a dead connection is the library's: client-node 1.4 turns TCP keepalive on
 * for the watch's socket with a 30 s idle time (and the kernel's defaults after that), so a watch
 * whose server died silently ends when a keepalive probe is answered with a reset (the VIP has
 * moved on to a node that does not know the connection), about 30 s after the last event.
 *
 * @kubernetes/client-node is a devDependency (see bench/README.md): without it the program says
 * so in one `unavailable` line and exits, and the drill goes on without the watch figures.
 */
import { describeError } from '../errors';
import { runUntilStdinCloses } from './program-args';

/** A line of the program's output. `watch` numbers the watches started, from 1. */
export type WatchReport =
  | { readonly kind: 'unavailable'; readonly t: number; readonly error: string }
  | { readonly kind: 'start'; readonly t: number; readonly watch: number }
  | { readonly kind: 'event'; readonly t: number; readonly watch: number; readonly rv: string }
  | { readonly kind: 'end'; readonly t: number; readonly watch: number; readonly error?: string };

export interface WatchClientOptions {
  /** The apiserver's URL, e.g. https://10.77.0.100:6443 (its certificate is not verified). */
  readonly server: string;
  /** The collection to watch (default: the events of namespace default). */
  readonly path?: string;
  /** The reflector's backoff after a failed watch (default 800 ms, doubling up to 30 s). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
}

const EVENTS_PATH = '/api/v1/namespaces/default/events';

/** client-node is an ES module: a CommonJS file reaches it by import(), and its types likewise. */
const loadClientNode = () => import('@kubernetes/client-node');
type ClientNode = Awaited<ReturnType<typeof loadClientNode>>;

/**
 * Watches until `close()`. After a watch that ended cleanly it watches again at once from the
 * last resourceVersion it saw; after one that failed it waits first, as client-go's reflector does
 * (its backoff manager: 800 ms, doubled per failure in a row, at most 30 s, times 1 to 2 for
 * jitter), and the wait is reset by a watch that delivered an event.
 */
export class WatchClient {
  private watches = 0;
  private resourceVersion: string | undefined;
  private failures = 0;
  private closed = false;
  private abort: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: WatchClientOptions,
    private readonly report: (r: WatchReport) => void,
  ) {}

  /** Starts watching; resolves once the first watch is under way (or the library is missing). */
  async start(): Promise<void> {
    let k8s: ClientNode;
    try {
      k8s = await loadClientNode();
    } catch (err) {
      this.closed = true;
      this.report({ kind: 'unavailable', t: Date.now(), error: describeError(err) });
      return;
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'lab', server: this.options.server, skipTLSVerify: true }],
      users: [{ name: 'lab' }],
      contexts: [{ name: 'lab', cluster: 'lab', user: 'lab' }],
      currentContext: 'lab',
    });
    await this.watchOnce(new k8s.Watch(kc));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.abort?.();
  }

  private async watchOnce(watch: InstanceType<ClientNode['Watch']>): Promise<void> {
    if (this.closed) return;
    const n = ++this.watches;
    let delivered = false;
    let ended = false;
    this.report({ kind: 'start', t: Date.now(), watch: n });
    const done = (err: unknown) => {
      if (ended) return;
      ended = true;
      this.abort = undefined;
      const error = err === null || err === undefined ? undefined : describe(err);
      this.report({ kind: 'end', t: Date.now(), watch: n, ...(error === undefined ? {} : { error }) });
      if (delivered) this.failures = 0;
      if (error === undefined) {
        void this.watchOnce(watch);
        return;
      }
      const base = Math.min(this.options.maxBackoffMs ?? 30_000, (this.options.backoffMs ?? 800) * 2 ** this.failures);
      this.failures += 1;
      this.timer = setTimeout(() => void this.watchOnce(watch), base * (1 + Math.random()));
    };
    const query = this.resourceVersion === undefined ? {} : { resourceVersion: this.resourceVersion };
    const controller = await watch
      .watch(
        this.options.path ?? EVENTS_PATH,
        query,
        (_type, object: unknown) => {
          const rv = (object as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ?? '';
          if (rv !== '') this.resourceVersion = rv;
          delivered = true;
          this.report({ kind: 'event', t: Date.now(), watch: n, rv });
        },
        done,
      )
      .catch((err: unknown) => {
        done(err);
        return undefined;
      });
    if (controller !== undefined && !ended) this.abort = () => controller.abort();
    if (this.closed) this.abort?.();
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; statusCode?: number; message?: string; name?: string };
  const status = e.statusCode === undefined ? undefined : `HTTP ${e.statusCode}`;
  return e.code ?? status ?? e.message ?? e.name ?? String(err);
}

/** One watch's life, as the drill saw it: when it started, its events' arrival times, its end. */
interface WatchLife {
  readonly start: number;
  readonly events: number[];
  end?: number;
  error?: string;
}

/**
 * What the watching client reported, read back by the drill, and the figures: a resumed watch is
 * one started after the fault that delivered an event (events the old connection still carried
 * in after the fault do not count). Waits are bounded by their own timeouts.
 */
export class WatchLog {
  unavailable: string | undefined;
  private readonly lives = new Map<number, WatchLife>();
  private waiters: (() => void)[] = [];

  /** One line of watch-client's output; anything else is ignored. */
  add(line: string): void {
    let r: WatchReport;
    try {
      r = JSON.parse(line) as WatchReport;
    } catch {
      return;
    }
    if (r.kind === 'unavailable') this.unavailable = r.error;
    else if (r.kind === 'start') this.lives.set(r.watch, { start: r.t, events: [] });
    else if (r.kind === 'event') this.lives.get(r.watch)?.events.push(r.t);
    else if (r.kind === 'end') {
      const life = this.lives.get(r.watch);
      if (life !== undefined) {
        life.end = r.t;
        if (r.error !== undefined) life.error = r.error;
      }
    } else return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** How many watches were started after `t`. */
  restartsAfter(t: number): number {
    return [...this.lives.values()].filter((l) => l.start > t).length;
  }

  /** The first end (failure or close) of a watch after `t`: its time, if any ended. */
  firstEndAfter(t: number): number | undefined {
    const ends = [...this.lives.values()].map((l) => l.end).filter((e): e is number => e !== undefined && e > t);
    return ends.length === 0 ? undefined : Math.min(...ends);
  }

  /** The first event of a watch started after `t`: its arrival time, if any arrived. */
  resumedAfter(t: number): number | undefined {
    const firsts = [...this.lives.values()].filter((l) => l.start > t).flatMap((l) => l.events.slice(0, 1));
    return firsts.length === 0 ? undefined : Math.min(...firsts);
  }

  /** The last event that arrived at or before `t`. */
  lastEventBefore(t: number): number | undefined {
    let last: number | undefined;
    for (const l of this.lives.values()) {
      for (const e of l.events) if (e <= t && (last === undefined || e > last)) last = e;
    }
    return last;
  }

  /** How the watches that ended after `t` ended (an error code, or "closed"), in order. */
  endsAfter(t: number): string[] {
    return [...this.lives.values()].filter((l) => l.end !== undefined && l.end > t).map((l) => l.error ?? 'closed');
  }

  /** Resolves when `pred` holds, or after `timeoutMs` (or once the client is unavailable). */
  waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        resolve(pred());
      }, timeoutMs);
      const check = () => {
        if (done) return;
        if (!pred() && this.unavailable === undefined) {
          this.waiters.push(check);
          return;
        }
        done = true;
        clearTimeout(timer);
        resolve(pred());
      };
      check();
    });
  }

  /** Events flowing: one arrived after `t` on some watch. */
  flowingAfter(t: number): boolean {
    return [...this.lives.values()].some((l) => l.events.some((e) => e > t));
  }
}

if (require.main === module) {
  const [server = '', maxSeconds = '600'] = process.argv.slice(2);
  const client = new WatchClient({ server }, (r) => process.stdout.write(`${JSON.stringify(r)}\n`));
  const stop = () => {
    client.close();
    process.exit(0);
  };
  runUntilStdinCloses(stop, Number(maxSeconds));
  void client.start().catch((err: unknown) => {
    process.stdout.write(`${JSON.stringify({ kind: 'unavailable', t: Date.now(), error: describeError(err) })}\n`);
    process.exit(1);
  });
}
