/**
 * A whole cluster of election state machines on a simulated network and simulated hosts, driven by
 * a virtual clock. Deterministic for a seed, so a failing invariant replays exactly.
 *
 * What it models, and why each matters to the election:
 * - the network: a delay with jitter, FIFO links unless reordering is switched on, random loss per
 *   link and per direction, one-way and two-way partitions, duplicated messages, an attacker
 *   replaying recorded heartbeats;
 * - the hosts: each has its own monotonic clock running at a slightly different rate (drift), its
 *   timers fire a little late, its process can stall (SIGSTOP: nothing runs, messages queue in the
 *   socket and are read on resume, in order), crash (the process is gone but the kernel keeps the
 *   VIP until its lifetime runs out) or lose power (the VIP goes with it), stop gracefully and
 *   restart with a new epoch;
 * - the kernel: the VIP with a lifetime (plus up to LIFETIME_SLACK_MS of the kernel's timer slack),
 *   renewals, and netlink operations that can fail; the runner's release retries.
 * Messages go through the same admission as the runner's (Inbox: member list, replay guard).
 *
 * Invariants are checked after every event (checkSafety): at most one member holds a lease, at most
 * one member holds the VIP and announces it, and every other copy of the VIP is excused and
 * bounded (a stalled or dead process's copy until its lifetime ends, a handover's quiet copy, a
 * release being retried). A failure throws with the seed and the recent trace.
 */
import { Inbox } from '../../src/vrrp/inbox';
import { type ElectionState, initialState, leaseUntil, step } from '../../src/vrrp/state-machine';
import { handoverTimeoutMs } from '../../src/vrrp/timing';
import type {
  ElectionAction,
  ElectionEvent,
  ElectionSettings,
  Heartbeat,
  Member,
  Reconfigurable,
  TrackEffect,
} from '../../src/vrrp/types';

export interface SimOptions {
  readonly members: number;
  readonly intervalMs?: number;
  readonly deadAfter?: number;
  readonly maxDeadAfter?: number;
  readonly quorum?: 'majority' | 'none';
  /**
   * A new cluster: every host's disk starts without the record that the cluster formed (else each
   * starts formed, as an established cluster does). The 'formed' action writes the record; it
   * survives crashes and restarts, as the state file does.
   */
  readonly bootstrap?: boolean;
  /** Members that run as observers (a dry run): they vote and acknowledge, never lead. */
  readonly observers?: readonly string[];
  /**
   * Witnesses (peers[].role: witness): every member's list marks them, and they run as observers.
   */
  readonly witnesses?: readonly string[];
  /** Members on IPv6 addresses (fd00::1, fd00::2, ...) instead of 10.0.0.x: the same order, another code path. */
  readonly ipv6?: boolean;
  /**
   * A member whose config names another bootstrap member (its peers listed in another order), by
   * member name; the others name the first member.
   */
  readonly bootstrapOf?: Readonly<Record<string, string>>;
  readonly preempt?: boolean;
  readonly preemptDelayMs?: number;
  readonly priorities?: readonly number[];
  readonly seed?: number;
  /** One-way delivery delay: base + uniform jitter. */
  readonly delayMs?: number;
  readonly jitterMs?: number;
  /** Probability that any one message is lost (every link; `setLoss` sets one link). */
  readonly dropRate?: number;
  /** Probability that a delivered message is delivered a second time, later. */
  readonly duplicateRate?: number;
  /** Let a message overtake an earlier one on the same link (links are FIFO otherwise, as on a LAN). */
  readonly reorder?: boolean;
  /** Each host's clock runs at 1 ± up to this rate difference. */
  readonly drift?: number;
  /** Timers fire up to this late (below the stall threshold). */
  readonly timerLatenessMs?: number;
  readonly vipLifetimeMs?: number;
  /** Probability that a netlink operation fails. */
  readonly netlinkFailRate?: number;
  /** Check the invariants after every event (the default). */
  readonly check?: boolean;
}

/** The kernel removes an expired address up to this late (measured here: 1.02-1.37 s for 1 s). */
export const LIFETIME_SLACK_MS = 400;
const RELEASE_RETRY_MS = 200;
const TRACE_LINES = 80;

interface Kernel {
  present: boolean;
  expiresAt: number;
  /** The VIP owner's own view: acquired, not released, not quiesced (it announces). */
  holding: boolean;
  quietSince: number | undefined;
  releasePending: boolean;
}

export interface SimNode {
  readonly member: Member;
  settings: ElectionSettings;
  state: ElectionState;
  proc: 'up' | 'stalled' | 'down';
  stalledUntil: number;
  /** Real time of the pending tick, to ignore superseded ones. */
  tickAt: number | undefined;
  readonly clockOffset: number;
  readonly clockRate: number;
  epochs: number;
  inbox: Inbox;
  kernel: Kernel;
  /** The state file's record that the cluster formed. */
  formedOnDisk: boolean;
}

type Item =
  | { at: number; order: number; node: string; kind: 'tick' }
  | { at: number; order: number; node: string; kind: 'deliver'; hb: Heartbeat; from: string }
  | { at: number; order: number; node: string; kind: 'retryRelease' }
  | { at: number; order: number; node: string; kind: 'vipFailed'; op: 'acquire' | 'renew' };

const SECRET = Buffer.from('sim-secret-0123456789');

export class SimCluster {
  /** Real (global) time, ms. */
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  readonly interval: number;
  dropRate: number;
  duplicateRate: number;
  netlinkFailRate: number;
  reorder: boolean;
  /** Every change in the set of hosts with the VIP in the kernel: [time, holders]. */
  readonly holderHistory: { at: number; holders: string[] }[] = [];
  /** Every action taken, with its time and node (for tests that look at them). */
  readonly log: { at: number; node: string; action: ElectionAction }[] = [];
  readonly stats = { maxOverlapMs: 0, overlapMs: 0, acquisitions: 0 };
  private readonly heap: Item[] = [];
  private order = 0;
  private readonly rng: () => number;
  private readonly blocked = new Set<string>();
  private readonly linkLoss = new Map<string, number>();
  /** The last delivery time per link, to keep links FIFO unless reordering is on. */
  private readonly linkLast = new Map<string, number>();
  private readonly recorded: { hb: Heartbeat; from: string }[] = [];
  private readonly trace: string[] = [];
  private overlapSince: number | undefined;
  private readonly checking: boolean;

  constructor(readonly opts: SimOptions) {
    this.rng = mulberry32(opts.seed ?? 1);
    this.interval = opts.intervalMs ?? 100;
    this.dropRate = opts.dropRate ?? 0;
    this.duplicateRate = opts.duplicateRate ?? 0;
    this.netlinkFailRate = opts.netlinkFailRate ?? 0;
    this.reorder = opts.reorder ?? false;
    this.checking = opts.check ?? true;
    const members: Member[] = Array.from({ length: opts.members }, (_, i) => {
      const name = `n${i + 1}`;
      const address = opts.ipv6 === true ? `fd00::${(i + 1).toString(16)}` : `10.0.0.${i + 1}`;
      return opts.witnesses?.includes(name) ? { name, address, witness: true } : { name, address };
    });
    members.forEach((member, i) => {
      const settings = this.settingsFor(member, members, opts.priorities?.[i] ?? 100);
      const drift = opts.drift ?? 0;
      this.nodes.set(member.name, {
        member,
        settings,
        state: initialState(settings),
        proc: 'down',
        stalledUntil: 0,
        tickAt: undefined,
        clockOffset: 1_000_000 * (i + 1) + Math.floor(this.rng() * 1000),
        clockRate: 1 + drift * (2 * this.rng() - 1),
        epochs: 0,
        inbox: new Inbox(settings, SECRET),
        kernel: { present: false, expiresAt: 0, holding: false, quietSince: undefined, releasePending: false },
        formedOnDisk: !(opts.bootstrap ?? false),
      });
    });
  }

  settingsFor(self: Member, members: readonly Member[], priority: number): ElectionSettings {
    const o = this.opts;
    return {
      clusterId: 1,
      self,
      members,
      intervalMs: this.interval,
      deadAfter: o.deadAfter ?? 3,
      maxDeadAfter: o.maxDeadAfter ?? 30,
      priority,
      preempt: o.preempt ?? true,
      preemptDelayMs: o.preemptDelayMs ?? 0,
      quorum: o.quorum ?? 'majority',
      vipLifetimeMs: o.vipLifetimeMs ?? 1000,
      bootstrap: o.bootstrapOf?.[self.name] ?? members[0]?.name ?? self.name,
      formed: !(o.bootstrap ?? false),
      observer: (o.observers?.includes(self.name) ?? false) || (o.witnesses?.includes(self.name) ?? false),
    };
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  /** A host's monotonic clock at real time `t`. */
  localTime(n: SimNode, t = this.now): number {
    return n.clockOffset + n.clockRate * t;
  }
  private realTime(n: SimNode, local: number): number {
    return (local - n.clockOffset) / n.clockRate;
  }

  // ---- faults and operations ---------------------------------------------------------------------

  /** Starts the named processes (all by default): a fresh state, a new epoch; a leftover VIP is removed first (prepare). */
  start(...names: string[]): void {
    this.startWith(names, (n) => n.epochs * 1_000_000);
  }

  /** Starts a process whose wall clock stepped back: its epoch is lower than its previous run's. */
  startClockBack(name: string): void {
    this.startWith([name], () => 1);
  }

  private startWith(names: readonly string[], epochOf: (n: SimNode) => number): void {
    for (const name of names.length ? names : this.names()) {
      const n = this.node(name);
      if (n.proc !== 'down') continue;
      n.settings = { ...n.settings, formed: n.formedOnDisk };
      n.state = initialState(n.settings);
      n.inbox = new Inbox(n.settings, SECRET);
      n.proc = 'up';
      n.epochs += 1;
      n.tickAt = undefined;
      n.kernel = { present: false, expiresAt: 0, holding: false, quietSince: undefined, releasePending: false };
      this.apply(n, { type: 'start', now: this.localTime(n), epoch: epochOf(n) });
    }
    this.afterEvent();
  }

  /** SIGKILL or OOM: the process is gone, the kernel keeps the VIP until its lifetime ends. With `power`, the host is gone too. */
  crash(name: string, power = false): void {
    const n = this.node(name);
    n.proc = 'down';
    n.tickAt = undefined;
    n.kernel.holding = false;
    n.kernel.releasePending = false;
    if (power) n.kernel.present = false;
    this.traceLine(`${name} ${power ? 'loses power' : 'crashes'}`);
    this.afterEvent();
  }

  /** SIGTERM: the state machine hands over or resigns; the process exits once it reports `stopped`. */
  stop(name: string): void {
    const n = this.node(name);
    if (n.proc !== 'up') return;
    this.apply(n, { type: 'stop', now: this.localTime(n) });
    this.afterEvent();
  }

  /** SIGSTOP for `ms`, then SIGCONT: nothing runs, messages and timers wait, and are handled on resume. */
  stall(name: string, ms: number): void {
    const n = this.node(name);
    if (n.proc !== 'up') return;
    n.proc = 'stalled';
    n.stalledUntil = this.now + ms;
    this.traceLine(`${name} stalls for ${ms} ms`);
  }

  reconfigure(name: string, settings: Reconfigurable): void {
    const n = this.node(name);
    if (n.proc !== 'up') return;
    this.apply(n, { type: 'reconfigure', now: this.localTime(n), settings });
    this.afterEvent();
  }

  /** A rolling membership change: this node's next start uses another member list. */
  setMembers(name: string, members: readonly Member[]): void {
    const n = this.node(name);
    const self = members.find((m) => m.name === name);
    if (self === undefined) throw new Error(`${name} is not in the new list`);
    n.settings = this.settingsFor(self, members, n.settings.priority);
  }

  track(name: string, check: string, effect: TrackEffect): void {
    const n = this.node(name);
    if (n.proc !== 'up') return;
    this.apply(n, { type: 'track', now: this.localTime(n), name: check, effect });
    this.afterEvent();
  }

  /** Drop everything from `from` to `to` (one way). */
  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }
  unblock(from: string, to: string): void {
    this.blocked.delete(`${from}>${to}`);
  }
  /** Loss on one link, one way (overrides the cluster-wide rate). */
  setLoss(from: string, to: string, rate: number): void {
    this.linkLoss.set(`${from}>${to}`, rate);
  }
  /** Two-way partition between two groups. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a)
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
  }
  heal(): void {
    this.blocked.clear();
    this.linkLoss.clear();
    this.dropRate = 0;
    this.reorder = false;
  }

  /** An attacker on the LAN sends `to` copies of heartbeats it recorded earlier (authentic, old). */
  replay(to: string, count: number): void {
    for (let i = 0; i < count && this.recorded.length > 0; i += 1) {
      const r = this.recorded[Math.floor(this.rng() * this.recorded.length)] as { hb: Heartbeat; from: string };
      if (r.hb.sender === to) continue;
      this.push({ at: this.now + 1 + this.rng() * 5, order: 0, node: to, kind: 'deliver', hb: r.hb, from: r.from });
    }
  }

  // ---- observation -------------------------------------------------------------------------------

  /** Hosts with the VIP in the kernel (whatever their process is doing). */
  holders(): string[] {
    return [...this.nodes.values()].filter((n) => this.present(n)).map((n) => n.member.name);
  }
  /** Hosts whose process runs, holds the VIP and announces it. */
  activeHolders(): string[] {
    return [...this.nodes.values()]
      .filter((n) => n.proc === 'up' && this.present(n) && n.kernel.holding)
      .map((n) => n.member.name);
  }
  masters(): string[] {
    return [...this.nodes.values()]
      .filter((n) => n.proc === 'up' && n.state.role === 'MASTER')
      .map((n) => n.member.name);
  }
  role(name: string): string {
    return this.node(name).state.role;
  }
  leaseHolders(): string[] {
    return [...this.nodes.values()].filter((n) => n.proc !== 'down' && this.leaseValid(n)).map((n) => n.member.name);
  }

  private present(n: SimNode): boolean {
    return n.kernel.present && this.now < n.kernel.expiresAt;
  }
  private leaseValid(n: SimNode): boolean {
    return n.state.role === 'MASTER' && this.localTime(n) < leaseUntil(n.state);
  }

  /** The longest stretch with two or more hosts holding the VIP in the kernel. */
  longestOverlap(): number {
    return Math.max(this.stats.maxOverlapMs, this.overlapSince === undefined ? 0 : this.now - this.overlapSince);
  }

  /** Takeovers: how many times the VIP appeared on a host that did not have it. */
  acquisitions(): number {
    return this.stats.acquisitions;
  }

  // ---- running -----------------------------------------------------------------------------------

  /** Runs the virtual clock forward by `ms`, processing every event on the way. */
  run(ms: number): void {
    const until = this.now + ms;
    for (let guard = 0; ; guard += 1) {
      if (guard > 20_000_000) throw this.failure('simulation did not settle: runaway event loop');
      const next = this.heap[0];
      if (next === undefined || next.at > until) break;
      this.pop();
      this.now = Math.max(this.now, next.at);
      this.process(next);
    }
    this.now = until;
    this.afterEvent();
  }

  /** Runs until `predicate` holds (checked every ms of virtual time), at most `maxMs`. Returns the time taken or undefined. */
  runUntil(predicate: () => boolean, maxMs: number): number | undefined {
    const start = this.now;
    while (this.now - start < maxMs) {
      if (predicate()) return this.now - start;
      this.run(1);
    }
    return predicate() ? this.now - start : undefined;
  }

  private process(item: Item): void {
    const n = this.node(item.node);
    if (n.proc === 'down') return;
    if (n.proc === 'stalled') {
      if (this.now < n.stalledUntil) {
        // Queued in the socket (or a timer that is due): handled on resume, in the same order.
        if (item.kind === 'tick') {
          if (n.tickAt !== item.at) return;
          n.tickAt = n.stalledUntil;
        }
        this.push({ ...item, at: n.stalledUntil });
        return;
      }
      n.proc = 'up';
      this.traceLine(`${n.member.name} resumes`);
    }
    switch (item.kind) {
      case 'tick':
        if (n.tickAt !== item.at) return; // superseded
        n.tickAt = undefined;
        this.apply(n, { type: 'tick', now: this.localTime(n) });
        break;
      case 'deliver': {
        const admitted = n.inbox.admitDecoded(item.hb, item.from, { epoch: n.state.epoch, now: this.localTime(n) });
        if (!admitted.ok) return;
        this.apply(n, { type: 'heartbeat', now: this.localTime(n), heartbeat: admitted.heartbeat });
        break;
      }
      case 'retryRelease':
        if (!n.kernel.releasePending) return;
        this.releaseVip(n);
        break;
      case 'vipFailed':
        this.apply(n, { type: 'vipFailed', op: item.op, now: this.localTime(n), error: 'injected netlink failure' });
        break;
    }
    this.afterEvent();
  }

  private apply(n: SimNode, event: ElectionEvent): void {
    const { state, actions } = step(n.state, event);
    n.state = state;
    for (const action of actions) {
      this.log.push({ at: this.now, node: n.member.name, action });
      if (action.type !== 'schedule' && action.type !== 'send') this.traceLine(`${n.member.name} ${describe(action)}`);
      switch (action.type) {
        case 'send':
          this.send(n, action.heartbeat, action.copies);
          break;
        case 'acquireVip':
          if (this.netlinkFails(n)) {
            this.feedLater(n, 'acquire');
            break;
          }
          if (!this.present(n)) this.stats.acquisitions += 1;
          n.kernel.present = true;
          n.kernel.expiresAt = this.now + this.lifetimeMs();
          n.kernel.holding = true;
          n.kernel.quietSince = undefined;
          n.kernel.releasePending = false;
          break;
        case 'renewVip':
          if (!n.kernel.holding) break;
          if (this.netlinkFails(n)) {
            this.feedLater(n, 'renew');
            break;
          }
          if (!this.present(n)) this.stats.acquisitions += 1;
          n.kernel.present = true;
          n.kernel.expiresAt = this.now + this.lifetimeMs();
          break;
        case 'quiesceVip':
          n.kernel.holding = false;
          n.kernel.quietSince = this.now;
          break;
        case 'releaseVip':
          n.kernel.holding = false;
          n.kernel.quietSince = undefined;
          this.releaseVip(n);
          break;
        case 'formed':
          n.formedOnDisk = true;
          break;
        case 'stopped':
          n.proc = 'down';
          n.tickAt = undefined;
          break;
        case 'schedule': {
          const at = this.realTime(n, action.at) + this.rng() * (this.opts.timerLatenessMs ?? 0);
          n.tickAt = Math.max(at, this.now);
          this.push({ at: n.tickAt, order: 0, node: n.member.name, kind: 'tick' });
          break;
        }
        case 'transition':
        case 'stalled':
          break;
      }
    }
  }

  private lifetimeMs(): number {
    const base = this.opts.vipLifetimeMs ?? 1000;
    return base + this.rng() * LIFETIME_SLACK_MS;
  }

  /** Netlink failures on one host only (overrides the cluster-wide rate there). */
  readonly hostNetlinkFailRate = new Map<string, number>();

  private netlinkFails(n: SimNode): boolean {
    const rate = this.hostNetlinkFailRate.get(n.member.name) ?? this.netlinkFailRate;
    return rate > 0 && this.rng() < rate;
  }

  /** The runner feeds a failed VIP operation back as its own event, once the netlink call returns. */
  private feedLater(n: SimNode, op: 'acquire' | 'renew'): void {
    this.push({ at: this.now + 0.1, order: 0, node: n.member.name, kind: 'vipFailed', op });
  }

  private releaseVip(n: SimNode): void {
    if (this.netlinkFails(n)) {
      n.kernel.releasePending = true;
      this.push({ at: this.now + RELEASE_RETRY_MS, order: 0, node: n.member.name, kind: 'retryRelease' });
      return;
    }
    n.kernel.present = false;
    n.kernel.releasePending = false;
  }

  private send(n: SimNode, body: Heartbeat, copies: number): void {
    for (let c = 0; c < copies; c += 1) {
      const hb: Heartbeat = c === 0 ? body : { ...body, seq: body.seq + c };
      const from = n.member.address;
      if (this.recorded.length < 2000 && this.rng() < 0.05) this.recorded.push({ hb, from });
      for (const peer of this.nodes.values()) {
        if (peer === n) continue;
        const link = `${n.member.name}>${peer.member.name}`;
        if (this.blocked.has(link)) continue;
        const loss = this.linkLoss.get(link) ?? this.dropRate;
        if (loss > 0 && this.rng() < loss) continue;
        const delay = () => (this.opts.delayMs ?? 1) + (this.opts.jitterMs ?? 0) * this.rng() + c * 5;
        let at = this.now + delay();
        if (!this.reorder) at = Math.max(at, (this.linkLast.get(link) ?? 0) + 0.001);
        this.linkLast.set(link, at);
        this.push({ at, order: 0, node: peer.member.name, kind: 'deliver', hb, from });
        if (this.duplicateRate > 0 && this.rng() < this.duplicateRate) {
          this.push({ at: at + 2, order: 0, node: peer.member.name, kind: 'deliver', hb, from });
        }
      }
    }
  }

  // ---- invariants --------------------------------------------------------------------------------

  private afterEvent(): void {
    const holders = this.holders();
    const last = this.holderHistory[this.holderHistory.length - 1];
    if (last === undefined || last.holders.join() !== holders.join()) {
      this.holderHistory.push({ at: this.now, holders });
      if (holders.length > 1 && this.overlapSince === undefined) this.overlapSince = this.now;
      if (holders.length <= 1 && this.overlapSince !== undefined) {
        const d = this.now - this.overlapSince;
        this.stats.overlapMs += d;
        this.stats.maxOverlapMs = Math.max(this.stats.maxOverlapMs, d);
        this.overlapSince = undefined;
      }
    }
    if (this.checking) this.checkSafety();
  }

  /** The safety invariants, at this instant (quorum: none promises none). Throws with a replayable trace. */
  checkSafety(): void {
    if (this.opts.quorum === 'none') return;
    const leases = this.leaseHolders();
    if (leases.length > 1) throw this.failure(`two leases at once: ${leases.join(', ')}`);
    const active = this.activeHolders();
    if (active.length > 1) throw this.failure(`two members announce the VIP at once: ${active.join(', ')}`);
    const handoverLimit =
      handoverTimeoutMs({ deadAfter: this.opts.deadAfter ?? 3, intervalMs: this.interval }) * 1.01 + 50;
    for (const n of this.nodes.values()) {
      if (!this.present(n) || (n.proc === 'up' && n.kernel.holding)) continue;
      // A copy of the VIP that is not announced must be excused, and each excuse is bounded: a stalled
      // or dead process's copy, or a release being retried, by the kernel lifetime (the model sets
      // expiresAt only at an add or a renewal, lifetime + slack ahead); a quiet one by the handover.
      if (n.proc !== 'up' || n.kernel.releasePending) continue;
      if (n.kernel.quietSince !== undefined) {
        if (this.now - n.kernel.quietSince > handoverLimit)
          throw this.failure(`${n.member.name} kept a quiet VIP beyond the handover timeout`);
        continue;
      }
      throw this.failure(`${n.member.name} has the VIP in the kernel without holding it (role ${n.state.role})`);
    }
  }

  failure(message: string): Error {
    const o = this.opts;
    const head = `${message} at t=${this.now.toFixed(1)} (seed ${o.seed ?? 1}, ${o.members} members, loss ${this.dropRate})`;
    return new Error(`${head}\nlast events:\n  ${this.trace.slice(-TRACE_LINES).join('\n  ')}`);
  }

  traceLine(text: string): void {
    this.trace.push(`${this.now.toFixed(1).padStart(9)} ${text}`);
    if (this.trace.length > TRACE_LINES * 4) this.trace.splice(0, this.trace.length - TRACE_LINES);
  }

  // ---- a binary heap on (at, order) --------------------------------------------------------------

  private push(item: Item): void {
    item.order = this.order++;
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as Item, h[parent] as Item)) break;
      [h[i], h[parent]] = [h[parent] as Item, h[i] as Item];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l] as Item, h[m] as Item)) m = l;
      if (r < h.length && before(h[r] as Item, h[m] as Item)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Item, h[i] as Item];
      i = m;
    }
  }
}

function before(a: Item, b: Item): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

function describe(a: ElectionAction): string {
  switch (a.type) {
    case 'transition':
      return `${a.from} -> ${a.to} (${a.reason}${a.peer ? `, ${a.peer}` : ''}) term ${a.term}`;
    case 'stalled':
      return `stalled ${a.ms.toFixed(0)} ms, epoch ${a.epoch}`;
    default:
      return a.type;
  }
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
