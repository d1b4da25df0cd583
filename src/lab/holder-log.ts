/**
 * Who held the VIP, and when, as the nodes' kernels saw it: the drill feeds each node's
 * `ip monitor address` lines in, and every figure about holders (the VIP moved, two holders at
 * once, holder changes, takeovers under loss) is computed from this one log, so every manager is
 * judged the same way. The figures are pure functions of the log and a time window, tested on
 * made-up logs (test/holder-log.test.ts).
 */

/** The holder set after a change, and when the change was seen. */
export interface HolderChange {
  readonly t: number;
  /** Sorted node names. */
  readonly holders: readonly string[];
}

/** Figures over [from, to] of a holder log. */
export interface HolderStats {
  /** How many times the holder set changed. */
  readonly changes: number;
  /** How many times a node gained the VIP (two at once count twice). */
  readonly additions: number;
  /**
   * How many times the sole holder became another node. Stretches with two holders or none in
   * between do not count as holders: A, A+B, B is one takeover; A, A+B, A and A, none, A are none.
   */
  readonly takeovers: number;
  /** Total and longest time with two or more holders. */
  readonly multiMs: number;
  readonly longestMultiMs: number;
  /** Total time with no holder. */
  readonly noneMs: number;
}

/** The holder set at time `t`: that of the last change at or before it (nobody before the first). */
export function holdersAt(log: readonly HolderChange[], t: number): readonly string[] {
  let holders: readonly string[] = [];
  for (const c of log) {
    if (c.t > t) break;
    holders = c.holders;
  }
  return holders;
}

/** The first change in [from, to] after which some node other than `node` holds the VIP. */
export function firstHeldByOther(
  log: readonly HolderChange[],
  node: string,
  from: number,
  to = Infinity,
): HolderChange | undefined {
  return log.find((c) => c.t >= from && c.t <= to && c.holders.some((n) => n !== node));
}

export function holderStats(log: readonly HolderChange[], from: number, to: number): HolderStats {
  let holders = holdersAt(log, from);
  let since = from;
  let sole = holders.length === 1 ? holders[0] : undefined;
  let changes = 0;
  let additions = 0;
  let takeovers = 0;
  let multiMs = 0;
  let longestMultiMs = 0;
  let noneMs = 0;
  // A stretch of one holder set ends at the next change or at `to`; its length goes to the totals.
  const close = (until: number) => {
    const ms = until - since;
    if (holders.length >= 2) {
      multiMs += ms;
      longestMultiMs = Math.max(longestMultiMs, ms);
    }
    if (holders.length === 0) noneMs += ms;
  };
  for (const c of log) {
    if (c.t <= from) continue;
    if (c.t > to) break;
    close(c.t);
    changes += 1;
    additions += c.holders.filter((n) => !holders.includes(n)).length;
    if (c.holders.length === 1) {
      if (sole !== undefined && c.holders[0] !== sole) takeovers += 1;
      sole = c.holders[0];
    }
    holders = c.holders;
    since = c.t;
  }
  close(to);
  return { changes, additions, takeovers, multiMs, longestMultiMs, noneMs };
}

/**
 * The live holder set and its log. `waitFor` resolves when a condition on the set holds; every
 * wait is bounded by its own timeout, so a manager that never settles cannot hang the drill.
 */
export class HolderLog {
  readonly log: HolderChange[] = [];
  private readonly current = new Set<string>();
  private waiters: (() => void)[] = [];

  get holders(): ReadonlySet<string> {
    return this.current;
  }

  /** "cp1+cp2", or "nobody". */
  list(): string {
    return [...this.current].sort().join('+') || 'nobody';
  }

  /** One `ip monitor address` event on `node`. Repeats (an address refreshed) change nothing. */
  set(node: string, held: boolean, t = Date.now()): void {
    if (held === this.current.has(node)) return;
    if (held) this.current.add(node);
    else this.current.delete(node);
    this.log.push({ t, holders: [...this.current].sort() });
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves with the ms it took until `pred` held, or undefined after `timeoutMs`. */
  waitFor(pred: (holders: ReadonlySet<string>) => boolean, timeoutMs: number): Promise<number | undefined> {
    const start = Date.now();
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        resolve(undefined);
      }, timeoutMs);
      const check = () => {
        if (done) return; // timed out: drop out of the waiters for good
        if (!pred(this.current)) {
          this.waiters.push(check);
          return;
        }
        done = true;
        clearTimeout(timer);
        resolve(Date.now() - start);
      };
      check();
    });
  }
}
