/**
 * A whole cluster of election state machines on a simulated network, driven by a virtual clock:
 * delays, random drops, one-way and two-way partitions, crashes, restarts and graceful stops.
 * Deterministic for a given seed, so a failing invariant can be replayed.
 */
import { initialState, step, type ElectionState } from '../../src/vrrp/state-machine';
import { ReplayGuard } from '../../src/vrrp/replay-guard';
import type { ElectionAction, ElectionEvent, ElectionSettings, Heartbeat, Member, TrackEffect } from '../../src/vrrp/types';

export interface SimOptions {
  readonly members: number;
  readonly intervalMs?: number;
  readonly deadAfter?: number;
  readonly quorum?: 'majority' | 'none';
  readonly preempt?: boolean;
  readonly preemptDelayMs?: number;
  readonly priorities?: readonly number[];
  readonly seed?: number;
  /** One-way delivery delay: base + uniform jitter. */
  readonly delayMs?: number;
  readonly jitterMs?: number;
  /** Probability that any one message is lost. */
  readonly dropRate?: number;
}

interface Node {
  readonly member: Member;
  settings: ElectionSettings;
  state: ElectionState;
  up: boolean;
  wakeAt: number | undefined;
  epoch: number;
  seq: number;
  vipHeld: boolean;
  /** As in the runner: a reordered older message is dropped as a replay. */
  replay: ReplayGuard;
}

type QueueItem = { at: number; order: number; node: string; event: 'tick' } | { at: number; order: number; node: string; event: 'deliver'; hb: Heartbeat };

export class SimCluster {
  now = 0;
  readonly nodes = new Map<string, Node>();
  private queue: QueueItem[] = [];
  private order = 0;
  private rng: () => number;
  private blocked = new Set<string>();
  /** Every change in the set of VIP holders: [time, holders]. */
  readonly holderHistory: { at: number; holders: string[] }[] = [];
  readonly log: { at: number; node: string; action: ElectionAction }[] = [];
  dropRate: number;

  constructor(readonly opts: SimOptions) {
    this.rng = mulberry32(opts.seed ?? 1);
    this.dropRate = opts.dropRate ?? 0;
    const members: Member[] = Array.from({ length: opts.members }, (_, i) => ({ name: `n${i + 1}`, address: `10.0.0.${i + 1}` }));
    members.forEach((member, i) => {
      const settings: ElectionSettings = {
        clusterId: 1, self: member, members,
        intervalMs: opts.intervalMs ?? 100, deadAfter: opts.deadAfter ?? 3,
        priority: opts.priorities?.[i] ?? 100, preempt: opts.preempt ?? true, preemptDelayMs: opts.preemptDelayMs ?? 0,
        quorum: opts.quorum ?? 'majority',
      };
      this.nodes.set(member.name, { member, settings, state: initialState(settings), up: false, wakeAt: undefined, epoch: 0, seq: 0, vipHeld: false, replay: new ReplayGuard() });
    });
  }

  get interval(): number { return this.opts.intervalMs ?? 100; }

  /** Starts the named nodes (all by default) at the current time. */
  start(...names: string[]): void {
    for (const name of names.length ? names : [...this.nodes.keys()]) {
      const n = this.node(name);
      n.state = initialState(n.settings);
      n.up = true;
      n.epoch += 1;
      n.seq = 0;
      n.vipHeld = false;
      n.replay = new ReplayGuard();
      this.apply(n, { type: 'start', now: this.now });
    }
    this.recordHolders();
  }

  /** SIGKILL: the node just goes silent (its VIP is gone with it, as the VIP issue's prepare() ensures on restart). */
  crash(name: string): void {
    const n = this.node(name);
    n.up = false;
    n.vipHeld = false;
    n.wakeAt = undefined;
    this.recordHolders();
  }

  /** SIGTERM: resign, then go silent. */
  stop(name: string): void {
    const n = this.node(name);
    this.apply(n, { type: 'stop', now: this.now });
    n.up = false;
    n.wakeAt = undefined;
    this.recordHolders();
  }

  /** A reload: new priority and preemption settings for one node. */
  reconfigure(name: string, settings: { priority: number; preempt: boolean; preemptDelayMs: number }): void {
    this.apply(this.node(name), { type: 'reconfigure', now: this.now, settings });
  }

  track(name: string, check: string, effect: TrackEffect): void {
    this.apply(this.node(name), { type: 'track', now: this.now, name: check, effect });
  }

  /** Drop everything from `from` to `to` (one way). */
  block(from: string, to: string): void { this.blocked.add(`${from}>${to}`); }
  unblock(from: string, to: string): void { this.blocked.delete(`${from}>${to}`); }

  /** Two-way partition between two groups. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) for (const y of b) { this.block(x, y); this.block(y, x); }
  }
  heal(): void { this.blocked.clear(); }

  holders(): string[] {
    return [...this.nodes.values()].filter((n) => n.up && n.vipHeld).map((n) => n.member.name);
  }
  masters(): string[] {
    return [...this.nodes.values()].filter((n) => n.up && n.state.role === 'MASTER').map((n) => n.member.name);
  }
  role(name: string): string { return this.node(name).state.role; }

  /** Runs the virtual clock forward by `ms`, processing every event on the way. */
  run(ms: number): void {
    const until = this.now + ms;
    let guard = 0;
    for (;;) {
      if (++guard > 5_000_000) throw new Error('simulation did not settle: runaway event loop');
      this.queue.sort((a, b) => a.at - b.at || a.order - b.order);
      const next = this.queue[0];
      if (next === undefined || next.at > until) break;
      this.queue.shift();
      this.now = next.at;
      const n = this.node(next.node);
      if (!n.up) continue;
      if (next.event === 'tick') {
        if (n.wakeAt !== next.at) continue; // superseded
        n.wakeAt = undefined;
        this.apply(n, { type: 'tick', now: this.now });
      } else if (n.replay.accept(next.hb.sender, next.hb.epoch, next.hb.seq)) {
        this.apply(n, { type: 'heartbeat', now: this.now, heartbeat: next.hb });
      }
    }
    this.now = until;
  }

  /** Runs until `predicate` holds (checked after every event), at most `maxMs`. Returns the time taken or undefined. */
  runUntil(predicate: () => boolean, maxMs: number): number | undefined {
    const start = this.now;
    const stepMs = 1;
    while (this.now - start < maxMs) {
      if (predicate()) return this.now - start;
      this.run(stepMs);
    }
    return predicate() ? this.now - start : undefined;
  }

  /** The longest stretch during which two or more members held the VIP at once. */
  longestOverlap(since = 0): number {
    let longest = 0;
    let overlapStart: number | undefined;
    for (const h of this.holderHistory) {
      if (h.at < since) { overlapStart = h.holders.length > 1 ? since : undefined; continue; }
      if (h.holders.length > 1 && overlapStart === undefined) overlapStart = h.at;
      if (h.holders.length <= 1 && overlapStart !== undefined) { longest = Math.max(longest, h.at - overlapStart); overlapStart = undefined; }
    }
    if (overlapStart !== undefined) longest = Math.max(longest, this.now - overlapStart);
    return longest;
  }

  node(name: string): Node {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  private apply(n: Node, event: ElectionEvent): void {
    const { state, actions } = step(n.state, event);
    n.state = state;
    for (const action of actions) {
      this.log.push({ at: this.now, node: n.member.name, action });
      switch (action.type) {
        case 'send': this.send(n, action.heartbeat); break;
        case 'acquireVip': n.vipHeld = true; this.recordHolders(); break;
        case 'releaseVip': n.vipHeld = false; this.recordHolders(); break;
        case 'schedule':
          n.wakeAt = action.at;
          this.queue.push({ at: action.at, order: this.order++, node: n.member.name, event: 'tick' });
          break;
        case 'transition': break;
      }
    }
  }

  private send(n: Node, body: Extract<ElectionAction, { type: 'send' }>['heartbeat']): void {
    n.seq += 1;
    const hb: Heartbeat = { ...body, clusterId: 1, sender: n.member.name, epoch: n.epoch, seq: n.seq, intervalMs: n.settings.intervalMs };
    for (const peer of this.nodes.values()) {
      if (peer === n || this.blocked.has(`${n.member.name}>${peer.member.name}`)) continue;
      if (this.dropRate > 0 && this.rng() < this.dropRate) continue;
      const delay = (this.opts.delayMs ?? 1) + (this.opts.jitterMs ?? 0) * this.rng();
      this.queue.push({ at: this.now + delay, order: this.order++, node: peer.member.name, event: 'deliver', hb });
    }
  }

  private recordHolders(): void {
    const holders = this.holders();
    const last = this.holderHistory[this.holderHistory.length - 1];
    if (last && last.holders.join() === holders.join()) return;
    this.holderHistory.push({ at: this.now, holders });
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
