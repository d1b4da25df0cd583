/**
 * The election: a pure state machine, `step(state, event) -> { state, actions }`.
 *
 * It never reads a clock, touches a socket or arms a timer: time comes in on each event (`now`),
 * and everything it wants done goes out as actions for the runner (runner.ts). That is what lets
 * the tests drive a whole 5-member cluster through partitions in microseconds.
 *
 * The rules (docs/election.md has them in prose, with the reasons):
 * - a peer is alive while its heartbeats arrive within deadAfter x its interval;
 * - quorum (majority mode): hold or take MASTER only while hearing a majority of all members;
 * - candidates are alive, quorate, eligible (priority > 0, not FAULT) members in BACKUP or MASTER;
 *   the best is the highest priority, ties to the higher address;
 * - every heartbeat carries a vote: the master the sender sees, else the best candidate that votes
 *   for itself; a BACKUP claims MASTER when no alive member is (or is named) master, it is the best
 *   such candidate (or the named successor), and a majority of members vote for it;
 * - a MASTER hands over to a better candidate (preempt on, after preemptDelay; its own priority
 *   dropped, at once), steps down to a better MASTER (heard, or reported by a peer that hears
 *   both), releases when it loses quorum, and resigns naming its successor on stop;
 * - a new member stays INIT until it has heard every peer (a heartbeat sent after it started) or
 *   waited one dead interval, so a restarting node never grabs the VIP before learning that a
 *   master exists (keepalived #2231: a backup briefly MASTER at boot).
 */
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
  /** When its last heartbeat arrived; undefined until the first. */
  readonly lastHeard: number | undefined;
  readonly role: Role;
  readonly priority: number;
  readonly quorate: boolean;
  readonly resigned: boolean;
  readonly master: string;
  readonly vote: string;
  readonly intervalMs: number;
}

export interface ElectionState {
  readonly settings: ElectionSettings;
  readonly role: Role;
  readonly roleSince: number;
  readonly startedAt: number;
  readonly started: boolean;
  readonly stopped: boolean;
  /** Tracked conditions that currently weigh on this member, by name. */
  readonly tracks: ReadonlyMap<string, TrackEffect>;
  readonly peers: ReadonlyMap<string, PeerView>;
  /** A successor named by a master that handed over or resigned, and when (it expires). */
  readonly successor: string | undefined;
  readonly successorAt: number;
  /** A better candidate seen while MASTER with preempt on, and since when (for preemptDelay). */
  readonly preemptBy: { readonly name: string; readonly since: number } | undefined;
  readonly nextHeartbeatAt: number;
  /** The master and vote in our last heartbeat: a change of view is announced at once. */
  readonly announced: string;
}

export interface StepResult {
  readonly state: ElectionState;
  readonly actions: readonly ElectionAction[];
}

export function initialState(settings: ElectionSettings): ElectionState {
  const peers = new Map<string, PeerView>();
  for (const m of settings.members) {
    if (m.name === settings.self.name) continue;
    peers.set(m.name, {
      name: m.name, address: m.address, lastHeard: undefined, role: 'INIT', priority: 0,
      quorate: false, resigned: false, master: '', vote: '', intervalMs: settings.intervalMs,
    });
  }
  return {
    settings, role: 'INIT', roleSince: 0, startedAt: 0, started: false, stopped: false,
    tracks: new Map(), peers, successor: undefined, successorAt: 0,
    preemptBy: undefined, nextHeartbeatAt: 0, announced: '',
  };
}

/** One event in, the next state and the actions to carry out. */
export function step(state: ElectionState, event: ElectionEvent): StepResult {
  const out: ElectionAction[] = [];
  let s = state;
  if (s.stopped) return { state: s, actions: [] };
  const now = event.now;
  switch (event.type) {
    case 'start':
      if (s.started) return { state: s, actions: [] };
      s = { ...s, started: true, startedAt: now, roleSince: now, nextHeartbeatAt: now };
      out.push(transition(s, 'INIT', 'INIT', 'started'));
      break;
    case 'tick':
      break;
    case 'heartbeat':
      s = receive(s, event.heartbeat, now);
      break;
    case 'track': {
      const tracks = new Map(s.tracks);
      if (event.effect.kind === 'ok') tracks.delete(event.name);
      else tracks.set(event.name, event.effect);
      s = { ...s, tracks };
      // A changed priority is news for the peers now, not in up to one interval.
      s = { ...s, nextHeartbeatAt: Math.min(s.nextHeartbeatAt, now) };
      break;
    }
    case 'stop':
      return stop(s, now);
    case 'reconfigure':
      // Announced at once: a new priority may move the VIP.
      s = { ...s, settings: { ...s.settings, ...event.settings }, preemptBy: undefined, nextHeartbeatAt: now };
      break;
  }
  if (!s.started) return { state: s, actions: out };
  s = evaluate(s, now, out);
  const beat = heartbeat(s, now);
  const view = `${beat.heartbeat.master}/${beat.heartbeat.vote}`;
  if (now >= s.nextHeartbeatAt || view !== s.announced) {
    out.push(beat);
    s = { ...s, nextHeartbeatAt: now + s.settings.intervalMs, announced: view };
  }
  out.push({ type: 'schedule', at: nextWakeup(s, now) });
  return { state: s, actions: out };
}

// ---- derived views -----------------------------------------------------------------------------

export function deadIntervalOf(settings: ElectionSettings, intervalMs: number): number {
  return settings.deadAfter * intervalMs;
}

export function isAlive(state: ElectionState, peer: PeerView, now: number): boolean {
  return !peer.resigned && peer.lastHeard !== undefined
    && now - peer.lastHeard < deadIntervalOf(state.settings, peer.intervalMs);
}

export function alivePeers(state: ElectionState, now: number): PeerView[] {
  return [...state.peers.values()].filter((p) => isAlive(state, p, now));
}

/** Members heard from (self included) and the count needed for a majority of all members. */
export function quorumOf(state: ElectionState, now: number): { alive: number; needed: number; quorate: boolean } {
  const alive = 1 + alivePeers(state, now).length;
  const needed = state.settings.quorum === 'none' ? 1 : Math.floor(state.settings.members.length / 2) + 1;
  return { alive, needed, quorate: alive >= needed };
}

export function effectivePriority(state: ElectionState): number {
  let p = state.settings.priority;
  for (const t of state.tracks.values()) if (t.kind === 'weight') p -= t.weight;
  return Math.max(1, Math.min(254, p));
}

export function isFaulted(state: ElectionState): boolean {
  for (const t of state.tracks.values()) if (t.kind === 'fault') return true;
  return false;
}

/** The current master as seen here: this node, or the best alive peer announcing MASTER. */
export function masterOf(state: ElectionState, now: number): string {
  if (state.role === 'MASTER') return state.settings.self.name;
  const masters = alivePeers(state, now).filter((p) => p.role === 'MASTER');
  return best(masters)?.name ?? '';
}

/**
 * A master this node cannot hear but an alive peer reports, when that report is credible: older
 * reports of a master we saw die are just peers that have not noticed yet, so a report counts only
 * once the peers have had a dead interval and an interval to notice. Catches the failure keepalived
 * users hit (its #2649): a link between two members is cut while a third hears both, and each of
 * the two would otherwise hold the VIP.
 */
export function reportedMaster(state: ElectionState, now: number): { master: string; by: string } | undefined {
  const self = state.settings.self.name;
  for (const p of alivePeers(state, now)) {
    if (p.role === 'MASTER' || p.master === '' || p.master === self || p.master === p.name || p.lastHeard === undefined) continue;
    const subject = state.peers.get(p.master);
    if (subject === undefined || isAlive(state, subject, now) || subject.resigned) continue;
    const settle = deadIntervalOf(state.settings, subject.intervalMs) + subject.intervalMs;
    const diedAt = subject.lastHeard === undefined ? -Infinity : subject.lastHeard + deadIntervalOf(state.settings, subject.intervalMs);
    const since = Math.max(diedAt, state.role === 'MASTER' ? state.roleSince : -Infinity);
    if (p.lastHeard > since + settle) return { master: p.master, by: p.name };
  }
  return undefined;
}

interface Candidate { readonly name: string; readonly address: string; readonly priority: number }

/** Higher priority wins; equal priority goes to the higher address (as in VRRP). */
export function isBetter(a: Candidate, b: Candidate): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return ipv4ToNumber(a.address) > ipv4ToNumber(b.address);
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
  return { name: s.settings.self.name, address: s.settings.self.address, priority: effectivePriority(s) };
}

/** Who could be master: alive, eligible peers that hear a quorum, plus this node when eligible. */
function candidates(s: ElectionState, now: number, selfEligible: boolean): Candidate[] {
  const list: Candidate[] = alivePeers(s, now)
    .filter((p) => p.priority > 0 && (p.role === 'BACKUP' || p.role === 'MASTER') && p.quorate);
  if (selfEligible) list.push(selfCandidate(s));
  return list;
}

/**
 * Who may be elected when there is no master: candidates that vote for themselves (a candidate
 * that sees a better one votes for that one instead, so it is not in the running), plus peers still
 * in INIT (they have not decided yet; a BACKUP must not claim ahead of a better member that is about
 * to), plus this node when eligible. Every member votes for the best of these; the best claims once
 * a majority votes for it.
 */
function nominees(s: ElectionState, now: number): Candidate[] {
  const list: Candidate[] = alivePeers(s, now).filter((p) => p.priority > 0 && (p.role === 'INIT'
    || ((p.role === 'BACKUP' || p.role === 'MASTER') && p.quorate && p.vote === p.name)));
  if (selfEligible(s, now)) list.push(selfCandidate(s));
  return list;
}

function selfEligible(s: ElectionState, now: number): boolean {
  return (s.role === 'BACKUP' || s.role === 'MASTER') && !isFaulted(s) && quorumOf(s, now).quorate;
}

// ---- the rules ---------------------------------------------------------------------------------

function receive(s: ElectionState, hb: Heartbeat, now: number): ElectionState {
  const before = s.peers.get(hb.sender);
  if (before === undefined) return s; // the runner only passes members; be safe anyway
  const peer: PeerView = {
    ...before, lastHeard: now, role: hb.role, priority: hb.priority, quorate: hb.quorate,
    resigned: hb.resigning, master: hb.master, vote: hb.vote, intervalMs: hb.intervalMs,
  };
  const peers = new Map(s.peers);
  peers.set(peer.name, peer);
  // A master that resigns or hands over names its successor; remember it so the others wait for it.
  const handsOver = (before.role === 'MASTER' && hb.role !== 'MASTER' && hb.master !== '' && hb.master !== hb.sender)
    || (hb.resigning && hb.master !== '');
  let next: ElectionState = handsOver ? { ...s, peers, successor: hb.master, successorAt: now } : { ...s, peers };
  // Two masters that hear each other: the better one re-asserts at once so the other steps down
  // within one one-way delay instead of up to an interval (RFC 5798 6.4.3).
  if (s.role === 'MASTER' && hb.role === 'MASTER' && !isBetter(peer, selfCandidate(s))) {
    next = { ...next, nextHeartbeatAt: now };
  }
  return next;
}

function evaluate(s: ElectionState, now: number, out: ElectionAction[]): ElectionState {
  const { quorate } = quorumOf(s, now);
  const faulted = isFaulted(s);
  const master = masterOf(s, now);

  if (faulted) {
    if (s.role === 'FAULT') return s;
    if (s.role === 'MASTER') out.push({ type: 'releaseVip' });
    return moveTo(s, 'FAULT', 'fault', now, out, { master: master === s.settings.self.name ? '' : master });
  }
  if (s.role === 'FAULT') {
    s = moveTo(s, 'BACKUP', 'fault cleared', now, out, { master });
  }

  if (s.role === 'INIT') {
    if (master !== '') return moveTo(s, 'BACKUP', 'master exists', now, out, { master, peer: master });
    // "Heard" means a heartbeat from each peer at least one of its intervals after we started:
    // one sent before we were listening (a claim we missed) is then certainly superseded.
    const heardAll = [...s.peers.values()].every((p) => p.lastHeard !== undefined && p.lastHeard >= s.startedAt + p.intervalMs);
    const waited = now - s.startedAt >= deadIntervalOf(s.settings, s.settings.intervalMs);
    if (!heardAll && !waited) return s;
    s = moveTo(s, 'BACKUP', heardAll ? 'heard every peer' : 'startup wait over', now, out, { master });
  }

  const me = selfCandidate(s);
  if (s.role === 'MASTER') {
    if (!quorate) {
      out.push({ type: 'releaseVip' });
      return moveTo(s, 'BACKUP', 'lost quorum', now, out, { master: '' });
    }
    const rival = best(alivePeers(s, now).filter((p) => p.role === 'MASTER'));
    if (rival !== undefined && isBetter(rival, me)) {
      out.push({ type: 'releaseVip' });
      return moveTo(s, 'BACKUP', 'higher master', now, out, { master: rival.name, peer: rival.name });
    }
    // A peer that hears both of us prefers another master we cannot hear: that one is better.
    const reported = reportedMaster(s, now);
    if (reported !== undefined) {
      out.push({ type: 'releaseVip' });
      return moveTo(s, 'BACKUP', 'higher master', now, out, { master: reported.master, peer: reported.by });
    }
    // As in RFC 5798, only a strictly higher priority displaces a master: with equal priorities
    // (the default) a restarted node never pulls the VIP back and costs a second failover.
    const top = best(candidates(s, now, true));
    if (top === undefined || top.name === me.name || top.priority <= me.priority) {
      return s.preemptBy === undefined ? s : { ...s, preemptBy: undefined };
    }
    // Our own priority dropped (a tracked check failed): move now, whatever the preempt settings.
    if (me.priority < s.settings.priority) return handOver(s, top.name, 'priority dropped', now, out);
    if (!s.settings.preempt) return s;
    const since = s.preemptBy?.name === top.name ? s.preemptBy.since : now;
    if (now - since < s.settings.preemptDelayMs) {
      return s.preemptBy?.since === since ? s : { ...s, preemptBy: { name: top.name, since } };
    }
    return handOver(s, top.name, 'preempted', now, out);
  }

  // BACKUP
  if (master !== '' || reportedMaster(s, now) !== undefined) {
    return s.successor === undefined ? s : { ...s, successor: undefined };
  }
  // A named successor that has not claimed within a dead interval is forgotten.
  if (s.successor !== undefined && now - s.successorAt > deadIntervalOf(s.settings, s.settings.intervalMs)) {
    s = { ...s, successor: undefined };
  }
  if (!quorate) return s;
  // A peer that still names a master hears one we do not (a partition that moved, a death it has
  // not noticed yet): claiming now could make two holders. Peers announce a changed view at once,
  // so in a plain failover this costs no more than the spread of their dead timers.
  if (alivePeers(s, now).some((p) => p.master !== '' && p.master !== me.name && p.master !== s.successor)) return s;
  const named = s.successor === me.name;
  if (!named && s.successor !== undefined && candidates(s, now, false).some((c) => c.name === s.successor)) return s;
  const top = named ? me : best(nominees(s, now));
  if (top?.name === me.name && votesFor(s, me.name, now) >= quorumOf(s, now).needed) {
    return claim(s, named ? 'handover' : 'no master', now, out);
  }
  return s;
}

/** This node's own vote (always for itself when it is the best it sees) plus alive peers' votes. */
function votesFor(s: ElectionState, name: string, now: number): number {
  return 1 + alivePeers(s, now).filter((p) => p.vote === name).length;
}

/** Whom this member would have as master: the master it sees, a named successor, or the best candidate. */
function voteOf(s: ElectionState, now: number): string {
  const master = masterOf(s, now);
  if (master !== '') return master;
  if (s.successor !== undefined && candidates(s, now, selfEligible(s, now)).some((c) => c.name === s.successor)) return s.successor;
  return best(nominees(s, now))?.name ?? '';
}

function claim(s: ElectionState, reason: TransitionReason, now: number, out: ElectionAction[]): ElectionState {
  out.push({ type: 'acquireVip' });
  const next = moveTo(s, 'MASTER', reason, now, out, { master: s.settings.self.name, peer: s.successor });
  // Tell the peers at once: they stop counting down, and a rival master learns to step down.
  return { ...next, successor: undefined, preemptBy: undefined, nextHeartbeatAt: now };
}

function handOver(s: ElectionState, to: string, reason: TransitionReason, now: number, out: ElectionAction[]): ElectionState {
  out.push({ type: 'releaseVip' });
  const next = moveTo(s, 'BACKUP', reason, now, out, { master: to, peer: to });
  return { ...next, successor: to, successorAt: now, preemptBy: undefined, nextHeartbeatAt: now };
}

function stop(s: ElectionState, now: number): StepResult {
  const out: ElectionAction[] = [];
  if (!s.started) return { state: { ...s, stopped: true }, actions: out };
  const wasMaster = s.role === 'MASTER';
  const top = best(candidates(s, now, false));
  const successor = wasMaster ? top?.name ?? '' : masterOf(s, now);
  if (wasMaster) out.push({ type: 'releaseVip' });
  out.push(transition(s, s.role, 'BACKUP', 'stopping', { master: successor, peer: top?.name }));
  out.push({
    type: 'send',
    heartbeat: { role: 'BACKUP', priority: 0, quorate: false, resigning: true, master: successor, vote: successor },
  });
  return { state: { ...s, role: 'BACKUP', roleSince: now, stopped: true }, actions: out };
}

function heartbeat(s: ElectionState, now: number): Extract<ElectionAction, { type: 'send' }> {
  const master = s.role === 'BACKUP' && s.successor !== undefined && masterOf(s, now) === '' ? s.successor : masterOf(s, now);
  return {
    type: 'send',
    heartbeat: {
      role: s.role,
      priority: s.role === 'FAULT' ? 0 : effectivePriority(s),
      quorate: quorumOf(s, now).quorate,
      resigning: false,
      master,
      vote: voteOf(s, now),
    },
  };
}

function moveTo(
  s: ElectionState, to: Role, reason: TransitionReason, now: number, out: ElectionAction[],
  extra: { master: string; peer?: string | undefined },
): ElectionState {
  out.push(transition(s, s.role, to, reason, extra));
  // Every role change is announced at once rather than at the next interval.
  return { ...s, role: to, roleSince: now, nextHeartbeatAt: now };
}

function transition(
  s: ElectionState, from: Role, to: Role, reason: TransitionReason,
  extra: { master?: string; peer?: string | undefined } = {},
): ElectionAction {
  return {
    type: 'transition', from, to, reason, master: extra.master ?? '', priority: effectivePriority(s),
    ...(extra.peer !== undefined ? { peer: extra.peer } : {}),
  };
}

/** The earliest moment a rule could fire without a new message: heartbeat, a death, a deadline. */
function nextWakeup(s: ElectionState, now: number): number {
  let at = s.nextHeartbeatAt;
  const consider = (t: number) => { if (t > now && t < at) at = t; };
  for (const p of s.peers.values()) {
    if (p.lastHeard !== undefined && !p.resigned) consider(p.lastHeard + deadIntervalOf(s.settings, p.intervalMs));
  }
  if (s.role === 'INIT') {
    consider(s.startedAt + deadIntervalOf(s.settings, s.settings.intervalMs));
    for (const p of s.peers.values()) consider(s.startedAt + p.intervalMs);
  }
  if (s.role === 'BACKUP' && s.successor !== undefined) consider(s.successorAt + deadIntervalOf(s.settings, s.settings.intervalMs) + 1);
  if (s.role === 'MASTER' && s.preemptBy !== undefined) consider(s.preemptBy.since + s.settings.preemptDelayMs);
  return Math.max(at, now);
}

/** A read-only summary for logs, /status and tests. */
export interface ElectionSnapshot {
  readonly self: Member;
  readonly role: Role;
  readonly roleSince: number;
  readonly priority: number;
  readonly basePriority: number;
  readonly master: string;
  readonly quorum: { readonly alive: number; readonly needed: number; readonly quorate: boolean };
  readonly faults: readonly string[];
  readonly peers: readonly (PeerView & { readonly alive: boolean })[];
}

export function snapshot(s: ElectionState, now: number): ElectionSnapshot {
  return {
    self: s.settings.self,
    role: s.role,
    roleSince: s.roleSince,
    priority: effectivePriority(s),
    basePriority: s.settings.priority,
    master: masterOf(s, now),
    quorum: quorumOf(s, now),
    faults: [...s.tracks.entries()].filter(([, t]) => t.kind !== 'ok').map(([name]) => name),
    peers: [...s.peers.values()].map((p) => ({ ...p, alive: isAlive(s, p, now) })),
  };
}
