/**
 * What the members must agree on, as every heartbeat states it: a digest of the member list and of
 * the election's timing. A member only counts peers whose digest is its own:
 * - while a membership change is rolled out one node at a time, the old and the new lists never
 *   both make up a majority (docs/operations.md, "Adding or removing a control-plane node");
 * - the lease math needs one timing: a follower's promise lasts the leader's dead interval, a
 *   leader's release margin is a third of its own, and a restarted member waits out its own longest
 *   grant. Members whose interval, deadAfter or maxDeadAfter differ would each be right about their
 *   own numbers only (a change of timing rolls out like a membership change: one failover at most).
 */
import { createHash } from 'node:crypto';
import type { ElectionSettings, Member } from './types';

export type ClusterShape = Pick<
  ElectionSettings,
  'clusterId' | 'members' | 'intervalMs' | 'deadAfter' | 'maxDeadAfter'
>;

/**
 * 16 hex digits over the cluster id, the timing and the sorted (name, address) pairs, a witness's
 * marked as one (members that disagree on who is a witness disagree on who may lead). Without a
 * witness the digest is vipd 0.2's.
 */
export function clusterDigest(c: ClusterShape): string {
  const h = createHash('sha256').update(`vipd-cluster:${c.clusterId}:${c.intervalMs}:${c.deadAfter}:${c.maxDeadAfter}`);
  for (const m of [...c.members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(`\n${m.name}=${m.address}${m.witness === true ? ':witness' : ''}`);
  }
  return h.digest('hex').slice(0, 16);
}

/** The member names in the order the wire format indexes them (echoes carry an index, not a name). */
export function wireOrder(members: readonly Member[]): string[] {
  return members.map((m) => m.name).sort();
}
