/**
 * The election: a pure state machine, `step(state, event) -> { state, actions }`.
 *
 * It never reads a clock, touches a socket or arms a timer: time comes in on each event (`now`,
 * a monotonic clock), and everything it wants done goes out as actions for the runner
 * (runner.ts). That is what lets the simulator drive whole clusters through partitions, stalls
 * and restarts in microseconds (test/helpers/sim-cluster.ts).
 *
 * The rules (docs/election.md has them in prose, with the safety argument):
 * - Grants. A member follows (grants to) one leader at a time: once it accepts a heartbeat of its
 *   leader it promises to acknowledge no other until `until` (the dead interval after that
 *   heartbeat arrived). Every heartbeat echoes the (epoch, seq, send time) last accepted from each
 *   peer; a follower's echo of its leader, with its promise, is the acknowledgement.
 * - Leases. A MASTER holds the VIP only while a majority (itself included) acknowledged one of its
 *   heartbeats recently enough: the lease ends, on the master's own clock, before any of those
 *   promises can (shortened for clock drift and for the time a release takes). When it lapses the
 *   master releases the VIP, whatever it still hears.
 * - Terms. A claim carries a term higher than any the claimant has seen; a member grants at most
 *   one leader per term; a master or candidate that sees a higher term steps down at once.
 * - Claims. A free member (no valid grant) pre-votes for the best candidate it hears; a BACKUP
 *   that a majority pre-votes for claims (CANDIDATE), and becomes MASTER (takes the VIP) once a
 *   majority grants it. A member named successor by a handover claims at once.
 * - Freshness. A peer counts (for quorum, votes and grants) only while its heartbeats echo this
 *   member's current epoch: after a restart or a stall, old or replayed heartbeats count for
 *   nothing. A restarted member grants nothing until every peer has heard its new epoch or its
 *   previous run's grants have certainly run out.
 * - Stalls. A member that wakes up long after it asked to starts a new epoch and re-learns the
 *   cluster for an interval; its lease, timed from its own send times, has lapsed if the stall was
 *   long, and it releases before anything else.
 * - Bootstrap. Until the cluster has formed (the bootstrap member, the first one listed, heard a
 *   majority once, or was acknowledged by one), the bootstrap member may hold the VIP alone and no
 *   other member is a candidate; the others learn that it formed from a flag in its heartbeats and
 *   every member records it on disk (the 'formed' action), so a restart never bootstraps again.
 *   Each heartbeat says whether its sender's config names the sender the bootstrap member; while a
 *   peer disagrees with this member's config, nobody here holds the VIP alone.
 * - Observers (a dry run) vote and acknowledge like any member and are never candidates.
 * - Planned moves are make-before-break: a master that hands over (preemption, a priority drop, a
 *   stop) stops announcing, frees its followers and keeps the address until its successor
 *   announces MASTER (or a dead interval passes).
 */
import ipaddr from 'ipaddr.js';
import { type LossEstimate, NO_LOSS, observe, pessimisticLoss } from './loss-estimate';
import { clusterDigest } from './membership';
import {
  adaptiveDeadMs,
  baseDeadMs,
  CLOCK_DRIFT,
  claimTimeoutMs,
  handoverTimeoutMs,
  renewEveryMs,
  restartQuietMs,
  stallMs,
  VIP_RETRY_MS,
} from './timing';
import type {
  ElectionAction,
  ElectionEvent,
  ElectionSettings,
  Heartbeat,
  Member,
  Role,
  TrackEffect,
  TransitionReason,
} from './types';

export interface PeerView {
  readonly name: string;
  readonly address: string;
  /** The latest heartbeat accepted from this peer, and when it arrived. */
  readonly last: Heartbeat | undefined;
  readonly heardAt: number | undefined;
  readonly loss: LossEstimate;
}

/** Whom this member follows, in which term, and until when it promised to follow no other. */
export interface Grant {
  readonly leader: string;
  readonly term: number;
  readonly until: number;
}

export interface ElectionState {
  readonly settings: ElectionSettings;
  readonly digest: string;
  readonly role: Role;
  readonly roleSince: number;
  readonly started: boolean;
  readonly startedAt: number;
  readonly stopping: boolean;
  readonly stopped: boolean;
  /** This run's first epoch (echoes of older ones are another process's) and the current one. */
  readonly firstEpoch: number;
  readonly epoch: number;
  readonly seq: number;
  /** The highest term seen. */
  readonly term: number;
  /** The highest term this member granted in, and to whom: one leader per term. */
  readonly granted: { readonly term: number; readonly leader: string };
  /** The current grant: to a leader, or to itself while CANDIDATE or MASTER. */
  readonly grant: Grant | undefined;
  /** This member's own claim while CANDIDATE or MASTER. */
  readonly claim: { readonly term: number; readonly since: number; readonly priority: number } | undefined;
  /** A MASTER handing over: to whom, since when, and the term it held. */
  readonly handover: { readonly to: string; readonly since: number; readonly term: number } | undefined;
  /** A successor named by a leader that hands over: the others vote for it. */
  readonly hint: { readonly name: string; readonly until: number } | undefined;
  /** A better candidate seen while MASTER with preempt on, and since when (for preemptDelay). */
  readonly preemptBy: { readonly name: string; readonly since: number } | undefined;
  readonly tracks: ReadonlyMap<string, TrackEffect>;
  /** A failed VIP add makes this member FAULT until then. */
  readonly vipFaultUntil: number;
  /** Just started: grants and claims nothing until every peer echoes this epoch (or restartQuietMs). */
  readonly restricted: boolean;
  /** After a stall: no claims, no new grants, no handovers until then. */
  readonly learningUntil: number;
  /** The wake-up last asked for: waking much later than this is a stall. */
  readonly wakeAt: number | undefined;
  readonly nextHeartbeatAt: number;
  /** When the last heartbeat went out, and the lease then: probes are timed from it. */
  readonly lastSentAt: number;
  readonly leaseAtLastSend: number;
  /** Round trip to an acknowledgement of our latest heartbeat (ms, a slowly rising minimum): probes wait twice it. */
  readonly rttMs: number;
  /** The view in the last heartbeat: a change is announced at once. */
  readonly announced: string;
  /** The VIP was acquired and not released since. */
  readonly holding: boolean;
  /** The cluster has formed as far as this member knows (docs/election.md, "Bootstrap"). */
  readonly formed: boolean;
  readonly lastRenewAt: number;
  readonly peers: ReadonlyMap<string, PeerView>;
}

export interface StepResult {
  readonly state: ElectionState;
  readonly actions: readonly ElectionAction[];
}

export function initialState(settings: ElectionSettings): ElectionState {
  const peers = new Map<string, PeerView>();
  for (const m of settings.members) {
    if (m.name === settings.self.name) continue;
    peers.set(m.name, { name: m.name, address: m.address, last: undefined, heardAt: undefined, loss: NO_LOSS });
  }
  return {
    settings,
    digest: clusterDigest(settings),
    role: 'INIT',
    roleSince: 0,
    started: false,
    startedAt: 0,
    stopping: false,
    stopped: false,
    firstEpoch: 0,
    epoch: 0,
    seq: 0,
    term: 0,
    granted: { term: 0, leader: '' },
    grant: undefined,
    claim: undefined,
    handover: undefined,
    hint: undefined,
    preemptBy: undefined,
    tracks: new Map(),
    vipFaultUntil: -Infinity,
    restricted: true,
    learningUntil: -Infinity,
    wakeAt: undefined,
    nextHeartbeatAt: 0,
    lastSentAt: -Infinity,
    leaseAtLastSend: -Infinity,
    rttMs: 0,
    announced: '',
    holding: false,
    lastRenewAt: -Infinity,
    formed: settings.formed || settings.quorum === 'none',
    peers,
  };
}

const MAX_SEQ = 0xffffffff;

/** One event in, the next state and the actions to carry out. */
export function step(state: ElectionState, event: ElectionEvent): StepResult {
  if (state.stopped) return { state, actions: [] };
  const out: ElectionAction[] = [];
  const now = event.now;
  let s = state;
  if (event.type === 'start') {
    if (s.started) return { state: s, actions: [] };
    s = {
      ...s,
      started: true,
      startedAt: now,
      roleSince: now,
      nextHeartbeatAt: now,
      firstEpoch: event.epoch,
      epoch: event.epoch,
      restricted: s.peers.size > 0,
    };
    out.push(transition(s, 'INIT', 'INIT', 'started'));
  } else {
    if (!s.started) return { state: s, actions: [] };
    s = detectStall(s, now, out);
    switch (event.type) {
      case 'tick':
        break;
      case 'heartbeat': {
        const before = s.peers.get(event.heartbeat.sender);
        s = receive(s, event.heartbeat, now);
        noteBootstrapView(s, before, out);
        break;
      }
      case 'track': {
        const tracks = new Map(s.tracks);
        if (event.effect.kind === 'ok') tracks.delete(event.name);
        else tracks.set(event.name, event.effect);
        // A changed priority is news for the peers now, not in up to one interval.
        s = { ...s, tracks, nextHeartbeatAt: now };
        break;
      }
      case 'vipFailed':
        s = { ...s, vipFaultUntil: now + VIP_RETRY_MS };
        break;
      case 'stop':
        s = { ...s, stopping: true };
        break;
      case 'reconfigure':
        s = { ...s, settings: { ...s.settings, ...event.settings }, preemptBy: undefined, nextHeartbeatAt: now };
        break;
    }
  }
  s = form(s, now, out);
  s = evaluate(s, now, out, event.type === 'vipFailed' ? 'vip failed' : 'fault');
  if (s.stopped) return { state: s, actions: out };
  s = announce(s, now, out);
  if (s.claim !== undefined) s = probeIfLeaseLow(s, now);
  const at = nextWakeup(s, now);
  out.push({ type: 'schedule', at });
  return { state: s.wakeAt === at ? s : { ...s, wakeAt: at }, actions: out };
}

// ---- derived views -----------------------------------------------------------------------------

const selfName = (s: ElectionState): string => s.settings.self.name;

/** A majority of all configured members. */
function majority(s: ElectionState): number {
  return Math.floor(s.settings.members.length / 2) + 1;
}

/**
 * This member is the bootstrap member of a cluster that has not formed, and no peer disagrees: it
 * may hold the VIP alone.
 */
export function isBootstrapping(s: ElectionState): boolean {
  return !s.formed && selfName(s) === s.settings.bootstrap && bootstrapDisputedBy(s).length === 0;
}

/**
 * The peers whose latest heartbeat disagrees with this member's config on who the bootstrap member
 * is: one that says it is the bootstrap member though ours names another, or ours that says it is
 * not. Their configs list the peers in another order; two members that both hold the VIP alone are
 * what it could lead to, so while any disagrees neither holds it without a majority. A peer's latest
 * heartbeat is kept until it sends another, so a disagreement once heard lasts until that peer
 * agrees (its config is fixed and it restarted), however long it is silent.
 */
export function bootstrapDisputedBy(s: ElectionState): string[] {
  const out: string[] = [];
  for (const p of s.peers.values()) if (disagreesOnBootstrap(s, p)) out.push(p.name);
  return out;
}

function disagreesOnBootstrap(s: ElectionState, p: PeerView): boolean {
  const says = p.last?.bootstrap ?? 'unstated';
  if (says === 'unstated') return false;
  return (says === 'self') !== (p.name === s.settings.bootstrap);
}

/** Reports a peer that starts (or stops) disagreeing on the bootstrap member. */
function noteBootstrapView(s: ElectionState, before: PeerView | undefined, out: ElectionAction[]): void {
  if (before === undefined) return;
  const after = s.peers.get(before.name);
  const says = after?.last?.bootstrap;
  if (after === undefined || says === undefined || says === 'unstated') return;
  const was = before.last !== undefined && disagreesOnBootstrap(s, before);
  const is = disagreesOnBootstrap(s, after);
  if (was === is) return;
  out.push({ type: 'bootstrapView', peer: after.name, says, agrees: !is, bootstrap: s.settings.bootstrap });
}

/** Members needed for a majority (1 with quorum: none, and for the bootstrap member until the cluster forms). */
export function needed(s: ElectionState): number {
  return s.settings.quorum === 'none' || isBootstrapping(s) ? 1 : majority(s);
}

/**
 * Pre-votes a claim needs: a majority of all members; with quorum: none, a majority of the members
 * this one hears, so two members that hear each other never both claim (only a partition gives two
 * masters, as with keepalived).
 */
function votesNeeded(s: ElectionState, now: number): number {
  if (s.settings.quorum !== 'none' && !isBootstrapping(s)) return needed(s);
  return Math.floor((1 + counted(s, now).length) / 2) + 1;
}

/** How long this peer may stay silent before it counts as dead: its interval, stretched by loss. */
export function peerDeadMs(s: ElectionState, p: PeerView): number {
  return adaptiveDeadMs(s.settings, p.last?.intervalMs ?? s.settings.intervalMs, pessimisticLoss(p.loss));
}

/** The peer's latest heartbeat echoes this member's current epoch: it is current, not queued or replayed. */
function echoesUs(s: ElectionState, hb: Heartbeat): boolean {
  return hb.echoes[selfName(s)]?.epoch === s.epoch;
}

/** A peer counts (for quorum, votes and grants): heard in time, current, not resigned. */
export function isCounted(s: ElectionState, p: PeerView, now: number): boolean {
  const hb = p.last;
  if (hb === undefined || p.heardAt === undefined || hb.resigning || !echoesUs(s, hb)) return false;
  return now - p.heardAt < peerDeadMs(s, p);
}

/** The last answer, for the same (immutable) state at the same time: rules ask several times per step. */
let countedMemo: { s: ElectionState; now: number; list: PeerView[] } | undefined;

function counted(s: ElectionState, now: number): PeerView[] {
  if (countedMemo !== undefined && countedMemo.s === s && countedMemo.now === now) return countedMemo.list;
  const list: PeerView[] = [];
  for (const p of s.peers.values()) if (isCounted(s, p, now)) list.push(p);
  countedMemo = { s, now, list };
  return list;
}

export function quorumOf(s: ElectionState, now: number): { alive: number; needed: number; quorate: boolean } {
  const alive = 1 + counted(s, now).length;
  const need = needed(s);
  return { alive, needed: need, quorate: alive >= need };
}

export function effectivePriority(s: ElectionState): number {
  let p = s.settings.priority;
  for (const t of s.tracks.values()) if (t.kind === 'weight') p -= t.weight;
  return Math.max(1, Math.min(254, p));
}

export function isFaulted(s: ElectionState, now: number): boolean {
  if (now < s.vipFaultUntil) return true;
  for (const t of s.tracks.values()) if (t.kind === 'fault') return true;
  return false;
}

export function isLearning(s: ElectionState, now: number): boolean {
  return s.restricted || now < s.learningUntil;
}

/**
 * When this member's lease ends (its own clock): the majority-th latest of its followers' promises,
 * each timed from the send time of the heartbeat it acknowledged, less drift and the release margin.
 * -Infinity when a majority has not acknowledged the current claim; Infinity with quorum: none.
 */
export function leaseUntil(s: ElectionState): number {
  return leaseOf(s, needed(s));
}

/** The lease `members` acknowledgements (this member's own included) give the current claim. */
function leaseOf(s: ElectionState, members: number): number {
  const claim = s.claim;
  if (claim === undefined) return -Infinity;
  const need = members - 1;
  if (need <= 0) return Infinity;
  const self = selfName(s);
  const margin = stallMs(s.settings);
  const expiries: number[] = [];
  for (const p of s.peers.values()) {
    const hb = p.last;
    if (hb === undefined || hb.resigning || hb.leader !== self || hb.leaderTerm !== claim.term) continue;
    const echo = hb.echoes[self];
    if (echo === undefined || echo.epoch < s.firstEpoch || echo.epoch > s.epoch || echo.ts < claim.since) continue;
    expiries.push(echo.ts + hb.grantMs * (1 - CLOCK_DRIFT) - margin);
  }
  if (expiries.length < need) return -Infinity;
  expiries.sort((a, b) => b - a);
  return expiries[need - 1] as number;
}

/** The master as this member sees it: itself, the leader it follows, or a current peer announcing MASTER. */
export function masterOf(s: ElectionState, now: number): string {
  if (s.role === 'MASTER') return s.handover?.to ?? selfName(s);
  const leader = s.grant?.leader;
  if (leader !== undefined && leader !== selfName(s) && s.peers.get(leader)?.last?.role === 'MASTER') return leader;
  let top: PeerView | undefined;
  for (const p of counted(s, now)) {
    if (p.last?.role !== 'MASTER') continue;
    if (top === undefined || p.last.term > (top.last?.term ?? -1)) top = p;
  }
  return top?.name ?? '';
}

interface Candidate {
  readonly name: string;
  readonly address: string;
  readonly priority: number;
}

/** Higher priority wins; equal priority goes to the higher address (as in VRRP; members share one family). */
export function isBetter(a: Candidate, b: Candidate): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return addressRank(a.address) > addressRank(b.address);
}

const ranks = new Map<string, string>();

/**
 * The address as fixed-width hex, so text order is numeric order: 8 digits for IPv4, 32 for IPv6.
 * Cached: the members are a handful of addresses, compared on every step.
 */
function addressRank(address: string): string {
  let rank = ranks.get(address);
  if (rank === undefined) {
    rank = address.includes(':')
      ? Buffer.from(ipaddr.IPv6.parse(address).toByteArray()).toString('hex')
      : ipv4ToNumber(address).toString(16).padStart(8, '0');
    if (ranks.size < 1024) ranks.set(address, rank);
  }
  return rank;
}

function best<T extends Candidate>(list: readonly T[]): T | undefined {
  let top: T | undefined;
  for (const c of list) if (top === undefined || isBetter(c, top)) top = c;
  return top;
}

export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function selfCandidate(s: ElectionState): Candidate {
  return { name: selfName(s), address: s.settings.self.address, priority: effectivePriority(s) };
}

/**
 * A current peer that could be elected: eligible, settled (not learning), hearing a majority. A
 * peer still in INIT counts too: it is about to decide (INIT ends within a dead interval), and a
 * claim ahead of a better member that is just starting would only be handed over again. So does a
 * peer of a cluster not formed yet (it claims only once it knows the cluster formed; votes for it
 * meanwhile keep a worse member that already knows from claiming first, where equal priorities
 * would never hand over); it is not ready for a handover (readyForHandover) until it knows.
 */
function asNominee(p: PeerView): Candidate | undefined {
  const hb = p.last;
  if (hb === undefined || hb.priority <= 0 || hb.observer) return undefined;
  if (hb.role !== 'INIT' && (hb.learning || !hb.quorate)) return undefined;
  if (hb.role !== 'INIT' && hb.role !== 'BACKUP' && hb.role !== 'CANDIDATE' && hb.role !== 'MASTER') return undefined;
  return { name: p.name, address: p.address, priority: hb.priority };
}

/** Peers a master may hand over to: nominees that are BACKUP and may claim (they know the cluster formed). */
function readyForHandover(s: ElectionState, now: number): Candidate[] {
  const out: Candidate[] = [];
  for (const p of counted(s, now)) {
    const c = asNominee(p);
    const hb = p.last;
    if (c === undefined || hb?.role !== 'BACKUP' || !mayClaim(s, p.name, hb.formed)) continue;
    out.push(c);
  }
  return out;
}

/** A member may claim once it knows the cluster formed; the bootstrap member may before, too. */
function mayClaim(s: ElectionState, name: string, formed: boolean): boolean {
  return formed || name === s.settings.bootstrap;
}

/**
 * This member could ever be elected: not an observer, and it knows the cluster formed or it is
 * bootstrapping (the bootstrap member that a peer disagrees with waits for the cluster to form).
 */
function mayLead(s: ElectionState): boolean {
  return !s.settings.observer && (s.formed || isBootstrapping(s));
}

function selfEligible(s: ElectionState, now: number): boolean {
  return (
    s.role === 'BACKUP' &&
    mayLead(s) &&
    !s.stopping &&
    !isFaulted(s, now) &&
    !isLearning(s, now) &&
    quorumOf(s, now).quorate
  );
}

function nominees(s: ElectionState, now: number): Candidate[] {
  const list: Candidate[] = [];
  for (const p of counted(s, now)) {
    const c = asNominee(p);
    if (c !== undefined) list.push(c);
  }
  if (selfEligible(s, now)) list.push(selfCandidate(s));
  return list;
}

/** May this member grant `leader` in `term`: one leader per term. */
function grantable(s: ElectionState, leader: string, term: number): boolean {
  return term > s.granted.term || (term === s.granted.term && s.granted.leader === leader);
}

/** The current peer claiming the highest term, if this member could grant it. */
function claimant(s: ElectionState, now: number): PeerView | undefined {
  let top: PeerView | undefined;
  for (const p of counted(s, now)) {
    const hb = p.last as Heartbeat;
    if ((hb.role !== 'CANDIDATE' && hb.role !== 'MASTER') || hb.handover || hb.term < s.term) continue;
    if (!grantable(s, p.name, hb.term)) continue;
    if (top === undefined || isBetter({ ...p, priority: hb.priority }, { ...top, priority: top.last?.priority ?? 0 }))
      top = p;
  }
  return top;
}

/** Whom this member would have as master now: its leader, a named successor, a claimant, or the best. */
export function voteOf(s: ElectionState, now: number): string {
  if (s.stopping || isLearning(s, now)) return '';
  if (s.grant !== undefined) return s.grant.leader;
  if (s.hint !== undefined && now < s.hint.until) return s.hint.name;
  return claimant(s, now)?.name ?? best(nominees(s, now))?.name ?? '';
}

/**
 * Pre-votes for this member: its own, and each current peer's whose vote answers this member's
 * present state (it echoes a heartbeat sent since this member took its role). A master that just
 * stepped down, or one that can send but not hear, does not claim again on votes cast for its old self.
 */
function votesForSelf(s: ElectionState, now: number): number {
  const self = selfName(s);
  let n = voteOf(s, now) === self ? 1 : 0;
  for (const p of counted(s, now)) {
    if (p.last?.vote === self && (p.last.echoes[self]?.ts ?? -Infinity) >= s.roleSince) n += 1;
  }
  return n;
}

// ---- the rules ---------------------------------------------------------------------------------

/**
 * The cluster forms: for the bootstrap member, when a majority acknowledges its claim (it keeps the
 * VIP: the lease it then holds is a majority's) or, without a claim, when it hears a majority; for
 * any member, when a peer says it formed (which only the bootstrap member can start). Recorded
 * before anything else this step asks for, so before the heartbeat that says it.
 */
function form(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  if (s.formed) return s;
  let via: string | undefined;
  for (const p of s.peers.values()) {
    if (p.last?.formed === true) {
      via = p.name;
      break;
    }
  }
  if (via === undefined && selfName(s) === s.settings.bootstrap) {
    const formed = s.claim !== undefined ? now < leaseOf(s, majority(s)) : 1 + counted(s, now).length >= majority(s);
    if (formed) via = selfName(s);
  }
  if (via === undefined) return s;
  out.push({ type: 'formed', via });
  return { ...s, formed: true, nextHeartbeatAt: now };
}

/** Woke up much later than asked: the process did not run. Start a new epoch and re-learn. */
function detectStall(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  if (s.wakeAt === undefined || now - s.wakeAt <= stallMs(s.settings)) return s;
  const epoch = s.epoch + 1;
  out.push({ type: 'stalled', ms: now - s.wakeAt, epoch });
  return { ...s, epoch, seq: 0, learningUntil: now + s.settings.intervalMs, nextHeartbeatAt: now };
}

function receive(s: ElectionState, hb: Heartbeat, now: number): ElectionState {
  const before = s.peers.get(hb.sender);
  if (before === undefined) return s; // the runner only passes members; be safe anyway
  const loss = observe(before.loss, hb.epoch, hb.seq, s.settings.deadAfter);
  const peer: PeerView = { name: before.name, address: before.address, last: hb, heardAt: now, loss };
  const peers = new Map(s.peers);
  peers.set(peer.name, peer);
  const term = Math.max(s.term, hb.term);
  const current = echoesUs(s, hb);
  // A peer that has not heard our current epoch (it restarted, or we did, or we stalled) gets an
  // answer at once rather than in up to an interval: it cannot count us until it has one.
  let nextHeartbeatAt = !current || before.last?.epoch !== hb.epoch ? now : s.nextHeartbeatAt;
  let hint = s.hint;
  if (current && hb.successor !== '' && (hb.handover || hb.resigning) && hb.term >= s.term) {
    hint = { name: hb.successor, until: now + handoverTimeoutMs(s.settings) };
  }
  let { grant, granted, rttMs } = s;
  const echo = hb.echoes[selfName(s)];
  if (s.claim !== undefined && hb.leader === selfName(s) && echo?.epoch === s.epoch && echo.ts === s.lastSentAt) {
    // A slowly rising minimum: a follower's regular heartbeat can echo our latest one an interval
    // later, which is not a round trip; the fastest answers are.
    const sample = now - echo.ts;
    rttMs = rttMs === 0 ? sample : Math.min(sample, rttMs * 1.05);
  }
  if (grant !== undefined && grant.leader === hb.sender && grant.leader !== selfName(s)) {
    const claiming = (hb.role === 'MASTER' || hb.role === 'CANDIDATE') && !hb.resigning && !hb.handover;
    if (!claiming) {
      // The leader disclaims (stepped down, hands over, resigns): it counts our grant no more.
      grant = undefined;
    } else if (current && hb.term >= term) {
      const until = Math.max(grant.until, now + peerDeadMs(s, peer));
      grant = { leader: hb.sender, term: hb.term, until };
      granted = { term: hb.term, leader: hb.sender };
      // Acknowledge at once (the next heartbeat is this one's answer): the leader's lease is then
      // renewed a round trip after each of its heartbeats, not up to an interval later.
      nextHeartbeatAt = now;
    }
    // A leader of a lower term than we have seen is not renewed: the grant runs out as promised.
  }
  return { ...s, peers, term, nextHeartbeatAt, hint, grant, granted, rttMs };
}

function evaluate(s: ElectionState, now: number, out: ElectionAction[], faultReason: TransitionReason): ElectionState {
  const self = selfName(s);
  if (s.grant !== undefined && s.grant.leader !== self && now >= s.grant.until) s = { ...s, grant: undefined };
  if (s.hint !== undefined && now >= s.hint.until) s = { ...s, hint: undefined };
  if (s.restricted && (now - s.startedAt >= restartQuietMs(s.settings) || everyPeerEchoes(s)))
    s = { ...s, restricted: false };

  if (s.handover !== undefined) return handingOver(s, now, out);
  if (s.stopping) return s.role === 'MASTER' ? stopMaster(s, now, out) : finishStop(s, now, out, '');

  if (isFaulted(s, now)) {
    if (s.role === 'FAULT') return grantIfFree(s, now);
    if (s.claim !== undefined) s = endClaim(s, out);
    s = moveTo(s, 'FAULT', faultReason, now, out);
    return grantIfFree(s, now);
  }
  if (s.role === 'FAULT') s = moveTo(s, 'BACKUP', 'fault cleared', now, out);

  if (s.role === 'INIT') {
    const master = counted(s, now).find((p) => p.last?.role === 'MASTER');
    if (master !== undefined) s = moveTo(s, 'BACKUP', 'master exists', now, out, master.name);
    else if (everyPeerEchoes(s)) s = moveTo(s, 'BACKUP', 'heard every peer', now, out);
    else if (now - s.startedAt >= baseDeadMs(s.settings)) s = moveTo(s, 'BACKUP', 'startup wait over', now, out);
    else return grantIfFree(s, now);
  }

  if (s.role === 'MASTER') return master(s, now, out);
  if (s.role === 'CANDIDATE') return candidate(s, now, out);

  // BACKUP: grant a claimant, or claim.
  s = grantIfFree(s, now);
  if (s.grant !== undefined || !selfEligible(s, now)) return s;
  const named = s.hint?.name === self;
  if (named || (voteOf(s, now) === self && votesForSelf(s, now) >= votesNeeded(s, now))) {
    return claim(s, named ? 'handover' : 'claimed', now, out);
  }
  return s;
}

function everyPeerEchoes(s: ElectionState): boolean {
  for (const p of s.peers.values()) if (p.last === undefined || !echoesUs(s, p.last)) return false;
  return true;
}

/** A free member grants the current claimant of the highest term (one per term). */
function grantIfFree(s: ElectionState, now: number): ElectionState {
  if (s.grant !== undefined || s.claim !== undefined || s.stopping || isLearning(s, now)) return s;
  const c = claimant(s, now);
  if (c === undefined || c.last === undefined || c.heardAt === undefined) return s;
  const term = c.last.term;
  return {
    ...s,
    grant: { leader: c.name, term, until: c.heardAt + peerDeadMs(s, c) },
    granted: { term, leader: c.name },
    hint: undefined,
  };
}

function claim(s: ElectionState, reason: TransitionReason, now: number, out: ElectionAction[]): ElectionState {
  const self = selfName(s);
  const term = Math.max(s.term, s.granted.term) + 1;
  s = {
    ...s,
    term,
    granted: { term, leader: self },
    grant: { leader: self, term, until: Infinity },
    claim: { term, since: now, priority: effectivePriority(s) },
    hint: undefined,
  };
  s = moveTo(s, 'CANDIDATE', reason, now, out);
  // With quorum: none (or a lease already in hand) the claim completes in the same step.
  return candidate(s, now, out);
}

function candidate(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const c = s.claim as NonNullable<ElectionState['claim']>;
  if (s.term > c.term) return moveTo(endClaim(s, out), 'BACKUP', 'higher term', now, out);
  // A master of our term or later that is not handing over (the one handing over to us keeps
  // saying MASTER, silent, until we announce).
  const rival = counted(s, now).find((p) => p.last?.role === 'MASTER' && p.last.term >= c.term && !p.last.handover);
  if (rival !== undefined) return moveTo(endClaim(s, out), 'BACKUP', 'master exists', now, out, rival.name);
  if (now < leaseUntil(s)) {
    out.push({ type: 'acquireVip' });
    s = moveTo(s, 'MASTER', 'elected', now, out);
    return { ...s, holding: true, lastRenewAt: now, preemptBy: undefined };
  }
  if (now - c.since >= claimTimeoutMs(s.settings)) return moveTo(endClaim(s, out), 'BACKUP', 'claim failed', now, out);
  return s;
}

function master(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const c = s.claim as NonNullable<ElectionState['claim']>;
  if (s.term > c.term) return moveTo(endClaim(s, out), 'BACKUP', 'higher term', now, out);
  if (now >= leaseUntil(s)) return moveTo(endClaim(s, out), 'BACKUP', 'lease lapsed', now, out);
  // Two masters of one term only happen without quorum (a partition healed): the better one stays.
  const rival = counted(s, now).find(
    (p) =>
      p.last?.role === 'MASTER' &&
      p.last.term === c.term &&
      !p.last.handover &&
      isBetter({ ...p, priority: p.last.priority }, selfCandidate(s)),
  );
  if (rival !== undefined) return moveTo(endClaim(s, out), 'BACKUP', 'better master', now, out, rival.name);
  if (!isLearning(s, now)) {
    const next = maybeHandOver(s, now, out);
    if (next.handover !== undefined) return next;
    s = next;
  }
  if (s.holding && s.settings.vipLifetimeMs > 0 && now - s.lastRenewAt >= renewEveryMs(s.settings)) {
    out.push({ type: 'renewVip' });
    s = { ...s, lastRenewAt: now };
  }
  return s;
}

/**
 * A claim, or a lease the last heartbeat has not renewed (its acknowledgements were lost; on a
 * healthy link one arrives a round trip after each send): heartbeat again an eighth of an interval
 * (or two round trips, if longer) after the last send, and so on until the lease moves. Each is
 * acknowledged at once, so a lost round trip is retried within 12.5 ms (at the defaults) instead of
 * an interval: at the onset of heavy loss, before the dead interval has stretched, that is what
 * keeps the lease. A healthy link sends nothing extra.
 */
function probeIfLeaseLow(s: ElectionState, now: number): ElectionState {
  const interval = s.settings.intervalMs;
  const regular = s.lastSentAt + interval;
  const renewed = leaseUntil(s) > s.leaseAtLastSend;
  const spacing = Math.max(interval / 8, 2 * s.rttMs);
  const at = renewed ? regular : Math.min(regular, Math.max(now, s.lastSentAt + spacing));
  return at === s.nextHeartbeatAt ? s : { ...s, nextHeartbeatAt: at };
}

/** Preemption by a strictly better member, or our own priority dropped below another's: hand over. */
function maybeHandOver(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const me = selfCandidate(s);
  const top = best(readyForHandover(s, now));
  if (top === undefined || top.priority <= me.priority)
    return s.preemptBy === undefined ? s : { ...s, preemptBy: undefined };
  // Our own priority dropped (a tracked check failed, a reload lowered it): move now, whatever preempt says.
  if (me.priority < (s.claim?.priority ?? me.priority)) return startHandover(s, top.name, 'priority dropped', now, out);
  if (!s.settings.preempt) return s;
  const since = s.preemptBy?.name === top.name ? s.preemptBy.since : now;
  if (now - since < s.settings.preemptDelayMs) {
    return s.preemptBy?.since === since ? s : { ...s, preemptBy: { name: top.name, since } };
  }
  return startHandover(s, top.name, 'preempted', now, out);
}

/** The master stops announcing, frees its followers naming `to`, and keeps the address until `to` is MASTER. */
function startHandover(
  s: ElectionState,
  to: string,
  reason: TransitionReason,
  now: number,
  out: ElectionAction[],
): ElectionState {
  out.push({ type: 'quiesceVip' });
  out.push(transition(s, 'MASTER', 'MASTER', reason, { peer: to, master: to }));
  const term = s.claim?.term ?? s.term;
  return {
    ...s,
    handover: { to, since: now, term },
    claim: undefined,
    grant: undefined,
    preemptBy: undefined,
    hint: { name: to, until: now + handoverTimeoutMs(s.settings) },
    nextHeartbeatAt: now,
  };
}

function handingOver(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const h = s.handover as NonNullable<ElectionState['handover']>;
  let took: string | undefined;
  for (const p of s.peers.values()) {
    if (p.last?.role === 'MASTER' && p.last.term > h.term && !p.last.handover) took = p.name;
  }
  const timedOut = now - h.since >= handoverTimeoutMs(s.settings);
  if (took === undefined && !timedOut && !isFaulted(s, now)) return grantIfFree(s, now);
  out.push({ type: 'releaseVip' });
  s = { ...s, handover: undefined, holding: false };
  if (s.stopping) return finishStop(s, now, out, took ?? h.to);
  if (isFaulted(s, now)) return moveTo(s, 'FAULT', 'fault', now, out);
  return grantIfFree(
    moveTo(s, 'BACKUP', took !== undefined ? 'handed over' : 'handover timed out', now, out, took ?? h.to),
    now,
  );
}

/**
 * A stopping master hands over to the best member ready to take over, or releases at once. Only a
 * master that still holds its lease hands over: one whose lease lapsed, that saw a higher term, or
 * that is re-learning after a stall releases at once, like master() would have it.
 */
function stopMaster(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const c = s.claim as NonNullable<ElectionState['claim']>;
  const mayHandOver = !isFaulted(s, now) && !isLearning(s, now) && s.term <= c.term && now < leaseUntil(s);
  const to = best(readyForHandover(s, now));
  if (mayHandOver && to !== undefined) return startHandover(s, to.name, 'stopping', now, out);
  return finishStop(endClaim(s, out), now, out, '');
}

/** Resign (three copies: UDP may lose one) naming the successor, and report the stop as done. */
function finishStop(s: ElectionState, now: number, out: ElectionAction[], successor: string): ElectionState {
  if (s.claim !== undefined) s = endClaim(s, out);
  out.push(transition(s, s.role, 'BACKUP', 'stopping', { master: successor, peer: successor || undefined }));
  s = withSeq({ ...s, role: 'BACKUP', roleSince: now, grant: undefined, stopped: true }, 3);
  const beat = heartbeat(s, now);
  out.push({
    type: 'send',
    copies: 3,
    heartbeat: {
      ...beat,
      seq: s.seq - 2,
      priority: 0,
      resigning: true,
      leader: '',
      leaderTerm: 0,
      grantMs: 0,
      vote: '',
      successor,
    },
  });
  out.push({ type: 'stopped' });
  return s;
}

/** Gives up this member's claim: the VIP goes if held, the self-grant ends (followers are freed by the next heartbeat). */
function endClaim(s: ElectionState, out: ElectionAction[]): ElectionState {
  if (s.holding) out.push({ type: 'releaseVip' });
  return {
    ...s,
    claim: undefined,
    grant: s.grant?.leader === selfName(s) ? undefined : s.grant,
    holding: false,
    preemptBy: undefined,
  };
}

// ---- heartbeats --------------------------------------------------------------------------------

function heartbeat(s: ElectionState, now: number): Heartbeat {
  const self = selfName(s);
  const grant = s.grant;
  let grantMs = 0;
  if (grant !== undefined && grant.leader !== self) {
    const heardAt = s.peers.get(grant.leader)?.heardAt;
    grantMs = heardAt === undefined ? 0 : Math.max(0, Math.floor(grant.until - heardAt));
  }
  const echoes: Record<string, { epoch: number; seq: number; ts: number }> = {};
  for (const p of s.peers.values())
    if (p.last !== undefined) echoes[p.name] = { epoch: p.last.epoch, seq: p.last.seq, ts: p.last.ts };
  return {
    clusterId: s.settings.clusterId,
    sender: self,
    epoch: s.epoch,
    seq: s.seq,
    ts: now,
    role: s.role,
    priority: s.role === 'FAULT' || s.settings.observer ? 0 : effectivePriority(s),
    intervalMs: s.settings.intervalMs,
    term: s.term,
    quorate: quorumOf(s, now).quorate,
    learning: isLearning(s, now),
    resigning: false,
    handover: s.handover !== undefined,
    formed: s.formed,
    observer: s.settings.observer,
    bootstrap: s.settings.bootstrap === self ? 'self' : 'other',
    leader: grant?.leader ?? '',
    leaderTerm: grant?.term ?? 0,
    grantMs,
    vote: voteOf(s, now),
    successor: s.handover?.to ?? '',
    digest: s.digest,
    members: s.settings.members.length,
    echoes,
  };
}

/** Takes `copies` sequence numbers; a new epoch first if they would wrap. */
function withSeq(s: ElectionState, copies: number): ElectionState {
  if (s.seq + copies > MAX_SEQ) return { ...s, epoch: s.epoch + 1, seq: copies };
  return { ...s, seq: s.seq + copies };
}

/** Sends a heartbeat when one is due or when what it would say changed. */
function announce(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const g = s.grant;
  const view =
    `${s.role}|${s.term}|${g?.leader ?? ''}|${g?.term ?? 0}|${voteOf(s, now)}|${s.handover?.to ?? ''}|` +
    `${isLearning(s, now)}|${quorumOf(s, now).quorate}|${s.formed}`;
  if (now < s.nextHeartbeatAt && view === s.announced) return s;
  const wraps = s.seq + 1 > MAX_SEQ;
  s = {
    ...s,
    epoch: wraps ? s.epoch + 1 : s.epoch,
    seq: wraps ? 1 : s.seq + 1,
    nextHeartbeatAt: now + s.settings.intervalMs,
    lastSentAt: now,
    leaseAtLastSend: leaseUntil(s),
    announced: view,
  };
  out.push({ type: 'send', copies: 1, heartbeat: heartbeat(s, now) });
  return s;
}

function moveTo(
  s: ElectionState,
  to: Role,
  reason: TransitionReason,
  now: number,
  out: ElectionAction[],
  peer?: string,
): ElectionState {
  const next = { ...s, role: to, roleSince: now, nextHeartbeatAt: now };
  out.push(transition(next, s.role, to, reason, { peer, master: masterOf(next, now) }));
  return next;
}

function transition(
  s: ElectionState,
  from: Role,
  to: Role,
  reason: TransitionReason,
  extra: { master?: string; peer?: string | undefined } = {},
): ElectionAction {
  return {
    type: 'transition',
    from,
    to,
    reason,
    master: extra.master ?? '',
    term: s.term,
    priority: effectivePriority(s),
    ...(extra.peer !== undefined ? { peer: extra.peer } : {}),
  };
}

/** The earliest moment a rule could fire without a new message. */
function nextWakeup(s: ElectionState, now: number): number {
  let at = s.nextHeartbeatAt;
  const consider = (t: number) => {
    if (t > now && t < at) at = t;
  };
  for (const p of s.peers.values()) {
    if (p.heardAt !== undefined && p.last !== undefined && !p.last.resigning) consider(p.heardAt + peerDeadMs(s, p));
  }
  if (s.grant !== undefined && s.grant.leader !== selfName(s)) consider(s.grant.until);
  if (s.hint !== undefined) consider(s.hint.until);
  if (s.restricted) consider(s.startedAt + restartQuietMs(s.settings));
  consider(s.learningUntil);
  consider(s.vipFaultUntil);
  if (s.role === 'INIT') consider(s.startedAt + baseDeadMs(s.settings));
  if (s.claim !== undefined) {
    if (s.role === 'CANDIDATE') consider(s.claim.since + claimTimeoutMs(s.settings));
    consider(leaseUntil(s));
    if (s.holding && s.settings.vipLifetimeMs > 0) consider(s.lastRenewAt + renewEveryMs(s.settings));
  }
  if (s.handover !== undefined) consider(s.handover.since + handoverTimeoutMs(s.settings));
  if (s.preemptBy !== undefined) consider(s.preemptBy.since + s.settings.preemptDelayMs);
  return Math.max(at, now);
}

// ---- a read-only summary -----------------------------------------------------------------------

export interface PeerSnapshot {
  readonly name: string;
  readonly address: string;
  readonly alive: boolean;
  readonly lastHeard: number | undefined;
  readonly role: Role;
  readonly priority: number;
  readonly term: number;
  readonly leader: string;
  readonly vote: string;
  /** The weighted share of its heartbeats lost on the way here, 0-1. */
  readonly loss: number;
  /** How long it may stay silent before it counts as dead (ms): its dead interval, stretched by loss. */
  readonly deadMs: number;
  /** A witness: it votes and acknowledges, and never leads. */
  readonly witness: boolean;
}

export interface ElectionSnapshot {
  readonly self: Member;
  readonly role: Role;
  readonly roleSince: number;
  readonly term: number;
  readonly epoch: number;
  readonly priority: number;
  readonly basePriority: number;
  readonly master: string;
  /** Whom this member follows and for how much longer it promised to (ms); null when free. */
  readonly following: { readonly leader: string; readonly term: number; readonly remainingMs: number } | null;
  /** The lease left while MASTER (ms); null otherwise (Infinity with quorum: none). */
  readonly leaseRemainingMs: number | null;
  readonly handoverTo: string | null;
  readonly learning: boolean;
  /** The cluster has formed (as far as this member knows); until then only the bootstrap member may lead. */
  readonly formed: boolean;
  /** This member is the bootstrap member of a cluster not formed yet: it holds the VIP alone if need be. */
  readonly bootstrapping: boolean;
  /** The bootstrap member this member's config names (the first listed). */
  readonly bootstrapMember: string;
  /** Peers whose config names another bootstrap member (docs/election.md, "Bootstrap"). */
  readonly bootstrapDisputedBy: readonly string[];
  /** This member only watches (a dry run, or a witness). */
  readonly observer: boolean;
  /** This member is a witness (its peer entry says so): it votes and acknowledges, and never leads. */
  readonly witness: boolean;
  /** Whom this member would have as master now (its pre-vote); '' for nobody. */
  readonly vote: string;
  readonly quorum: { readonly alive: number; readonly needed: number; readonly quorate: boolean };
  readonly faults: readonly string[];
  readonly peers: readonly PeerSnapshot[];
}

export function snapshot(s: ElectionState, now: number): ElectionSnapshot {
  const self = selfName(s);
  const grant = s.grant !== undefined && s.grant.leader !== self ? s.grant : undefined;
  const faults = [...s.tracks.entries()].filter(([, t]) => t.kind !== 'ok').map(([name]) => name);
  if (now < s.vipFaultUntil) faults.push('vip');
  return {
    self: s.settings.self,
    role: s.role,
    roleSince: s.roleSince,
    term: s.term,
    epoch: s.epoch,
    priority: effectivePriority(s),
    basePriority: s.settings.priority,
    master: masterOf(s, now),
    following:
      grant === undefined
        ? null
        : { leader: grant.leader, term: grant.term, remainingMs: Math.max(0, grant.until - now) },
    leaseRemainingMs: s.role === 'MASTER' && s.claim !== undefined ? Math.max(0, leaseUntil(s) - now) : null,
    handoverTo: s.handover?.to ?? null,
    learning: isLearning(s, now),
    formed: s.formed,
    bootstrapping: isBootstrapping(s),
    bootstrapMember: s.settings.bootstrap,
    bootstrapDisputedBy: bootstrapDisputedBy(s),
    observer: s.settings.observer,
    witness: s.settings.members.some((m) => m.name === self && m.witness === true),
    vote: voteOf(s, now),
    quorum: quorumOf(s, now),
    faults,
    peers: [...s.peers.values()].map((p) => ({
      name: p.name,
      address: p.address,
      alive: isCounted(s, p, now),
      lastHeard: p.heardAt,
      role: p.last?.role ?? 'INIT',
      priority: p.last?.priority ?? 0,
      term: p.last?.term ?? 0,
      leader: p.last?.leader ?? '',
      vote: p.last?.vote ?? '',
      loss: pessimisticLoss(p.loss),
      deadMs: peerDeadMs(s, p),
      witness: s.settings.members.some((m) => m.name === p.name && m.witness === true),
    })),
  };
}
