/**
 * The shape of `/status` (and `vipd status`): what an operator asks first during an incident; the
 * projection that builds it from what the parts report (a pure function: the daemon only gathers
 * the reports), and the table `vipd status` prints.
 */
import { formatHostPort } from '../config/host-port';
import type { ElectionSnapshot } from '../vrrp/state-machine';
import type { Role, TrackEffect } from '../vrrp/types';

export interface PeerStatus {
  readonly name: string;
  readonly address: string;
  readonly alive: boolean;
  /** Milliseconds since its last heartbeat arrived; null if never heard. */
  readonly lastHeardMsAgo: number | null;
  readonly state: Role;
  readonly priority: number;
  readonly term: number;
  /** Whom it follows (acknowledges), and whom it would elect now. */
  readonly leader: string;
  readonly vote: string;
  /** The share of its heartbeats lost on the way here (0-1), and the dead interval that makes (ms). */
  readonly loss: number;
  readonly deadAfterMs: number;
  /** member, or witness: it votes and acknowledges, and never holds the VIP. */
  readonly role: 'member' | 'witness';
}

export interface BackendStatus {
  readonly frontend: string;
  readonly name: string;
  readonly address: string;
  readonly up: boolean;
  readonly activeConnections: number;
  readonly lastCheck: { readonly at: string; readonly ok: boolean; readonly detail?: string } | null;
}

/** This node's own apiserver as `track.apiserver` checks it. */
export interface ApiserverStatus {
  readonly url: string;
  /** The checks' verdict after rise/fall counting: up (as it starts), or down after `fall` failures. */
  readonly state: 'unknown' | 'up' | 'down';
  /** What that does to the election now: nothing, a priority lowered by `weight`, or FAULT. */
  readonly effect: TrackEffect;
  readonly lastCheck: { readonly at: string; readonly ok: boolean; readonly detail?: string } | null;
}

export interface DaemonStatus {
  readonly node: string;
  readonly address: string;
  readonly version: string;
  readonly dryRun: boolean;
  /** member, or witness (`vipd witness`): a voter that holds no VIP and runs no balancer. */
  readonly role: 'member' | 'witness';
  /** Whom this node would have as master now (its pre-vote; a witness's is its vote); '' for nobody. */
  readonly vote: string;
  readonly state: Role;
  readonly stateSince: string;
  readonly priority: number;
  readonly basePriority: number;
  readonly master: string;
  /** The highest term seen, and this process's current epoch. */
  readonly term: number;
  readonly epoch: number;
  /** While MASTER: the lease a majority acknowledged, in ms (null otherwise, or with quorum: none). */
  readonly leaseRemainingMs: number | null;
  /** Whom this member acknowledges and for how much longer it promised to (ms); null when free. */
  readonly following: { readonly leader: string; readonly term: number; readonly remainingMs: number } | null;
  /** A master handing the VIP over names its successor here. */
  readonly handoverTo: string | null;
  /** Re-learning the cluster after a start or a stall: no claims, no new grants. */
  readonly learning: boolean;
  /** The cluster has formed: no member holds the VIP without a majority any more (docs/election.md, "Bootstrap"). */
  readonly formed: boolean;
  /** This is the bootstrap member of a cluster not formed yet: it may hold the VIP alone. */
  readonly bootstrapping: boolean;
  /** The bootstrap member this config names (the first peer listed). */
  readonly bootstrapMember: string;
  /** Peers whose config names another bootstrap member: the peers are listed in another order there. */
  readonly bootstrapDisputedBy: readonly string[];
  /** A dry run or a witness: this member votes and acknowledges, and is never elected. */
  readonly observer: boolean;
  readonly quorum: {
    readonly mode: 'majority' | 'none';
    readonly alive: number;
    readonly needed: number;
    readonly quorate: boolean;
  };
  readonly faults: readonly string[];
  readonly vip: {
    /** The primary VIP. */
    readonly address: string;
    /** Every VIP this election holds: the primary, and the other family's with dual stack. */
    readonly addresses: readonly string[];
    readonly interface: string;
    readonly held: boolean;
    readonly since: string | null;
  };
  /** Null when track.apiserver is not enabled. */
  readonly apiserver: ApiserverStatus | null;
  readonly peers: readonly PeerStatus[];
  readonly backends: readonly BackendStatus[];
}

export interface Check {
  readonly ok: boolean;
  readonly reason: string;
}

/** One backend as the balancer reports it (proxy/frontend.ts), as far as /status shows it. */
interface BackendReport {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly state: string;
  readonly activeConnections: number;
  readonly lastCheck: { readonly at: string; readonly ok: boolean; readonly detail: string } | null;
}

/** What /status is built from: each part's own report, the config's names, and the clocks. */
export interface StatusInput {
  readonly config: {
    readonly nodeName: string;
    readonly self: { readonly address: string };
    readonly election: { readonly quorum: 'majority' | 'none' };
    readonly vip: { readonly address: string; readonly addresses: readonly string[]; readonly interface: string };
  };
  readonly version: string;
  readonly dryRun: boolean;
  readonly election: ElectionSnapshot;
  /** Wall-clock ms since the VIP has been on the interface; undefined when not held. */
  readonly vipHeldSince: number | undefined;
  /** The apiserver tracker's status(); undefined when nothing is tracked. */
  readonly apiserver:
    | {
        readonly url: string;
        readonly state: ApiserverStatus['state'];
        readonly effect: TrackEffect;
        readonly lastCheck: { readonly at: string; readonly ok: boolean; readonly detail: string } | null;
      }
    | undefined;
  /** The balancer's frontends; undefined when the balancer is off. */
  readonly frontends: readonly { readonly name: string; readonly backends: readonly BackendReport[] }[] | undefined;
  /** Now on the monotonic clock (the snapshot's times) and the wall clock (what /status shows). */
  readonly now: { readonly mono: number; readonly wall: number };
}

/** /status from the parts' reports: times made relative or wall-clock, numbers rounded for a person. */
export function daemonStatus(input: StatusInput): DaemonStatus {
  const { config, election: snap, vipHeldSince: since, apiserver } = input;
  const { mono, wall } = input.now;
  const lease = snap.leaseRemainingMs;
  return {
    node: config.nodeName,
    address: config.self.address,
    version: input.version,
    dryRun: input.dryRun,
    role: snap.witness ? 'witness' : 'member',
    vote: snap.vote,
    state: snap.role,
    stateSince: new Date(wall - (mono - snap.roleSince)).toISOString(),
    priority: snap.priority,
    basePriority: snap.basePriority,
    master: snap.master,
    term: snap.term,
    epoch: snap.epoch,
    leaseRemainingMs: lease === null || !Number.isFinite(lease) ? null : Math.round(lease),
    following:
      snap.following === null ? null : { ...snap.following, remainingMs: Math.round(snap.following.remainingMs) },
    handoverTo: snap.handoverTo,
    learning: snap.learning,
    formed: snap.formed,
    bootstrapping: snap.bootstrapping,
    bootstrapMember: snap.bootstrapMember,
    bootstrapDisputedBy: snap.bootstrapDisputedBy,
    observer: snap.observer,
    quorum: { mode: config.election.quorum, ...snap.quorum },
    faults: snap.faults,
    vip: {
      address: config.vip.address,
      addresses: config.vip.addresses,
      interface: config.vip.interface,
      held: since !== undefined,
      since: since === undefined ? null : new Date(since).toISOString(),
    },
    apiserver:
      apiserver === undefined
        ? null
        : {
            url: apiserver.url,
            state: apiserver.state,
            effect: apiserver.effect,
            lastCheck: lastCheck(apiserver.lastCheck),
          },
    peers: snap.peers.map((p) => ({
      name: p.name,
      address: p.address,
      alive: p.alive,
      lastHeardMsAgo: p.lastHeard === undefined ? null : Math.round(mono - p.lastHeard),
      state: p.role,
      priority: p.priority,
      term: p.term,
      leader: p.leader,
      vote: p.vote,
      loss: Math.round(p.loss * 1000) / 1000,
      deadAfterMs: Math.round(p.deadMs),
      role: p.witness ? 'witness' : 'member',
    })),
    backends: (input.frontends ?? []).flatMap((f) =>
      f.backends.map((b) => ({
        frontend: f.name,
        name: b.name,
        address: formatHostPort(b.address, b.port),
        up: b.state !== 'down',
        activeConnections: b.activeConnections,
        lastCheck: lastCheck(b.lastCheck),
      })),
    ),
  };
}

/** A check's time and result, and what it found unless that is nothing. */
function lastCheck(
  c: { readonly at: string; readonly ok: boolean; readonly detail: string } | null,
): { readonly at: string; readonly ok: boolean; readonly detail?: string } | null {
  return c === null ? null : { at: c.at, ok: c.ok, ...(c.detail ? { detail: c.detail } : {}) };
}

/** What the admin endpoint asks of the daemon. */
export interface AdminSource {
  status(): DaemonStatus;
  /** /healthz: the daemon's loops are alive. */
  healthy(): Check;
  /** /readyz: config loaded, election running, the proxy listening. */
  ready(): Check;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** POST /-/reload: re-read the config file and apply it, or keep the old one and say why. */
  reload(): Promise<Check>;
}

/** `vipd status` as a table: this member (election, quorum, VIP, apiserver), then a line per peer and per backend. */
export function formatStatus(s: DaemonStatus): string {
  const lines: string[] = [];
  const witness = s.role === 'witness';
  lines.push(
    `${witness ? 'witness' : 'node'} ${s.node} (${s.address})  state ${s.state}${s.learning ? ' (learning)' : ''}` +
      ` since ${s.stateSince}  priority ${s.priority}/${s.basePriority}  term ${s.term}  master ${s.master || '-'}`,
  );
  const lease = s.leaseRemainingMs === null ? '' : `  lease ${s.leaseRemainingMs}ms`;
  const follows =
    s.following === null
      ? '  follows nobody'
      : `  follows ${s.following.leader} (term ${s.following.term}, ${s.following.remainingMs}ms)`;
  const handover = s.handoverTo === null ? '' : `  handing over to ${s.handoverTo}`;
  const vote = witness ? `  votes for ${s.vote || 'nobody'}` : '';
  lines.push(`election${s.state === 'MASTER' ? lease : follows}${handover}${vote}`);
  // An older vipd's /status has no bootstrapDisputedBy (`vipd status --url` may ask another node's).
  const disputed = s.bootstrapDisputedBy ?? [];
  const cluster = s.formed
    ? ''
    : disputed.length > 0
      ? `  cluster not formed yet: ${disputed.join(', ')} name${disputed.length === 1 ? 's' : ''} another bootstrap ` +
        `member than ${s.bootstrapMember} (list the peers in the same order on every member)`
      : s.bootstrapping
        ? '  cluster not formed yet: bootstrap member, may hold the VIP alone'
        : `  cluster not formed yet: waiting for the bootstrap member${s.bootstrapMember ? ` ${s.bootstrapMember}` : ''}`;
  const q = s.quorum;
  lines.push(
    `quorum ${q.mode}: ${q.alive} of ${q.needed} needed ${q.quorate ? '(quorate)' : '(NOT quorate)'}` +
      `${s.faults.length ? `  faults: ${s.faults.join(', ')}` : ''}${cluster}` +
      `${s.observer && !witness ? '  observer (dry run): never elected' : ''}`,
  );
  if (witness) {
    lines.push(`vip ${vipText(s.vip)}: never held here (a witness votes, holds no VIP, runs no balancer)`);
  } else {
    const held = s.vip.held ? `held since ${s.vip.since}` : 'not held here';
    lines.push(`vip ${vipText(s.vip)} on ${s.vip.interface}: ${held}${s.dryRun ? ' (dry run)' : ''}`);
  }
  // An older vipd's /status has no `apiserver` (`vipd status --url` may ask another node's, mid-upgrade).
  if (s.apiserver !== undefined) lines.push(formatApiserver(s.apiserver));
  lines.push('');
  lines.push(
    `${'PEER'.padEnd(20)}${'ADDRESS'.padEnd(17)}${'ALIVE'.padEnd(7)}${'STATE'.padEnd(10)}${'PRIO'.padEnd(6)}` +
      `${'TERM'.padEnd(6)}${'LAST HEARD'.padEnd(12)}${'LOSS'.padEnd(6)}${'DEAD AFTER'.padEnd(11)}LEADER/VOTE`,
  );
  for (const p of s.peers) {
    // An older vipd's /status has no role (`vipd status --url` may ask another node's).
    const name = p.role === 'witness' ? `${p.name} (witness)` : p.name;
    lines.push(
      `${name.padEnd(20)}${p.address.padEnd(17)}${(p.alive ? 'yes' : 'no').padEnd(7)}${p.state.padEnd(10)}` +
        `${String(p.priority).padEnd(6)}${String(p.term).padEnd(6)}` +
        `${(p.lastHeardMsAgo === null ? 'never' : `${p.lastHeardMsAgo}ms ago`).padEnd(12)}` +
        `${`${Math.round(p.loss * 100)}%`.padEnd(6)}${`${p.deadAfterMs}ms`.padEnd(11)}` +
        `${p.leader || '-'}/${p.vote || '-'}`,
    );
  }
  if (s.backends.length > 0) {
    lines.push('');
    lines.push(
      `${'FRONTEND'.padEnd(14)}${'BACKEND'.padEnd(20)}${'ADDRESS'.padEnd(22)}${'UP'.padEnd(5)}` +
        `${'CONNS'.padEnd(7)}LAST CHECK`,
    );
    for (const b of s.backends) {
      lines.push(
        `${b.frontend.padEnd(14)}${b.name.padEnd(20)}${b.address.padEnd(22)}` +
          `${(b.up ? 'yes' : 'no').padEnd(5)}${String(b.activeConnections).padEnd(7)}` +
          `${b.lastCheck === null ? '-' : checkText(b.lastCheck)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The tracked apiserver's line: its verdict, what that does to the election, and the last check. */
function formatApiserver(a: ApiserverStatus | null): string {
  if (a === null) return 'apiserver not tracked';
  const effect =
    a.effect.kind === 'weight'
      ? `, priority lowered by ${a.effect.weight}`
      : a.effect.kind === 'fault'
        ? ', FAULT (ineligible)'
        : '';
  const last = a.lastCheck === null ? 'not checked yet' : `last check ${checkText(a.lastCheck)}`;
  return `apiserver ${a.url}: ${a.state}${effect}  ${last}`;
}

function checkText(c: { readonly at: string; readonly ok: boolean; readonly detail?: string }): string {
  return `${c.ok ? 'ok' : 'failed'} at ${c.at}${c.detail ? ` (${c.detail})` : ''}`;
}

/** "192.168.10.100/24", or a dual-stack pair "192.168.10.100/24 + fd00:10::100/64" (older daemons: address only). */
function vipText(vip: { readonly address: string; readonly addresses?: readonly string[] }): string {
  return vip.addresses !== undefined && vip.addresses.length > 1 ? vip.addresses.join(' + ') : vip.address;
}
