/**
 * The election's vocabulary: roles, what a heartbeat says, the events the state machine accepts and
 * the actions it asks its runner to carry out. docs/election.md explains the rules that use them.
 */

/**
 * INIT: just started, learning who is there. BACKUP: follows a master (or none). CANDIDATE: has
 * claimed a term and waits for a majority to acknowledge it; it does not hold the VIP yet.
 * MASTER: holds the VIP on a lease a majority acknowledged. FAULT: a tracked condition makes it
 * ineligible (it still acknowledges a master).
 */
export type Role = 'INIT' | 'BACKUP' | 'CANDIDATE' | 'MASTER' | 'FAULT';
export const ROLES: readonly Role[] = ['INIT', 'BACKUP', 'CANDIDATE', 'MASTER', 'FAULT'];

/** What a member last accepted from one peer, echoed back to that peer in every heartbeat. */
export interface Echo {
  readonly epoch: number;
  readonly seq: number;
  /** The peer's own send time (its monotonic clock, ms): the peer times its lease from it. */
  readonly ts: number;
}

/** What a heartbeat says of the sender's bootstrap member (docs/election.md, "Bootstrap"). */
export type BootstrapView = 'self' | 'other' | 'unstated';

/** What one heartbeat says (the wire format adds the MAC; see wire.ts). */
export interface Heartbeat {
  readonly clusterId: number;
  readonly sender: string;
  /** Changes on every start, after a stall and before `seq` wraps; with `seq` it orders messages. */
  readonly epoch: number;
  readonly seq: number;
  /** The sender's monotonic clock when it sent this (ms): echoed back, never compared across hosts. */
  readonly ts: number;
  readonly role: Role;
  /** Effective priority 1-254; 0 while FAULT or resigning. */
  readonly priority: number;
  /** The sender's heartbeat interval: receivers time the sender out by its own pace. */
  readonly intervalMs: number;
  /** The highest term the sender has seen (its own claim's term when CANDIDATE or MASTER). */
  readonly term: number;
  /** The sender hears a majority of the members (or runs without quorum). */
  readonly quorate: boolean;
  /** The sender is re-learning the cluster (just started, or after a stall): not a candidate, no vote. */
  readonly learning: boolean;
  /** The sender is stopping for good: it grants nothing and is not counted. */
  readonly resigning: boolean;
  /** A MASTER handing the VIP over to `successor` (make-before-break): its followers are free. */
  readonly handover: boolean;
  /**
   * The cluster has formed (docs/election.md, "Bootstrap"): the bootstrap member once heard a
   * majority, and the sender knows it. Only a formed member, or the bootstrap member, is a candidate.
   */
  readonly formed: boolean;
  /** The sender only watches (`vipd run --dry-run`): it votes and acknowledges, and is never a candidate. */
  readonly observer: boolean;
  /**
   * Whether the sender's config names the sender the bootstrap member ('self') or another member
   * ('other'); 'unstated' from a sender that does not say (vipd 0.2). Members whose configs list the
   * peers in different orders find out from it, and neither of two that both say 'self' bootstraps.
   */
  readonly bootstrap: BootstrapView;
  /** Whom the sender follows (acknowledges), itself when claiming, '' for none. */
  readonly leader: string;
  readonly leaderTerm: number;
  /**
   * How long after receiving the leader's echoed heartbeat the sender promises to acknowledge no
   * other leader. The leader's lease is built from these promises.
   */
  readonly grantMs: number;
  /** Whom the sender would have as master now (a pre-vote): only a candidate a majority names claims. */
  readonly vote: string;
  /** The member a MASTER hands over to, or a resigning member's choice; '' for none. */
  readonly successor: string;
  /** Identifies the member list (names and addresses): members with other lists are not counted. */
  readonly digest: string;
  /** How many members the sender's list has (for the log when lists differ). */
  readonly members: number;
  /** By member name: the last heartbeat accepted from each peer. */
  readonly echoes: Readonly<Record<string, Echo>>;
}

/** The static part of the election: from the config, fixed for a run (a reload changes priority and preemption). */
export interface ElectionSettings {
  readonly clusterId: number;
  readonly self: Member;
  /** Every configured member, this node included. */
  readonly members: readonly Member[];
  readonly intervalMs: number;
  /** Heartbeats missed before a peer counts as dead with no loss seen on its link. */
  readonly deadAfter: number;
  /** The most the dead interval grows to on a lossy link (in intervals); bounds the restart wait. */
  readonly maxDeadAfter: number;
  readonly priority: number;
  readonly preempt: boolean;
  readonly preemptDelayMs: number;
  readonly quorum: 'majority' | 'none';
  /**
   * The bootstrap member (the first one the config lists): the only one that may hold the VIP alone
   * while the cluster has not formed, so that the first node of a new cluster serves by itself.
   */
  readonly bootstrap: string;
  /** This member knew the cluster had formed when it last ran (the state file says so). */
  readonly formed: boolean;
  /** Never a candidate (a dry run): votes and acknowledges only. */
  readonly observer: boolean;
  /** The VIP's address lifetime in the kernel (ms); the master renews it while its lease holds. */
  readonly vipLifetimeMs: number;
}

export interface Member {
  readonly name: string;
  readonly address: string;
  /** A witness votes and acknowledges, and never leads (it runs as an observer); absent: a member. */
  readonly witness?: boolean;
}

/** How a tracked condition (an apiserver check, the interface link) weighs on this member. */
export type TrackEffect =
  | { readonly kind: 'ok' }
  | { readonly kind: 'weight'; readonly weight: number }
  | { readonly kind: 'fault' };

/** What can change on a reload without a restart. */
export type Reconfigurable = Pick<ElectionSettings, 'priority' | 'preempt' | 'preemptDelayMs'>;

export type ElectionEvent =
  /** `epoch` is unique per start of the process (wall-clock ms at start). */
  | { readonly type: 'start'; readonly now: number; readonly epoch: number }
  | { readonly type: 'tick'; readonly now: number }
  | { readonly type: 'heartbeat'; readonly now: number; readonly heartbeat: Heartbeat }
  | { readonly type: 'track'; readonly now: number; readonly name: string; readonly effect: TrackEffect }
  /** Adding or renewing the VIP failed: this member cannot hold it now. */
  | { readonly type: 'vipFailed'; readonly now: number; readonly op: 'acquire' | 'renew'; readonly error: string }
  | { readonly type: 'stop'; readonly now: number }
  | { readonly type: 'reconfigure'; readonly now: number; readonly settings: Reconfigurable };

export type TransitionReason =
  | 'started'
  | 'heard every peer'
  | 'master exists'
  | 'startup wait over'
  | 'claimed'
  | 'handover'
  | 'elected'
  | 'claim failed'
  | 'lease lapsed'
  | 'higher term'
  | 'better master'
  | 'handed over'
  | 'handover timed out'
  | 'preempted'
  | 'priority dropped'
  | 'fault'
  | 'vip failed'
  | 'fault cleared'
  | 'stopping';

export type ElectionAction =
  /** Send this heartbeat to every peer; `copies` > 1 sends that many, `seq` counting up. */
  | { readonly type: 'send'; readonly heartbeat: Heartbeat; readonly copies: number }
  | { readonly type: 'acquireVip' }
  /** Restart the VIP's kernel lifetime (the master's lease still holds). */
  | { readonly type: 'renewVip' }
  /** Stop announcing the VIP but keep it: a handover in progress (make-before-break). */
  | { readonly type: 'quiesceVip' }
  | { readonly type: 'releaseVip' }
  | {
      readonly type: 'transition';
      readonly from: Role;
      readonly to: Role;
      readonly reason: TransitionReason;
      /** The peer whose message or silence caused it, when there is one. */
      readonly peer?: string;
      readonly master: string;
      readonly term: number;
      readonly priority: number;
    }
  /** The process did not run for `ms` past its wake-up: a new epoch, and the cluster is re-learned. */
  | { readonly type: 'stalled'; readonly ms: number; readonly epoch: number }
  /**
   * The cluster has just formed, as far as this member knows: record it (durably, before the next
   * heartbeat goes out) so that a restart does not bootstrap again.
   */
  | { readonly type: 'formed'; readonly via: string }
  /**
   * A peer's heartbeats now disagree (or agree again) with this member's config on who the
   * bootstrap member is: `says` is what the peer states of itself. Logged; while any disagrees, this
   * member does not hold the VIP alone (docs/election.md, "Bootstrap").
   */
  | {
      readonly type: 'bootstrapView';
      readonly peer: string;
      readonly says: 'self' | 'other';
      readonly agrees: boolean;
      readonly bootstrap: string;
    }
  /** A graceful stop is complete: the VIP is released (or handed over), the resign is sent. */
  | { readonly type: 'stopped' }
  /** Call `tick` at this time (absolute, on the injected clock). Replaces any earlier request. */
  | { readonly type: 'schedule'; readonly at: number };
