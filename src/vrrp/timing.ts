/**
 * Every duration the election derives from its settings, in one place, with the reason for each.
 * docs/election.md ("Timing") lists the same figures for the defaults.
 */
import type { ElectionSettings } from './types';

/**
 * The largest clock-rate difference between two members' monotonic clocks the lease math allows
 * for (1000 ppm: twice what NTP lets a clock slew). Leases are shortened by this fraction.
 */
export const CLOCK_DRIFT = 0.001;

/**
 * A dead interval of `deadAfter` heartbeats plus a quarter interval, so a peer counts as dead only
 * after `deadAfter` heartbeats are really missing, not `deadAfter - 1` plus one a few ms late
 * (the role RFC 5798's skew time plays).
 */
export function deadMs(heartbeats: number, intervalMs: number): number {
  return heartbeats * intervalMs + intervalMs / 4;
}

/** The dead interval with no loss seen: `deadAfter` heartbeats of this member's own interval. */
export function baseDeadMs(s: Pick<ElectionSettings, 'deadAfter' | 'intervalMs'>): number {
  return deadMs(s.deadAfter, s.intervalMs);
}

/** The longest dead interval on a lossy link; also the longest a grant can last. */
export function maxDeadMs(s: Pick<ElectionSettings, 'maxDeadAfter' | 'intervalMs'>, intervalMs = s.intervalMs): number {
  return deadMs(s.maxDeadAfter, intervalMs);
}

/**
 * A process that wakes up this much later than it asked to was not running (a stall: SIGSTOP, a
 * VM pause, a long GC). It is also how much earlier than its grants a master gives up its lease:
 * a release that is late by less than this still lands before any other member may take over.
 */
export function stallMs(s: Pick<ElectionSettings, 'deadAfter' | 'intervalMs'>): number {
  return Math.max(10, Math.round(baseDeadMs(s) / 3));
}

/**
 * After a start, a member does not grant (nor claim) until every peer has heard it (echoes its new
 * epoch) or this long has passed: a grant its previous run gave, which it cannot remember, may
 * still be counted by some master until then.
 */
export function restartQuietMs(s: Pick<ElectionSettings, 'maxDeadAfter' | 'intervalMs'>): number {
  return maxDeadMs(s) + s.intervalMs;
}

/** A CANDIDATE that a majority has not acknowledged in this long gives up its claim. */
export function claimTimeoutMs(s: Pick<ElectionSettings, 'deadAfter' | 'intervalMs'>): number {
  return 2 * baseDeadMs(s);
}

/** A master handing over releases the VIP anyway if its successor has not announced itself by then. */
export function handoverTimeoutMs(s: Pick<ElectionSettings, 'deadAfter' | 'intervalMs'>): number {
  return baseDeadMs(s);
}

/** The master renews the VIP's kernel lifetime this often (four times per lifetime). */
export function renewEveryMs(s: Pick<ElectionSettings, 'vipLifetimeMs'>): number {
  return s.vipLifetimeMs / 4;
}

/** A member whose VIP could not be added waits this long (FAULT) before it is a candidate again. */
export const VIP_RETRY_MS = 5_000;

/**
 * The dead interval for a peer whose messages are lost at `loss` (0-1): the fewest missed
 * heartbeats `k` for which a master and a follower both alive fail every one of `k` round trips
 * (heartbeat there, acknowledgement back) with probability at most `FALSE_DEATH_PROBABILITY`, but
 * never fewer than `deadAfter` nor more than `maxDeadAfter`. With no loss that is `deadAfter`
 * intervals (a crash is seen in about 0.3 s at the defaults); at 30 % loss about 1.3 s, so a
 * lossy link neither fails a live master over nor lapses its lease.
 */
export function adaptiveDeadMs(
  s: Pick<ElectionSettings, 'deadAfter' | 'maxDeadAfter'>,
  intervalMs: number,
  loss: number,
): number {
  return deadMs(heartbeatsForLoss(s, loss), intervalMs);
}

/**
 * Per link: how unlikely `k` failed round trips in a row must be. A master's lease lapses only if
 * the links to all but a minority of its followers fail at once (the square of this with three
 * members, and the master probes four times as often once its lease runs low), and a backup
 * declares a live master dead only after `k` of its heartbeats in a row are lost (the loss rate to
 * the k-th power). Chosen with bench/election-sim.ts: no false move in 200 simulated minutes at
 * 20-30 % loss, nor at 40 onsets of it; a lower value only slows detection on lossy links.
 */
export const FALSE_DEATH_PROBABILITY = 1e-3;

export function heartbeatsForLoss(s: Pick<ElectionSettings, 'deadAfter' | 'maxDeadAfter'>, loss: number): number {
  const p = Math.min(Math.max(loss, 0), 0.99);
  const roundTripFails = 1 - (1 - p) * (1 - p);
  if (roundTripFails <= 0) return s.deadAfter;
  const k = Math.ceil(Math.log(FALSE_DEATH_PROBABILITY) / Math.log(roundTripFails));
  return Math.min(s.maxDeadAfter, Math.max(s.deadAfter, k));
}
