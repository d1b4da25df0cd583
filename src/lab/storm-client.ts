/**
 * The reconnect storm's clients: many idle TLS connections through VIP:6443, each an open watch of
 * one object that does not change (as a kubelet watches its own Node), each opened again when it
 * breaks. When the master's node dies, how soon they are all back, and what absorbing them costs
 * the new master, is the storm's figure (client-drill.ts). The drill runs it in the client
 * namespace (`node storm-client.js HOST PORT --clients N [--first K]`, a JSON line per connection
 * up or down, stops when stdin closes), several processes for many clients; a test can run
 * `StormClient` in-process.
 *
 * The clients behave like client-go's, nothing faster or slower:
 * - Noticing a dead connection: client-go pings an HTTP/2 connection that has been silent for
 *   30 s and drops it when no answer comes in 15 s (HTTP2_READ_IDLE_TIMEOUT_SECONDS,
 *   HTTP2_PING_TIMEOUT_SECONDS), and its dialer turns TCP keepalive on at 30 s. These connections
 *   speak HTTP/1.1, so TCP keepalive plays the ping: 30 s idle here (`keepAliveMs`); the 15 s
 *   without an answer is the client namespace's tcp_keepalive_intvl and tcp_keepalive_probes (15 s,
 *   1), which the storm event sets, Node having no per-socket knob for them.
 * - Reconnecting: a broken watch is retried after the reflector's backoff (800 ms doubled per
 *   failure in a row, at most 30 s, times 1 to 2 for jitter), reset once a connection is up. A
 *   connect waits 10 s for the TLS handshake (client-go's TLSHandshakeTimeout), then 30 s for the
 *   answer's head.
 */
import tls from 'node:tls';
import { numberFlag, runUntilStdinCloses } from './program-args';

/** An HTTP Host header's value: an IPv6 address in brackets. */
const hostHeader = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

export interface StormOptions {
  readonly host: string;
  readonly port: number;
  readonly clients: number;
  /** The first slot's number, so that several processes number their clients apart (default 0). */
  readonly first?: number;
  /** TCP keepalive's idle time (default 30 s, as client-go). */
  readonly keepAliveMs?: number;
  /** Connects under way at once while the clients first come up (default 100). */
  readonly rampConcurrency?: number;
  /**
   * The first connects spread evenly over this long (default 0: as fast as they go). Over the
   * keepalive time, the clients' keepalive probes fall evenly over it, as in a cluster whose
   * clients connected at different times; all at once, every probe would fall in the same second.
   */
  readonly spreadMs?: number;
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly handshakeTimeoutMs?: number;
  readonly headTimeoutMs?: number;
}

/** A client's connection came up (`up`: its watch answered 200) or went down (`error`: why). */
export interface StormReport {
  readonly slot: number;
  readonly t: number;
  readonly up: boolean;
  readonly error?: string;
}

interface Slot {
  readonly n: number;
  socket?: tls.TLSSocket;
  up: boolean;
  failures: number;
  timer?: NodeJS.Timeout;
}

export class StormClient {
  private readonly slots: Slot[];
  private closed = false;

  constructor(
    private readonly o: StormOptions,
    private readonly report: (r: StormReport) => void,
  ) {
    const first = o.first ?? 0;
    this.slots = Array.from({ length: o.clients }, (_, i) => ({ n: first + i, up: false, failures: 0 }));
  }

  /** Connections up now. */
  get established(): number {
    return this.slots.filter((s) => s.up).length;
  }

  /**
   * Opens every client's first connection, `rampConcurrency` at a time and spread over `spreadMs`;
   * resolves when each was tried once.
   */
  async start(): Promise<void> {
    let next = 0;
    const begin = Date.now();
    const step = (this.o.spreadMs ?? 0) / this.slots.length;
    await Promise.all(
      Array.from({ length: Math.min(this.o.rampConcurrency ?? 100, this.slots.length) }, async () => {
        while (next < this.slots.length && !this.closed) {
          const i = next++;
          const slot = this.slots[i];
          if (slot === undefined) break;
          const wait = begin + i * step - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          await new Promise<void>((resolve) => this.connect(slot, resolve));
        }
      }),
    );
  }

  /** Closes every connection; no client reconnects afterwards. Idempotent. */
  close(): void {
    this.closed = true;
    for (const s of this.slots) {
      clearTimeout(s.timer);
      s.socket?.destroy();
    }
  }

  /** One connection for `slot`; `settled` runs once it is up or has failed. */
  private connect(slot: Slot, settled: () => void = () => undefined): void {
    if (this.closed) {
      settled();
      return;
    }
    const socket = tls.connect({ host: this.o.host, port: this.o.port, rejectUnauthorized: false });
    slot.socket = socket;
    socket.setKeepAlive(true, this.o.keepAliveMs ?? 30_000);
    let head = '';
    const handshakeMs = this.o.handshakeTimeoutMs ?? 10_000;
    let timer = setTimeout(() => socket.destroy(new Error('tls-handshake-timeout')), handshakeMs);
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) {
        if (head.length > 16_384) socket.destroy(new Error('no-response-head'));
        return;
      }
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) {
        socket.destroy(new Error(head.slice(0, 12)));
        return;
      }
      clearTimeout(timer);
      slot.up = true;
      slot.failures = 0;
      this.report({ slot: slot.n, t: Date.now(), up: true });
      socket.resume(); // a quiet watch: nothing more should come, and nothing is kept if it does
      settled();
    };
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(new Error('response-head-timeout')), this.o.headTimeoutMs ?? 30_000);
      socket.write(
        `GET /api/v1/nodes?fieldSelector=metadata.name%3Dstorm-${slot.n}&watch=true HTTP/1.1\r\n` +
          `Host: ${hostHeader(this.o.host, this.o.port)}\r\nAccept: application/json\r\nUser-Agent: vipd-lab-storm\r\n\r\n`,
      );
    });
    socket.on('data', onData);
    let error: string | undefined;
    socket.once('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (slot.socket !== socket) return;
      slot.socket = undefined;
      if (slot.up) this.report({ slot: slot.n, t: Date.now(), up: false, error: error ?? 'closed' });
      slot.up = false;
      settled();
      if (this.closed) return;
      const base = Math.min(this.o.maxBackoffMs ?? 30_000, (this.o.backoffMs ?? 800) * 2 ** slot.failures);
      slot.failures += 1;
      slot.timer = setTimeout(() => this.connect(slot), base * (1 + Math.random()));
    });
  }
}

/** The storm's connections as the drill saw them, from the clients' reports. */
export class StormLog {
  private readonly ups = new Map<number, number[]>();
  private readonly downs = new Map<number, number[]>();
  private readonly state = new Map<number, boolean>();
  private count = 0;

  /** One line of storm-client's output; anything else is ignored. */
  add(line: string): void {
    let r: Partial<StormReport>;
    try {
      r = JSON.parse(line) as Partial<StormReport>;
    } catch {
      return;
    }
    if (typeof r.slot !== 'number' || typeof r.t !== 'number' || typeof r.up !== 'boolean') return;
    const times = r.up ? this.ups : this.downs;
    const list = times.get(r.slot) ?? [];
    list.push(r.t);
    times.set(r.slot, list);
    if (r.up !== (this.state.get(r.slot) ?? false)) this.count += r.up ? 1 : -1;
    this.state.set(r.slot, r.up);
  }

  /** Connections up now. */
  get established(): number {
    return this.count;
  }

  /**
   * Per client (of `clients`, slots 0..clients-1): the ms from `since` to its first connection up
   * after it, or undefined if none came up (it still holds, or waits on, its old one).
   */
  /**
   * Per client (of `clients`): the ms from `since` until its connection failed (reset, closed),
   * or undefined if it did not (it still holds its old one).
   */
  failures(since: number, clients: number): (number | undefined)[] {
    return Array.from({ length: clients }, (_, slot) => {
      const t = this.downs.get(slot)?.find((d) => d > since);
      return t === undefined ? undefined : t - since;
    });
  }

  reconnects(since: number, clients: number): (number | undefined)[] {
    return Array.from({ length: clients }, (_, slot) => {
      const t = this.ups.get(slot)?.find((u) => u > since);
      return t === undefined ? undefined : t - since;
    });
  }
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const [host = '', port = '6443'] = args;
  const client = new StormClient(
    {
      host,
      port: Number(port),
      clients: numberFlag(args, '--clients', 100),
      first: numberFlag(args, '--first', 0),
      keepAliveMs: numberFlag(args, '--keepalive-ms', 30_000),
      spreadMs: numberFlag(args, '--spread-ms', 0),
    },
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  );
  const stop = () => {
    client.close();
    process.exit(0);
  };
  runUntilStdinCloses(stop, numberFlag(args, '--max-seconds', 900));
  void client.start();
}
