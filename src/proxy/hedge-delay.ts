/**
 * The hedge delay of a frontend with `hedgeDelay: auto`: how long a backend connect may take before
 * a second one is started to another backend. Pure: no sockets, no timers, no clock.
 *
 * The delay is twice the 99th percentile of recent successful connect times, floored at 20 ms and
 * capped at a quarter of connectTimeout:
 * - A high percentile, as "The Tail at Scale" (Dean and Barroso, CACM 2013) sets its hedged
 *   requests: waiting for the p95 bounds the extra load to about 5 %; the p99 doubled bounds it to
 *   well under 1 %, while a connect that will never complete (a blackholed apiserver) is still cut
 *   short after a few round trips instead of after connectTimeout.
 * - Measured times include the event loop's lag (a connect is "done" when its callback runs), so
 *   on a loaded proxy they grow, and the delay with them: hedging backs off by itself rather than
 *   doubling the connects of a proxy that is short of CPU.
 * - The floor: on a LAN a connect takes well under a millisecond, and the p99 is then a measure of
 *   scheduling noise (a GC pause, a busy loop) that a second connect would not beat; 20 ms is above
 *   that noise and still far below what a client notices.
 * - The cap keeps the hedge meaningful when connects are slow everywhere: a quarter of the connect
 *   timeout (1.25 s by default) is always left for the first attempt to be overtaken.
 * Before the first few dozen samples the floor applies.
 *
 * The percentile comes from a log-scale histogram (quarter octaves, 1/16 ms to 65 s) decayed every
 * 64 samples, so it follows the last few hundred connects: O(1) per sample, one small array per
 * frontend, nothing allocated per connection.
 */

/** The derived delay never goes below this (ms). */
export const HEDGE_FLOOR_MS = 20;
/** The derived delay is this many times the p99 of connect times. */
export const HEDGE_P99_FACTOR = 2;
/** ...and at most connectTimeout divided by this. */
export const HEDGE_CAP_DIVISOR = 4;

const SMALLEST_MS = 1 / 16;
const BUCKETS_PER_OCTAVE = 4;
/** Bucket i holds times up to SMALLEST_MS * 2^(i/4): the last one reaches 65 s (and above). */
const BUCKETS = 81;
/** The percentile is recomputed, and old samples weigh less, every this many samples. */
const SAMPLES_PER_ROUND = 64;
/** Each round keeps this share of the old weight: about the last 256 samples count. */
const DECAY = 0.75;

export class ConnectTimes {
  private readonly counts = new Float64Array(BUCKETS);
  private weight = 0;
  private inRound = 0;
  private percentile: number | undefined;

  /** The p99 of recent connect times (ms), the upper bound of its bucket; undefined until enough samples. */
  get p99Ms(): number | undefined {
    return this.percentile;
  }

  /** One successful connect that took `ms`. */
  record(ms: number): void {
    const i =
      ms <= SMALLEST_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(ms / SMALLEST_MS) * BUCKETS_PER_OCTAVE));
    this.counts[i] = (this.counts[i] as number) + 1;
    this.weight += 1;
    if (++this.inRound >= SAMPLES_PER_ROUND) this.round();
  }

  private round(): void {
    this.inRound = 0;
    const target = this.weight * 0.99;
    let sum = 0;
    let i = 0;
    for (; i < BUCKETS - 1; i++) {
      sum += this.counts[i] as number;
      if (sum >= target) break;
    }
    this.percentile = SMALLEST_MS * 2 ** (i / BUCKETS_PER_OCTAVE);
    for (let j = 0; j < BUCKETS; j++) this.counts[j] = (this.counts[j] as number) * DECAY;
    this.weight *= DECAY;
  }
}

/** The hedge delay (ms) for a p99 of connect times (undefined: not known yet) and a connect timeout. */
export function derivedHedgeDelay(p99Ms: number | undefined, connectTimeoutMs: number): number {
  const cap = connectTimeoutMs / HEDGE_CAP_DIVISOR;
  const wanted = p99Ms === undefined ? HEDGE_FLOOR_MS : Math.max(HEDGE_FLOOR_MS, HEDGE_P99_FACTOR * p99Ms);
  return Math.round(Math.min(cap, wanted));
}
