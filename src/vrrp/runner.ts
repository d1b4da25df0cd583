/**
 * The election's edge: owns the UDP socket and the timer, feeds the pure state machine with
 * heartbeats and ticks, and carries out its actions (send, take or release the VIP, log).
 *
 * Receive path: datagram -> decode + HMAC (wire.ts) -> source address must be the named member's
 * -> (epoch, seq) newer than the last (replay-guard.ts) -> step(). Anything else is dropped,
 * counted by reason and logged at a limited rate; nothing a peer sends can throw out of here.
 */
import dgram from 'node:dgram';
import type { Logger } from '../log/logger';
import { RateLimitedLog } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { VipOwner } from '../vip/owner';
import { ReplayGuard } from './replay-guard';
import { effectivePriority, initialState, quorumOf, snapshot, step, type ElectionSnapshot, type ElectionState } from './state-machine';
import type { ElectionAction, ElectionEvent, ElectionSettings, Heartbeat, TrackEffect } from './types';
import { decodeHeartbeat, encodeHeartbeat, type DropReason } from './wire';
import { VipdError } from '../errors';

export interface RunnerOptions {
  readonly settings: ElectionSettings;
  readonly secret: Buffer;
  readonly port: number;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly vip: VipOwner;
  /** A monotonic clock in ms; injected so nothing here depends on wall-clock jumps. */
  readonly now?: () => number;
}

/** How many times the final resign message is sent: UDP may lose one, the handover should not wait. */
const RESIGN_COPIES = 3;
const RESIGN_SPACING_MS = 5;

export class ElectionRunner {
  private state: ElectionState;
  private readonly socket: dgram.Socket;
  private readonly replay = new ReplayGuard();
  private readonly peersByAddress: Map<string, string>;
  private readonly drops: RateLimitedLog;
  private readonly epoch = Date.now();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private tickPending: NodeJS.Immediate | undefined;
  private vipQueue: Promise<void> = Promise.resolve();
  /** Wall-clock ms since the VIP has been on the interface, for /status; undefined when not held. */
  private heldSince: number | undefined;
  /** Monotonic ms of the last event the state machine processed: /healthz's sign of life. */
  private lastStepAt = 0;
  private closed = false;
  private started = false;
  /** While a stopping master waits for its successor's MASTER announcement. */
  private awaiting: { name: string; done: () => void } | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: RunnerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.state = initialState(opts.settings);
    this.peersByAddress = new Map(opts.settings.members.map((m) => [m.address, m.name]));
    this.drops = new RateLimitedLog(opts.log.child({ component: 'election' }));
    this.socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
    this.socket.on('error', (err) => opts.log.error({ err, component: 'election' }, 'election socket error'));
  }

  /** Binds the socket, clears a stale VIP, and joins the election. */
  async start(): Promise<void> {
    const { self } = this.opts.settings;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new VipdError('VIPD_BIND_FAILED',
        `cannot bind the election socket to ${self.address}:${this.opts.port}: ${err.message} (is ${self.address} an address of this host, and the port free?)`, { cause: err }));
      this.socket.once('error', onError);
      this.socket.bind(this.opts.port, self.address, () => {
        this.socket.off('error', onError);
        resolve();
      });
    });
    await this.opts.vip.prepare();
    this.started = true;
    this.feed({ type: 'start', now: this.now() });
  }

  /** A tracked condition changed (apiserver health, link state). */
  track(name: string, effect: TrackEffect): void {
    this.feed({ type: 'track', now: this.now(), name, effect });
  }

  /** Applies a reloaded priority and preemption settings in place. */
  reconfigure(settings: Pick<ElectionSettings, 'priority' | 'preempt' | 'preemptDelayMs'>): void {
    this.feed({ type: 'reconfigure', now: this.now(), settings });
  }

  snapshot(): ElectionSnapshot {
    return snapshot(this.state, this.now());
  }

  /** Whether the election is running and its timer keeps firing (it fires at least every interval). */
  liveness(): { running: boolean; sinceLastStepMs: number } {
    return { running: this.started && !this.closed, sinceLastStepMs: this.now() - this.lastStepAt };
  }

  /** The VIP as this member holds it: since when (wall-clock ms), or undefined. */
  vipHeldSince(): number | undefined {
    return this.heldSince;
  }

  /**
   * Graceful stop: resign (naming the successor, so it takes over without waiting a dead interval),
   * release the VIP, then close the socket. Idempotent.
   *
   * Make before break: a stopping master keeps the address until the successor announces itself
   * MASTER (at most a dead interval), so a connection that reaches this node while the clients'
   * ARP caches still point here is accepted rather than lost to a SYN retransmit (1 s). In that
   * window this node stops announcing (no GARP, no conflict answers): the successor's GARP wins.
   * `beforeRelease` runs once the successor holds the VIP and before this node lets go of it.
   */
  async stop(beforeRelease?: () => Promise<void>): Promise<void> {
    if (this.closed) return;
    if (this.started) {
      const wasMaster = this.state.role === 'MASTER';
      const { actions, state } = step(this.state, { type: 'stop', now: this.now() });
      this.state = state;
      this.clearTimers();
      let successor = '';
      let release = false;
      if (wasMaster) this.opts.vip.quiesce();
      for (const action of actions) {
        if (action.type === 'releaseVip') release = true;
        else if (action.type === 'send') {
          successor = action.heartbeat.master;
          const claimed = successor !== '' && release ? this.masterAnnounced(successor) : Promise.resolve(false);
          for (let i = 0; i < RESIGN_COPIES; i += 1) {
            if (i > 0) await new Promise((r) => setTimeout(r, RESIGN_SPACING_MS));
            this.sendToPeers(action.heartbeat);
          }
          const took = await claimed;
          if (release) this.opts.log.info({ component: 'election', successor, announced: took }, took ? 'successor is master; releasing the VIP' : 'no successor announced itself in time; releasing the VIP');
          if (release && beforeRelease !== undefined) await beforeRelease();
        } else this.execute(action);
      }
      if (release) this.withVip('release', () => this.opts.vip.release());
    }
    await this.vipQueue;
    await this.close();
  }

  /** Resolves true when `name` announces MASTER, false after a dead interval. */
  private masterAnnounced(name: string): Promise<boolean> {
    const { settings } = this.opts;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.awaiting = undefined; resolve(false); }, settings.deadAfter * settings.intervalMs);
      this.awaiting = { name, done: () => { clearTimeout(timer); this.awaiting = undefined; resolve(true); } };
    });
  }

  /** Abort: close the socket and timers without resigning (the VIP owner is closed by its owner). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    await this.vipQueue;
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // never bound
      }
    });
  }

  private clearTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.tickPending !== undefined) clearImmediate(this.tickPending);
    this.timer = undefined;
    this.tickPending = undefined;
  }

  private feed(event: ElectionEvent): void {
    if (this.closed) return;
    this.lastStepAt = event.now;
    const { state, actions } = step(this.state, event);
    this.state = state;
    for (const action of actions) this.execute(action);
    this.refreshGauges();
  }

  private execute(action: ElectionAction): void {
    const { metrics, log } = this.opts;
    switch (action.type) {
      case 'send':
        this.sendToPeers(action.heartbeat);
        break;
      case 'acquireVip':
        this.withVip('acquire', () => this.opts.vip.acquire());
        break;
      case 'releaseVip':
        this.withVip('release', () => this.opts.vip.release());
        break;
      case 'transition': {
        const { from, to, reason, master, priority } = action;
        log.info({ component: 'election', from, to, reason, master, priority, ...(action.peer !== undefined ? { peer: action.peer } : {}) },
          from === to ? `election ${to.toLowerCase()}` : `election state ${from} -> ${to}`);
        metrics.electionState.labels(from).set(0);
        metrics.electionState.labels(to).set(1);
        if (from !== to) metrics.electionTransitions.labels(to, reason).inc();
        metrics.master.set(to === 'MASTER' ? 1 : 0);
        break;
      }
      case 'schedule':
        this.arm(action.at);
        break;
    }
  }

  /** After every event, so cheap: no snapshot, just the three numbers the gauges show. */
  private refreshGauges(): void {
    const quorum = quorumOf(this.state, this.now());
    this.opts.metrics.peersAlive.set(quorum.alive - 1);
    this.opts.metrics.quorum.set(quorum.quorate ? 1 : 0);
    this.opts.metrics.priority.set(effectivePriority(this.state));
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    const delay = Math.max(0, at - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Defer to the check phase: after a stall (GC, a busy proxy), heartbeats already queued on
      // the socket are read first, so a late timer does not declare live peers dead.
      this.tickPending = setImmediate(() => {
        this.tickPending = undefined;
        this.feed({ type: 'tick', now: this.now() });
      });
    }, delay);
  }

  private withVip(what: 'acquire' | 'release', op: () => Promise<void>): void {
    const settle = () => {
      const held = this.opts.vip.held();
      this.opts.metrics.vipHeld.set(held ? 1 : 0);
      if (!held) this.heldSince = undefined;
      else this.heldSince ??= Date.now();
    };
    this.vipQueue = this.vipQueue.then(op).then(settle, (err: unknown) => {
      this.opts.log.error({ err, component: 'vip' }, `failed to ${what} the VIP`);
      settle();
    });
  }

  private sendToPeers(body: Extract<ElectionAction, { type: 'send' }>['heartbeat']): void {
    if (this.closed) return;
    const { settings, secret, port, metrics } = this.opts;
    this.seq = (this.seq + 1) >>> 0;
    const hb: Heartbeat = {
      ...body, clusterId: settings.clusterId, sender: settings.self.name, epoch: this.epoch, seq: this.seq, intervalMs: settings.intervalMs,
    };
    const bytes = encodeHeartbeat(hb, secret);
    for (const member of settings.members) {
      if (member.name === settings.self.name) continue;
      this.socket.send(bytes, port, member.address, (err) => {
        if (err) this.drops.warn(`send:${member.name}`, { component: 'election', peer: member.name, err: err.message }, 'cannot send heartbeat');
      });
      metrics.heartbeatsSent.inc();
    }
  }

  private onMessage(msg: Buffer, from: string): void {
    const { settings, secret, metrics } = this.opts;
    const decoded = decodeHeartbeat(msg, secret, settings.clusterId);
    if (!decoded.ok) return this.dropped(decoded.reason, from, decoded.detail);
    const hb = decoded.heartbeat;
    const member = this.peersByAddress.get(from);
    if (member === undefined || member !== hb.sender || member === settings.self.name) {
      return this.dropped('unknown_sender', from, `sender "${hb.sender}" from ${from} is not a configured peer at that address`);
    }
    if (!this.replay.accept(hb.sender, hb.epoch, hb.seq)) {
      return this.dropped('replay', from, `epoch ${hb.epoch} seq ${hb.seq} is not newer than the last seen`);
    }
    metrics.heartbeatsReceived.inc();
    if (this.awaiting?.name === hb.sender && hb.role === 'MASTER') this.awaiting.done();
    this.feed({ type: 'heartbeat', now: this.now(), heartbeat: hb });
  }

  private dropped(reason: DropReason, from: string, detail: string): void {
    this.opts.metrics.heartbeatsDropped.labels(reason).inc();
    this.drops.warn(`drop:${reason}:${from}`, { component: 'election', reason, from, detail }, 'dropped a heartbeat');
  }
}
