/**
 * Start in order, close in reverse, from one list: a part closes before every part started ahead
 * of it, which it may rely on (the balancer's connections end before the VIP goes), and the two
 * orders cannot drift apart.
 */

/** One part of the daemon, as the composition root starts and closes it. */
export interface Part {
  /** Absent: nothing to start (it works once built, or another part's start prepares it). */
  readonly start?: () => Promise<void> | void;
  /** Idempotent, and safe on a part that never started (a start that failed half-way closes all). */
  readonly close: () => Promise<void> | void;
}

/** Starts each part after the one before it has started; the first failure stops the start and is thrown. */
export async function startInOrder(parts: readonly Part[]): Promise<void> {
  for (const part of parts) await part.start?.();
}

/**
 * Closes every part, last first, each after the one after it in the list has closed. A close that
 * throws does not keep the parts before it open: the first error is thrown once all have closed.
 */
export async function closeInReverse(parts: readonly Part[]): Promise<void> {
  const errors: unknown[] = [];
  for (const part of [...parts].reverse()) {
    try {
      await part.close();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
}
