/**
 * Sends the takeover's tickle ACKs (tickle.ts) to every connection the dead master held: in batches,
 * in a few passes and rounds, cancellable. Where the list of connections comes from is the caller's
 * business; so is the socket (src/native/raw-socket.ts in the daemon, a fake in tests), which this
 * never closes.
 *
 * - Batches: a list can hold thousands of watches. After each batch (`batchSize` packets or
 *   `batchBudgetMs`, whichever comes first) the sender yields to the event loop (setImmediate, so
 *   pending I/O runs first): the election's heartbeats and the proxy's accepts go on meanwhile. The
 *   time budget matters where a send is dear: on veth the sendto() runs the receiver's whole stack
 *   too, about 30 us a packet in test/tickle-netns.test.ts, so 500 packets would hold the loop 15 ms.
 * - A full socket (send returns false) pauses the sender a few milliseconds, then the same packet is
 *   sent again; after too many pauses in one round the rest of that round is given up and counted.
 * - Rounds: a tickle, the client's answering ACK or the RST can be lost, and a neighbour queue drops
 *   packets past its byte limit while ARP resolves a client. So the whole list is sent again later.
 *   Not sooner than 500 ms after the previous round: a client answers at most one out-of-window
 *   segment per socket per net.ipv4.tcp_invalid_ratelimit (500 ms by default), and ignores the rest.
 * - Passes: each round goes over the list once per (seq, ack) pair of `seqAck`, because one pair can
 *   miss a connection for good. A sequence number that happens to fall inside the client's receive
 *   window draws no ACK; a window is at most 2^30 bytes (RFC 7323 §2.3), so of 0 and 2^31 at most one
 *   is inside. And where the client's connection tracking feeds a `ct state invalid drop` rule, a
 *   tickle whose seq is past the upper end of the window conntrack tracks, or whose ack is past the
 *   data it has seen, is INVALID and dropped; below the lower ends it is let through (Linux >= 6.0,
 *   "netfilter: conntrack: ignore overly delayed tcp packets"). Whether a seq passes depends only on
 *   which half of the sequence-number circle (as seen from the connection) it lies in, and so for an
 *   ack: of 0 and 2^31 exactly one passes for each, so exactly one of the four pairs gets through, and
 *   one pair alone reaches about a quarter of such clients (test/tickle-netns.test.ts shows both).
 *   The extra packets cost little where the first pass worked: the client's answer to them falls
 *   under the rate limit, or, once its socket is reset, is a RST that the new master ignores.
 * - Families: with a dual-stack pair of VIPs the list holds IPv4 and IPv6 clients, each tickled from
 *   the VIP of its family in one schedule (one batch budget for both, so the event loop is held no
 *   longer than with one family); the socket sends either (takeover.ts's RawTickler: one raw socket
 *   per family). The Linux rate limit and the conntrack rules above are the same for TCP over IPv6.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { describeError } from '../errors';
import { buildTickleAck, checkIpv4, checkIpv6, checkPort } from './tickle';

/** One connection of the dead master: client address and port, and the VIP's port it was connected to. */
export interface TickleTarget {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly vipPort: number;
}

/**
 * What sends one packet (IPv4 to an IPv4 dstIp, IPv6 to an IPv6 one): a raw socket of the targets'
 * family, both behind one object for a dual-stack pair (takeover.ts), or a fake in tests.
 */
export interface TickleSocket {
  /** True when sent, false when the kernel had no room (send it again after a pause); throws when refused. */
  send(packet: Buffer, dstIp: string): boolean;
}

/** The sender's clock and timers, injected so that a test runs a whole schedule in virtual time. */
export interface TickleScheduler {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms`; 0 means once pending I/O has run (setImmediate). Returns its cancel. */
  schedule(fn: () => void, ms: number): () => void;
}

export interface TickleSenderOptions {
  readonly socket: TickleSocket;
  /**
   * The VIP, the source of every tickle; or a dual-stack pair, one VIP per family: each target is
   * tickled from the VIP of its family, and must have one.
   */
  readonly vip: string | readonly string[];
  readonly targets: readonly TickleTarget[];
  /**
   * When each round starts, in ms from start(); increasing. A round that overruns delays the next one,
   * which still starts no sooner than the spacing after the overrunning one started.
   */
  readonly roundsAtMs?: readonly number[];
  /**
   * The (seq, ack) pairs of a round, one pass over the list each, in order. Default: all four of
   * 0 and 2^31, (0, 0) first.
   */
  readonly seqAck?: ReadonlyArray<readonly [seq: number, ack: number]>;
  /** Packets sent between two yields to the event loop, at most. */
  readonly batchSize?: number;
  /** Time spent sending between two yields to the event loop, at most (checked after each packet). */
  readonly batchBudgetMs?: number;
  /** The pause after the socket reported it was full. */
  readonly backoffMs?: number;
  /** Pauses allowed in one round before the rest of it is given up (bounds a round's duration). */
  readonly maxBackoffsPerRound?: number;
  readonly scheduler?: TickleScheduler;
}

export interface TickleReport {
  /** Connections in the list. */
  readonly targets: number;
  /** Passes over the list per round (seqAck pairs). */
  readonly passes: number;
  /** Rounds sent to their end. */
  readonly rounds: number;
  /** Packets the kernel took: "sent" is handed over, not known to be on the wire. */
  readonly packetsSent: number;
  /** Packets not sent: refused by the kernel, or given up after the socket stayed full ('EAGAIN'). */
  readonly sendFailures: number;
  /** sendFailures by errno name. */
  readonly failuresByCode: Readonly<Record<string, number>>;
  /** Times the socket was full and the sender paused. */
  readonly backoffs: number;
  /** From start() to the end of the first pass, when every client has had one tickle; undefined if it never ended. */
  readonly firstPassMs: number | undefined;
  /** From start() to the end of the first round; undefined if stopped before. */
  readonly firstRoundMs: number | undefined;
  /** From start() to the end of the last round (or to stop()). */
  readonly durationMs: number;
  /** stop() ended it before the last round. */
  readonly stopped: boolean;
}

export const TICKLE_DEFAULTS = {
  // +600 ms is the first repeat a client does not ignore (the 500 ms rate limit and some margin);
  // +1500 ms gives a slow ARP resolution or a busy client a second chance.
  roundsAtMs: [0, 600, 1500],
  // (0, 0) first: it is the one that works on a client without connection tracking (unless 0 is in
  // its window); then the rest, in the order that covers the most of the other cases soonest.
  seqAck: [
    [0, 0],
    [0x8000_0000, 0x8000_0000],
    [0, 0x8000_0000],
    [0x8000_0000, 0],
  ],
  batchSize: 500,
  // A tenth of the election's default heartbeat interval (100 ms).
  batchBudgetMs: 10,
  backoffMs: 5,
  // 200 pauses of 5 ms: a round waits at most about a second for a full socket.
  maxBackoffsPerRound: 200,
} as const;

export const realScheduler: TickleScheduler = {
  now: () => performance.now(),
  schedule(fn, ms) {
    if (ms <= 0) {
      const immediate = setImmediate(fn);
      return () => clearImmediate(immediate);
    }
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

export class TickleSender {
  private readonly socket: TickleSocket;
  /** The source of each target's tickles: the VIP of its family. */
  private readonly sources: readonly string[];
  private readonly targets: readonly TickleTarget[];
  private readonly roundsAtMs: readonly number[];
  private readonly seqAck: ReadonlyArray<readonly [number, number]>;
  private readonly batchSize: number;
  private readonly batchBudgetMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffsPerRound: number;
  private readonly scheduler: TickleScheduler;

  /** Resolves once, when the last round ends or stop() is called. */
  readonly done: Promise<TickleReport>;
  private resolveDone!: (report: TickleReport) => void;
  private started = false;
  private finished = false;
  /** Cancels the one pending batch, pause or round: there is never more than one. */
  private cancelPending: (() => void) | undefined;

  private startedAt = 0;
  private round = 0;
  private roundStartedAt = 0;
  /** The next packet of the current round: pass `next / targets`, target `next % targets`. */
  private next = 0;
  private roundBackoffs = 0;

  private roundsDone = 0;
  private packetsSent = 0;
  private sendFailures = 0;
  private backoffs = 0;
  private readonly failuresByCode: Record<string, number> = {};
  private firstPassMs: number | undefined;
  private firstRoundMs: number | undefined;
  private endedAt: number | undefined;

  /** Throws TypeError or RangeError naming the option or target at fault (`targets[3].clientPort`). */
  constructor(options: TickleSenderOptions) {
    const {
      roundsAtMs = TICKLE_DEFAULTS.roundsAtMs,
      seqAck = TICKLE_DEFAULTS.seqAck,
      batchSize = TICKLE_DEFAULTS.batchSize,
      batchBudgetMs = TICKLE_DEFAULTS.batchBudgetMs,
      backoffMs = TICKLE_DEFAULTS.backoffMs,
      maxBackoffsPerRound = TICKLE_DEFAULTS.maxBackoffsPerRound,
    } = options;
    const vips = typeof options.vip === 'string' ? [options.vip] : [...options.vip];
    let vip4: string | undefined;
    let vip6: string | undefined;
    vips.forEach((vip, i) => {
      const field = typeof options.vip === 'string' ? 'vip' : `vip[${i}]`;
      if (typeof vip === 'string' && isIPv6(vip)) {
        checkIpv6(field, vip);
        if (vip6 !== undefined) throw new TypeError(`${field}: a second IPv6 VIP (${vip6} is one); one per family`);
        vip6 = vip;
      } else {
        if (typeof vip !== 'string' || !isIPv4(vip)) {
          throw new TypeError(`${field} must be an IPv4 or IPv6 address, not ${JSON.stringify(vip)}`);
        }
        if (vip4 !== undefined) throw new TypeError(`${field}: a second IPv4 VIP (${vip4} is one); one per family`);
        vip4 = vip;
      }
    });
    if (vips.length === 0) throw new TypeError('vip: at least one VIP');
    const sources = options.targets.map((target, i) => {
      const field = `targets[${i}].clientIp`;
      const ip: unknown = target.clientIp;
      // A client of a family this member has no VIP of cannot be tickled: the caller's list is wrong.
      if (typeof ip === 'string' && isIPv6(ip) && vip6 !== undefined) checkIpv6(field, ip);
      else if (vip4 !== undefined) checkIpv4(field, ip);
      else checkIpv6(field, ip);
      checkPort(`targets[${i}].clientPort`, target.clientPort);
      checkPort(`targets[${i}].vipPort`, target.vipPort);
      return (isIPv4(target.clientIp) ? vip4 : vip6) as string;
    });
    if (
      roundsAtMs.length === 0 ||
      roundsAtMs.some((at, i) => !Number.isFinite(at) || at < 0 || (i > 0 && at <= (roundsAtMs[i - 1] ?? 0)))
    ) {
      throw new RangeError(
        `roundsAtMs must be increasing non-negative ms, at least one, not [${roundsAtMs.join(', ')}]`,
      );
    }
    if (seqAck.length === 0) throw new RangeError('seqAck needs at least one (seq, ack) pair');
    seqAck.forEach(([seq, ack], i) => {
      // buildTickleAck checks them again for every packet; here the error names the option.
      for (const [name, value] of [
        ['seq', seq],
        ['ack', ack],
      ] as const) {
        if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
          throw new RangeError(`seqAck[${i}].${name} must be an integer from 0 to 2^32 - 1, not ${value}`);
        }
      }
    });
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
    }
    if (!(batchBudgetMs > 0)) throw new RangeError(`batchBudgetMs must be > 0, not ${batchBudgetMs}`);
    if (!Number.isFinite(backoffMs) || backoffMs < 0) throw new RangeError(`backoffMs must be >= 0, not ${backoffMs}`);
    if (!Number.isInteger(maxBackoffsPerRound) || maxBackoffsPerRound < 0) {
      throw new RangeError(`maxBackoffsPerRound must be a non-negative integer, not ${maxBackoffsPerRound}`);
    }
    this.socket = options.socket;
    this.sources = sources;
    // A copy: the caller may reuse its array while the rounds run.
    this.targets = [...options.targets];
    this.roundsAtMs = [...roundsAtMs];
    this.seqAck = seqAck.map(([seq, ack]) => [seq, ack] as const);
    this.batchSize = batchSize;
    this.batchBudgetMs = batchBudgetMs;
    this.backoffMs = backoffMs;
    this.maxBackoffsPerRound = maxBackoffsPerRound;
    this.scheduler = options.scheduler ?? realScheduler;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /**
   * Starts the first round: at once (its first batch within this call) when roundsAtMs[0] is 0.
   * Returns `done`. Calling it again, or after stop(), changes nothing.
   */
  start(): Promise<TickleReport> {
    if (this.started || this.finished) return this.done;
    this.started = true;
    this.startedAt = this.scheduler.now();
    if (this.targets.length === 0) {
      this.finish(false);
      return this.done;
    }
    const firstAt = this.roundsAtMs[0] ?? 0;
    if (firstAt <= 0) this.beginRound();
    else this.cancelPending = this.scheduler.schedule(() => this.beginRound(), firstAt);
    return this.done;
  }

  /** Cancels what is left (this node lost the VIP again) and clears every timer. Idempotent. */
  stop(): void {
    if (this.finished) return;
    this.cancelPending?.();
    this.cancelPending = undefined;
    this.finish(true);
  }

  private beginRound(): void {
    this.cancelPending = undefined;
    this.roundStartedAt = this.scheduler.now();
    this.next = 0;
    this.roundBackoffs = 0;
    this.sendBatch();
  }

  private sendBatch(): void {
    this.cancelPending = undefined;
    const count = this.targets.length;
    const roundPackets = count * this.seqAck.length;
    const end = Math.min(this.next + this.batchSize, roundPackets);
    const first = this.next;
    const budgetEnds = this.scheduler.now() + this.batchBudgetMs;
    // `finished` too: a socket could call stop() from inside send(). At least one packet per batch,
    // however slow the clock says sending is.
    while (this.next < end && !this.finished && (this.next === first || this.scheduler.now() < budgetEnds)) {
      const target = this.targets[this.next % count];
      const source = this.sources[this.next % count];
      const pair = this.seqAck[Math.floor(this.next / count)];
      if (target === undefined || source === undefined || pair === undefined) break;
      const packet = buildTickleAck({
        srcIp: source,
        srcPort: target.vipPort,
        dstIp: target.clientIp,
        dstPort: target.clientPort,
        seq: pair[0],
        ack: pair[1],
      });
      let sent: boolean;
      try {
        sent = this.socket.send(packet, target.clientIp);
      } catch (err) {
        // One client the kernel will not route to must not cost the others their tickle.
        this.countFailures(failureCode(err), 1);
        this.advance();
        continue;
      }
      if (!sent) {
        this.backoffs++;
        this.roundBackoffs++;
        if (this.roundBackoffs > this.maxBackoffsPerRound) {
          this.countFailures('EAGAIN', roundPackets - this.next);
          this.endRound();
        } else {
          this.cancelPending = this.scheduler.schedule(() => this.sendBatch(), this.backoffMs);
        }
        return;
      }
      this.packetsSent++;
      this.advance();
    }
    if (this.finished) return;
    if (this.next < roundPackets) this.cancelPending = this.scheduler.schedule(() => this.sendBatch(), 0);
    else this.endRound();
  }

  private advance(): void {
    this.next++;
    if (this.round === 0 && this.next === this.targets.length) {
      this.firstPassMs = this.scheduler.now() - this.startedAt;
    }
  }

  private endRound(): void {
    const now = this.scheduler.now();
    this.roundsDone++;
    if (this.round === 0) this.firstRoundMs = now - this.startedAt;
    const following = this.round + 1;
    const at = this.roundsAtMs[following];
    if (at === undefined) {
      this.finish(false);
      return;
    }
    const spacing = at - (this.roundsAtMs[this.round] ?? 0);
    this.round = following;
    this.cancelPending = this.scheduler.schedule(
      () => this.beginRound(),
      Math.max(0, this.roundStartedAt + spacing - now),
    );
  }

  private countFailures(code: string, count: number): void {
    this.sendFailures += count;
    this.failuresByCode[code] = (this.failuresByCode[code] ?? 0) + count;
  }

  private finish(stopped: boolean): void {
    this.finished = true;
    this.endedAt = this.started ? this.scheduler.now() : undefined;
    this.resolveDone(this.report(stopped));
  }

  private report(stopped: boolean): TickleReport {
    return {
      targets: this.targets.length,
      passes: this.seqAck.length,
      rounds: this.roundsDone,
      packetsSent: this.packetsSent,
      sendFailures: this.sendFailures,
      failuresByCode: { ...this.failuresByCode },
      backoffs: this.backoffs,
      firstPassMs: this.firstPassMs,
      firstRoundMs: this.firstRoundMs,
      durationMs: this.endedAt === undefined ? 0 : this.endedAt - this.startedAt,
      stopped,
    };
  }
}

/** The errno of a failed send: the raw sockets wrap the addon's error (whose `code` it is) as `cause`. */
function failureCode(err: unknown): string {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return describeError(cause);
}
