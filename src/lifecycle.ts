/**
 * Start in order, close in reverse, from one list: a part closes before every part started ahead
 * of it, which it may rely on (the balancer's connections end before the VIP goes), and the two
 * orders cannot drift apart. A graceful stop (`stopGracefully`) hands the VIP over first, then
 * closes the same list.
 */
import type { Logger } from './log/logger';

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

/** What a graceful stop does before it closes the parts. */
export interface GracefulStop {
  /** The apiserver tracker: stopped first, so no verdict of its own reaches the election while it hands over. */
  readonly tracker: { close(): void };
  /** Hands the VIP over; runs `beforeRelease` just before the VIP goes (a master's). */
  readonly election: { stop(beforeRelease: () => Promise<void>): Promise<void> };
  /** The balancer, if enabled. */
  readonly proxy: { destroy(): Promise<void>; close(): Promise<void> } | undefined;
  /** Every part, closed in reverse once the handover is done. */
  readonly parts: readonly Part[];
  readonly log: Logger;
}

/**
 * Hands the VIP over first, so new clients go to the successor. A master then closes the
 * connections it relays while the VIP is still on its interface: once the successor's GARP lands,
 * every packet a client sends on them reaches the successor and is reset, and once the address is
 * gone our FIN could not leave, leaving clients hanging until keepalive. Closing them before the
 * release, with a FIN from a live address, makes them reconnect to the successor at once. A backup
 * (whose connections came to its own address) drains for proxy.drainTimeout. Then every part closes.
 */
export async function stopGracefully(s: GracefulStop): Promise<void> {
  s.tracker.close();
  await s.election.stop(async () => {
    if (s.proxy === undefined) return;
    s.log.info(
      { component: 'proxy' },
      'closing relayed connections before releasing the VIP: clients reconnect through the successor',
    );
    await s.proxy.destroy();
  });
  await s.proxy?.close();
  await closeInReverse(s.parts);
  s.log.info('vipd stopped');
}
