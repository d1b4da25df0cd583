/**
 * How many of one peer's heartbeats are lost on their way here, from the gaps in its sequence
 * numbers: an exponentially weighted average over roughly the last 64 messages. The election
 * stretches that peer's dead interval with it (timing.ts, adaptiveDeadMs), so a lossy link does
 * not fail a live master over, while a clean one still detects a crash in `deadAfter` intervals.
 */

export interface LossEstimate {
  readonly epoch: number;
  readonly seq: number;
  /** The weighted fraction of messages lost, 0-1, over about the last 64 messages. */
  readonly ratio: number;
}

export const NO_LOSS: LossEstimate = { epoch: -1, seq: 0, ratio: 0 };

/** Weight of one message: about the last 2/ALPHA messages count. */
const ALPHA = 1 / 32;

/**
 * `(epoch, seq)` was just accepted from the peer (the replay guard saw to it being newer). A gap
 * counts at most `maxGap` losses (the election passes deadAfter): a longer silence is a partition,
 * a stall or a dead peer, which the dead interval itself deals with, not evidence of a loss rate
 * that should slow failure detection for the next minutes.
 */
export function observe(est: LossEstimate, epoch: number, seq: number, maxGap: number): LossEstimate {
  if (epoch !== est.epoch) return { ...est, epoch, seq };
  if (seq <= est.seq) return est;
  const lost = Math.min(seq - est.seq - 1, maxGap);
  return { epoch, seq, ratio: average(est.ratio, lost, ALPHA) };
}

/** `lost` ones then a zero, in closed form. */
function average(r: number, lost: number, alpha: number): number {
  return (1 - (1 - r) * (1 - alpha) ** lost) * (1 - alpha);
}

/**
 * The loss rate the timing assumes: the average plus one standard deviation of it, so a run of
 * lucky messages does not shrink the dead interval too far.
 */
export function pessimisticLoss(est: LossEstimate): number {
  const r = est.ratio;
  return Math.min(0.99, r + Math.sqrt((r * (1 - r) * ALPHA) / (2 - ALPHA)));
}
