/**
 * The election's edge: owns the UDP socket, the timer and the VIP queue, feeds the pure state
 * machine with heartbeats, ticks and the outcome of VIP operations, and carries out its actions
 * (send, take, renew, quiesce or release the VIP, log).
 *
 * Receive path: datagram -> Inbox (peer address, HMAC, layout, sender, member list, replay) ->
 * step(). Anything else is dropped, counted by reason and logged at a limited rate; nothing a
 * peer sends can throw out of here.
 */
import type dgram from 'node:dgram';
import { describeError, VipdError } from '../errors';
import type { Logger } from '../log/logger';
import { RateLimitedLog } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { hostPort, openFilteredUdp } from '../native/udp-socket';
import type { VipOwner } from '../vip/owner';
import { Inbox } from './inbox';
import { NO_SILENCE, nextSilence, type SilenceState } from './silence-report';
import {
  bootstrapDisputedBy,
  type ElectionSnapshot,
  type ElectionState,
  effectivePriority,
  initialState,
  isBootstrapping,
  leaseUntil,
  quorumOf,
  snapshot,
  step,
} from './state-machine';
import { handoverTimeoutMs } from './timing';
import {
  type ElectionAction,
  type ElectionEvent,
  type ElectionSettings,
  type Heartbeat,
  type Reconfigurable,
  ROLES,
  type TrackEffect,
} from './types';
import { DROP_REASONS, type DropReason, encodeHeartbeat } from './wire';

export interface RunnerOptions {
  readonly settings: ElectionSettings;
  readonly secret: Buffer;
  readonly port: number;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly vip: VipOwner;
  /** A monotonic clock in ms; injected so nothing here depends on wall-clock jumps. */
  readonly now?: () => number;
  /**
   * Other authenticated messages on the election's port (the connection lists, src/takeover): gets
   * each one that is not a heartbeat, returns a drop reason or undefined.
   */
  readonly channel?: { receive(msg: Buffer, from: string): DropReason | undefined; isOwn(msg: Buffer): boolean };
  /** The VIP is now on the interface, or no longer (after the netlink operation completed). */
  readonly onVipHeld?: (held: boolean) => void;
  /**
   * The cluster has formed: record it durably. Asynchronous, off the event loop (an fsync may take
   * hundreds of milliseconds on a busy disk, and a member blocked that long stops heartbeats and
   * acknowledgements: the master's lease lapsed once so); the heartbeats say "formed" only once the
   * promise settles. A rejection is logged; the member goes on (formed, in memory).
   */
  readonly onFormed?: (via: string) => Promise<void> | void;
}

/** Copies of one message (the final resign) are this far apart: UDP may lose one, the handover should not wait. */
const COPY_SPACING_MS = 5;
/** A failed VIP removal is retried with this backoff (doubling, up to the cap) until it succeeds. */
const RELEASE_RETRY_MS = 200;
const RELEASE_RETRY_MAX_MS = 5_000;
/** Room for the heartbeats of a few intervals if the process is briefly busy. */
const RECV_BUFFER_BYTES = 1 << 20;
/** How often the runner looks for peers it does not hear (silence-report.ts). */
const SILENCE_CHECK_MS = 1_000;

export class ElectionRunner {
  /** The cluster formed and the record is being written: heartbeats do not say so yet. */
  private formedUnrecorded = false;
  private state: ElectionState;
  private socket: dgram.Socket | undefined;
  private readonly inbox: Inbox;
  private readonly log: Logger;
  private readonly limited: RateLimitedLog;
  private timer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private silence: SilenceState = NO_SILENCE;
  /** Whether trace lines are wanted (the level is fixed for the process's life). */
  private readonly traced: boolean;
  private tickPending: NodeJS.Immediate | undefined;
  /** Copies of a message still to be sent (the final resign): stop() waits for them. */
  private copies: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  /** Counts acquisitions: a failed release retries only while no acquisition came after it. */
  private vipGeneration = 0;
  private stopPromise: Promise<void> | undefined;
  private vipQueue: Promise<void> = Promise.resolve();
  /** Wall-clock ms since the VIP has been on the interface, for /status; undefined when not held. */
  private heldSince: number | undefined;
  /** Monotonic ms of the last event the state machine processed: /healthz's sign of life. */
  private lastStepAt = 0;
  private closed = false;
  private started = false;
  /** A graceful stop in progress: the hook to run before the VIP goes, and who waits for the end. */
  private stopping: { beforeRelease: (() => Promise<void>) | undefined; done: () => void } | undefined;
  private readonly now: () => number;
  /** This member is a witness (its peer entry says so). */
  private readonly witness: boolean;

  constructor(private readonly opts: RunnerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.state = initialState(opts.settings);
    this.inbox = new Inbox(opts.settings, opts.secret);
    this.log = opts.log.child({ component: 'election' });
    this.traced = this.log.isLevelEnabled('trace');
    this.limited = new RateLimitedLog(this.log);
    opts.metrics.setPeerLinks(() => this.snapshot().peers);
    opts.metrics.setVotes(() => {
      const s = this.snapshot();
      return { vote: s.vote, acknowledging: s.following?.leader ?? '' };
    });
    const { self, members } = opts.settings;
    this.witness = members.some((m) => m.name === self.name && m.witness === true);
    opts.metrics.witness.set(this.witness ? 1 : 0);
    for (const m of members) if (m.name !== self.name) opts.metrics.peerWitness.labels(m.name).set(m.witness ? 1 : 0);
    // Every role and every drop reason shows from the start, at 0, so a query or an alert on one has a
    // series before its first event.
    for (const role of ROLES) opts.metrics.electionState.labels(role).set(0);
    for (const reason of DROP_REASONS) opts.metrics.heartbeatsDropped.labels(reason).inc(0);
  }

  /** Binds the socket (peers only, filtered in the kernel), clears a stale VIP, and joins the election. */
  async start(): Promise<void> {
    const { self, members } = this.opts.settings;
    // Only the peers' addresses get past the kernel (a classic BPF filter): a flood from anywhere
    // else costs no JavaScript at all, and cannot crowd the peers' heartbeats out of the buffer.
    const socket = await openFilteredUdp({
      address: self.address,
      port: this.opts.port,
      recvBufferBytes: RECV_BUFFER_BYTES,
      allowedSources: members.filter((m) => m.name !== self.name).map((m) => m.address),
    }).catch((err: unknown) => {
      throw err instanceof VipdError
        ? new VipdError(err.code, `the election socket: ${err.message}`, { cause: err })
        : new VipdError(
            'VIPD_BIND_FAILED',
            `cannot bind the election socket to ${hostPort(self.address, this.opts.port)}: ${describeError(err)}`,
            { cause: err },
          );
    });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
    // ECONNREFUSED after a peer's port was closed (it is down) and the like: nothing to act on.
    socket.on('error', (err) =>
      this.limited.warn(
        `socket:${(err as NodeJS.ErrnoException).code ?? ''}`,
        { err: err.message },
        'election socket error',
      ),
    );
    await this.opts.vip.prepare();
    this.started = true;
    this.feed({ type: 'start', now: this.now(), epoch: Date.now() });
    this.silenceTimer = setInterval(() => this.reportSilence(), SILENCE_CHECK_MS);
    this.silenceTimer.unref();
  }

  /** Names the peers this member has not heard for a while (silence-report.ts), and their return. */
  private reportSilence(): void {
    const { state, lines } = nextSilence(this.silence, this.snapshot().peers, this.now());
    this.silence = state;
    if (lines.silent.length > 0) {
      const names = lines.silent
        .map(
          (p) =>
            `${p.name} (${p.address}, ${
              p.everHeard ? `silent for ${Math.round(p.silentForMs / 1000)} s` : 'never heard since this start'
            })`,
        )
        .join(', ');
      this.log.warn(
        { peers: lines.silent, port: this.opts.port },
        `not hearing from ${names}: is UDP ${this.opts.port} open both ways between the peers, and are they running?`,
      );
    }
    if (lines.back.length > 0) this.log.info({ peers: lines.back }, `hearing from ${lines.back.join(', ')} again`);
  }

  /** A tracked condition changed (apiserver health, link state). */
  track(name: string, effect: TrackEffect): void {
    this.feed({ type: 'track', now: this.now(), name, effect });
  }

  /** Applies a reloaded priority and preemption settings in place (a lower priority may hand the VIP over). */
  reconfigure(settings: Reconfigurable): void {
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
   * Graceful stop. The state machine decides how (docs/election.md, "Preemption and every planned
   * move: make-before-break"): a master
   * hands over make-before-break, keeping the address, silent, until its successor announces
   * MASTER (at most a dead interval); `beforeRelease` runs just before the VIP goes. Then the
   * resign is sent and the socket closed. Idempotent.
   */
  stop(beforeRelease?: () => Promise<void>): Promise<void> {
    this.stopPromise ??= this.stopOnce(beforeRelease);
    return this.stopPromise;
  }

  private async stopOnce(beforeRelease?: () => Promise<void>): Promise<void> {
    if (this.closed) return;
    if (this.started && this.stopping === undefined) {
      const done = new Promise<void>((resolve) => {
        this.stopping = { beforeRelease, done: resolve };
      });
      // The state machine finishes the stop within a handover timeout; this bounds it if it cannot.
      const limit = handoverTimeoutMs(this.opts.settings) + 2_000;
      let guard: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        guard = setTimeout(resolve, limit);
      });
      this.feed({ type: 'stop', now: this.now() });
      await Promise.race([done, timedOut]);
      clearTimeout(guard);
    }
    await this.vipQueue;
    await this.copies;
    await this.close();
  }

  /** Abort: close the socket and timers without resigning (the VIP owner is closed by its owner). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    await this.vipQueue;
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private clearTimers(): void {
    if (this.silenceTimer !== undefined) clearInterval(this.silenceTimer);
    this.silenceTimer = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.tickPending !== undefined) clearImmediate(this.tickPending);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.timer = undefined;
    this.tickPending = undefined;
    this.retryTimer = undefined;
  }

  private feed(event: ElectionEvent): void {
    if (this.closed) return;
    this.lastStepAt = event.now;
    const before = this.state.grant;
    const { state, actions } = step(this.state, event);
    this.state = state;
    for (const action of actions) this.execute(action);
    if (state.grant !== before) this.noteGrant(before, state.grant);
    this.refreshGauges();
  }

  /**
   * Whom this member acknowledges, when that changes: a witness's acknowledgement is its whole part
   * in the election (info); a member's changes with every election (debug).
   */
  private noteGrant(before: ElectionState['grant'], after: ElectionState['grant']): void {
    const self = this.opts.settings.self.name;
    const was = before !== undefined && before.leader !== self ? before.leader : '';
    const is = after !== undefined && after.leader !== self ? after.leader : '';
    if (was === is) return;
    const term = after?.term;
    if (is !== '') {
      if (this.witness) this.log.info({ leader: is, term }, `acknowledging ${is} as master`);
      else this.log.debug({ leader: is, term }, `acknowledging ${is} as master`);
    } else if (this.witness) {
      this.log.info({ leader: was }, `acknowledging no master (was ${was})`);
    } else {
      this.log.debug({ leader: was }, `acknowledging no master (was ${was})`);
    }
  }

  private execute(action: ElectionAction): void {
    const { metrics } = this.opts;
    switch (action.type) {
      case 'send':
        // The resign frees the followers: it leaves only once the VIP is off the interface.
        if (action.heartbeat.resigning)
          this.copies = this.vipQueue.then(() => this.sendToPeers(action.heartbeat, action.copies));
        else void this.sendToPeers(action.heartbeat, action.copies);
        break;
      case 'acquireVip':
        this.vipGeneration += 1;
        this.cancelReleaseRetry();
        this.withVip('acquire', () => this.opts.vip.acquire());
        break;
      case 'renewVip':
        this.withVip('renew', () => this.opts.vip.renew());
        break;
      case 'quiesceVip':
        // Now, and again after anything queued: an acquisition still in the queue must not undo it.
        this.opts.vip.quiesce();
        this.vipQueue = this.vipQueue.then(() => this.opts.vip.quiesce());
        break;
      case 'releaseVip': {
        // Stop announcing now; the removal may wait behind a netlink operation in flight.
        this.opts.vip.quiesce();
        const hook = this.stopping?.beforeRelease;
        if (hook !== undefined) {
          this.log.info(
            {},
            'closing relayed connections before releasing the VIP: clients reconnect through the successor',
          );
          this.vipQueue = this.vipQueue
            .then(hook)
            .catch((err: unknown) => this.log.error({ err }, 'closing connections before the release failed'));
        }
        this.release(0, this.vipGeneration);
        break;
      }
      case 'transition': {
        const { from, to, reason, master, term, priority } = action;
        this.log.info(
          { from, to, reason, master, term, priority, ...(action.peer !== undefined ? { peer: action.peer } : {}) },
          from === to
            ? to === 'MASTER'
              ? `election: handing the VIP over to ${master}`
              : `election ${to.toLowerCase()}`
            : `election state ${from} -> ${to}`,
        );
        metrics.electionState.labels(from).set(0);
        metrics.electionState.labels(to).set(1);
        if (from !== to) metrics.electionTransitions.labels(to, reason).inc();
        break;
      }
      case 'formed': {
        const self = this.opts.settings.self.name;
        const via = action.via;
        // Until the record is durable, the heartbeats do not say "formed" (sendToPeers): a member that
        // crashed before it was written restarts unformed, and no peer may have learned it from us.
        this.formedUnrecorded = true;
        void Promise.resolve()
          .then(() => this.opts.onFormed?.(via))
          .then(
            () =>
              this.log.info(
                { via },
                via === self
                  ? 'the cluster has formed: a majority of the members answered; from now on no member holds the VIP without one'
                  : `the cluster has formed (${via} says so): this member may now be elected`,
              ),
            (err: unknown) => this.log.error({ err, via }, 'cannot record that the cluster has formed'),
          )
          .finally(() => {
            this.formedUnrecorded = false;
          });
        break;
      }
      case 'bootstrapView': {
        // Whoever is wrong, the two configs differ: the first member listed must be the same everywhere.
        const { peer, says, bootstrap } = action;
        const fields = { peer, says, bootstrap };
        if (action.agrees) this.log.info(fields, `bootstrap member agreed: ${peer} now names ${bootstrap} too`);
        else if (says === 'self')
          this.log.error(
            fields,
            `bootstrap member disputed: ${peer}'s config names ${peer}, this member's names ${bootstrap}; list the peers in the same order on every member (no member holds the VIP alone while they disagree)`,
          );
        else
          this.log.error(
            fields,
            `bootstrap member disputed: ${peer}'s config names another member, this member's names ${peer}; list the peers in the same order on every member (no member holds the VIP alone while they disagree)`,
          );
        break;
      }
      case 'stalled':
        metrics.electionStalls.inc();
        this.log.warn(
          { ms: Math.round(action.ms), epoch: action.epoch },
          'this process did not run for a while (a stall): re-learning the cluster before acting; messages queued meanwhile count for nothing',
        );
        break;
      case 'stopped': {
        const waiter = this.stopping;
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timer = undefined;
        if (waiter !== undefined) void this.vipQueue.then(() => waiter.done());
        break;
      }
      case 'schedule':
        this.arm(action.at);
        break;
    }
  }

  /** After every event, so cheap: a few numbers. */
  private refreshGauges(): void {
    const { metrics } = this.opts;
    const now = this.now();
    const quorum = quorumOf(this.state, now);
    metrics.peersAlive.set(quorum.alive - 1);
    metrics.quorum.set(quorum.quorate ? 1 : 0);
    metrics.clusterFormed.set(this.state.formed ? 1 : 0);
    metrics.bootstrapping.set(isBootstrapping(this.state) ? 1 : 0);
    metrics.bootstrapDisagreements.set(bootstrapDisputedBy(this.state).length);
    metrics.priority.set(effectivePriority(this.state));
    metrics.term.set(this.state.term);
    metrics.master.set(this.state.role === 'MASTER' ? 1 : 0);
    const leaseEnd =
      this.state.role === 'MASTER' && this.state.handover === undefined ? leaseUntil(this.state) : -Infinity;
    this.opts.vip.announceUntil(leaseEnd);
    const lease = leaseEnd - now;
    metrics.leaseRemaining.set(Number.isFinite(lease) ? Math.max(0, lease) / 1000 : leaseEnd > 0 ? 1e9 : 0);
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    const delay = Math.max(0, at - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Defer to the check phase: heartbeats already queued on the socket are read first, so a
      // timer that is a little late does not declare live peers dead.
      this.tickPending = setImmediate(() => {
        this.tickPending = undefined;
        this.feed({ type: 'tick', now: this.now() });
      });
    }, delay);
  }

  /** One VIP operation at a time, in order; a failed add or renew is fed back (the member goes FAULT). */
  private withVip(op: 'acquire' | 'renew', run: () => Promise<void>): void {
    this.vipQueue = this.vipQueue.then(run).then(
      () => this.settle(),
      (err: unknown) => {
        this.settle();
        this.opts.metrics.vipOperationFailures.labels(op).inc();
        const error = describeError(err);
        this.log.error(
          { err, op },
          `failed to ${op === 'acquire' ? 'add' : 'renew'} the VIP: this member cannot hold it now (FAULT, retried later)`,
        );
        this.feed({ type: 'vipFailed', now: this.now(), op, error });
      },
    );
  }

  /**
   * Releases, and keeps retrying a failed release (the kernel lifetime removes it meanwhile anyway)
   * as long as no acquisition came after it: a retry must never remove a VIP taken again since.
   */
  private release(attempt: number, generation: number): void {
    this.vipQueue = this.vipQueue
      .then(() => {
        if (generation !== this.vipGeneration) return undefined;
        return this.opts.vip.release();
      })
      .then(
        () => this.settle(),
        (err: unknown) => {
          this.settle();
          this.opts.metrics.vipOperationFailures.labels('release').inc();
          const delay = Math.min(RELEASE_RETRY_MAX_MS, RELEASE_RETRY_MS * 2 ** attempt);
          this.limited.error(
            'vip-release',
            { err, retryInMs: delay },
            'failed to remove the VIP; retrying (its kernel lifetime also ends it)',
          );
          if (this.closed || generation !== this.vipGeneration) return;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.release(attempt + 1, generation);
          }, delay);
          this.retryTimer.unref();
        },
      );
  }

  private cancelReleaseRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private settle(): void {
    const held = this.opts.vip.held();
    this.opts.metrics.vipHeld.set(held ? 1 : 0);
    const was = this.heldSince !== undefined;
    if (!held) this.heldSince = undefined;
    else this.heldSince ??= Date.now();
    if (held !== was) this.opts.onVipHeld?.(held);
  }

  private async sendToPeers(sent: Heartbeat, copies: number): Promise<void> {
    const socket = this.socket;
    if (socket === undefined) return;
    const hb = this.formedUnrecorded && sent.formed ? { ...sent, formed: false } : sent;
    const { settings, secret, port, metrics } = this.opts;
    const sendOne = (copy: Heartbeat) => {
      const bytes = encodeHeartbeat(copy, secret, this.inbox.names);
      if (this.traced)
        this.log.trace({ role: copy.role, term: copy.term, epoch: copy.epoch, seq: copy.seq }, 'heartbeat sent');
      for (const member of settings.members) {
        if (member.name === settings.self.name) continue;
        socket.send(bytes, port, member.address, (err) => {
          if (err)
            this.limited.warn(`send:${member.name}`, { peer: member.name, err: err.message }, 'cannot send heartbeat');
        });
        metrics.heartbeatsSent.inc();
      }
    };
    sendOne(hb);
    for (let i = 1; i < copies; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, COPY_SPACING_MS));
      if (this.socket !== undefined) sendOne({ ...hb, seq: hb.seq + i });
    }
  }

  /**
   * One datagram to every peer that may take the VIP over (for the connection lists; heartbeats go
   * through sendToPeers): a witness never holds the VIP, so it is sent none.
   */
  broadcast(bytes: Buffer): void {
    const socket = this.socket;
    if (socket === undefined) return;
    const { settings, port } = this.opts;
    for (const member of settings.members) {
      if (member.name === settings.self.name || member.witness === true) continue;
      socket.send(bytes, port, member.address, (err) => {
        if (err)
          this.limited.warn(
            `broadcast:${member.name}`,
            { peer: member.name, err: err.message },
            'cannot send the connection list',
          );
      });
    }
  }

  private onMessage(msg: Buffer, from: string): void {
    const channel = this.opts.channel;
    if (channel?.isOwn(msg)) {
      const reason = channel.receive(msg, from);
      if (reason !== undefined) this.dropped(reason, from, 'a connection list message');
      return;
    }
    const admitted = this.inbox.admit(msg, from, { epoch: this.state.epoch, now: this.now() });
    if (!admitted.ok) {
      this.dropped(admitted.reason, from, admitted.detail);
      return;
    }
    this.opts.metrics.heartbeatsReceived.inc();
    const hb = admitted.heartbeat;
    // The heartbeat loop: build the fields only when trace is on.
    if (this.traced) {
      this.log.trace(
        { peer: hb.sender, role: hb.role, term: hb.term, epoch: hb.epoch, seq: hb.seq, priority: hb.priority },
        'heartbeat received',
      );
    }
    this.feed({ type: 'heartbeat', now: this.now(), heartbeat: hb });
  }

  private dropped(reason: DropReason, from: string, detail: string): void {
    this.opts.metrics.heartbeatsDropped.labels(reason).inc();
    this.limited.warn(`drop:${reason}:${from}`, { reason, from, detail }, 'dropped a heartbeat');
  }
}
