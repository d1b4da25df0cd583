/**
 * The election's vocabulary: roles, what a heartbeat says, the events the state machine accepts and
 * the actions it asks its runner to carry out. docs/election.md explains the rules that use them.
 */

export type Role = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT';
export const ROLES: readonly Role[] = ['INIT', 'BACKUP', 'MASTER', 'FAULT'];

/** What one heartbeat says (the wire format adds the MAC; see wire.ts). */
export interface Heartbeat {
  readonly clusterId: number;
  readonly sender: string;
  /** Set once per daemon start (wall-clock ms); with `seq` it orders messages across restarts. */
  readonly epoch: number;
  readonly seq: number;
  readonly role: Role;
  /** Effective priority 1-254; 0 while resigning (the VRRP "priority 0" advert). */
  readonly priority: number;
  /** The sender's heartbeat interval: receivers time the sender out by its own pace. */
  readonly intervalMs: number;
  /** The sender hears a majority (or runs without quorum): only quorate members are candidates. */
  readonly quorate: boolean;
  /** The sender is stopping for good; `master` names its successor. */
  readonly resigning: boolean;
  /** Whom the sender holds to be master, or its chosen successor when handing over; '' for none. */
  readonly master: string;
  /**
   * Whom the sender would have as master: the master it sees, else the best candidate it sees.
   * A member claims only with the votes of a majority (quorum mode), so two sides of a partition
   * that is still forming, each briefly counting the other as alive, cannot both claim.
   */
  readonly vote: string;
}

/** The static part of the election: from the config, fixed for a run. */
export interface ElectionSettings {
  readonly clusterId: number;
  readonly self: Member;
  /** Every configured member, this node included. */
  readonly members: readonly Member[];
  readonly intervalMs: number;
  readonly deadAfter: number;
  readonly priority: number;
  readonly preempt: boolean;
  readonly preemptDelayMs: number;
  readonly quorum: 'majority' | 'none';
}

export interface Member {
  readonly name: string;
  readonly address: string;
}

/** How a tracked condition (an apiserver check, the interface link) weighs on this member. */
export type TrackEffect =
  | { readonly kind: 'ok' }
  | { readonly kind: 'weight'; readonly weight: number }
  | { readonly kind: 'fault' };

export type ElectionEvent =
  | { readonly type: 'start'; readonly now: number }
  | { readonly type: 'tick'; readonly now: number }
  | { readonly type: 'heartbeat'; readonly now: number; readonly heartbeat: Heartbeat }
  | { readonly type: 'track'; readonly now: number; readonly name: string; readonly effect: TrackEffect }
  | { readonly type: 'stop'; readonly now: number }
  /** A reload changed what can change in place: priority and preemption. */
  | { readonly type: 'reconfigure'; readonly now: number; readonly settings: Pick<ElectionSettings, 'priority' | 'preempt' | 'preemptDelayMs'> };

export type TransitionReason =
  | 'started'
  | 'heard every peer'
  | 'master exists'
  | 'startup wait over'
  | 'no master'
  | 'handover'
  | 'lost quorum'
  | 'higher master'
  | 'preempted'
  | 'priority dropped'
  | 'fault'
  | 'fault cleared'
  | 'stopping';

export type ElectionAction =
  /** Send this heartbeat to every peer. */
  | { readonly type: 'send'; readonly heartbeat: Omit<Heartbeat, 'seq' | 'epoch' | 'clusterId' | 'sender' | 'intervalMs'> }
  | { readonly type: 'acquireVip' }
  | { readonly type: 'releaseVip' }
  | {
      readonly type: 'transition';
      readonly from: Role;
      readonly to: Role;
      readonly reason: TransitionReason;
      /** The peer whose message or silence caused it, when there is one. */
      readonly peer?: string;
      readonly master: string;
      readonly priority: number;
    }
  /** Call `tick` at this time (absolute, on the injected clock). Replaces any earlier request. */
  | { readonly type: 'schedule'; readonly at: number };
