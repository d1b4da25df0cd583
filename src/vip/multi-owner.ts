/**
 * A dual-stack VIP pair as one VipOwner: one election, one holder for both families. Every call
 * goes to each owner (an IPv4 and an IPv6 NetlinkVipOwner) at once; a failure of one does not stop
 * the other, and the first failure is rethrown once all have settled, so the runner sees the
 * takeover or release fail as it would for a single VIP (and retries or releases both). A failed
 * acquire releases what it added first.
 */
import type { VipOwner } from './owner';

export class MultiVipOwner implements VipOwner {
  constructor(private readonly owners: readonly VipOwner[]) {
    if (owners.length === 0) throw new RangeError('a MultiVipOwner needs at least one owner');
  }

  prepare(): Promise<void> {
    return this.each((o) => o.prepare());
  }

  /**
   * Both or neither: when one address cannot be added, the others are released again before the
   * failure is rethrown, so held() says no and the runner does not take over (reset the previous
   * master's clients, report the VIP held) with half a pair.
   */
  async acquire(): Promise<void> {
    const results = await Promise.allSettled(this.owners.map((o) => o.acquire()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed === undefined) return;
    await Promise.allSettled(this.owners.map((o, i) => (results[i]?.status === 'fulfilled' ? o.release() : undefined)));
    throw failed.reason;
  }

  renew(): Promise<void> {
    return this.each((o) => o.renew());
  }

  release(): Promise<void> {
    return this.each((o) => o.release());
  }

  quiesce(): void {
    for (const o of this.owners) o.quiesce();
  }

  announceUntil(deadline: number): void {
    for (const o of this.owners) o.announceUntil(deadline);
  }

  /** Held if any address may be: the runner then releases, which removes whatever is there. */
  held(): boolean {
    return this.owners.some((o) => o.held());
  }

  close(): Promise<void> {
    return this.each((o) => o.close());
  }

  private async each(call: (o: VipOwner) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(this.owners.map(call));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }
}
