import type { Logger } from '../log/logger';
import type { VipOwner } from './owner';

/**
 * `vipd run --dry-run`: takes part in the election and logs what it would do with the VIP, without
 * touching the network. For trying a config on a live node, and for tests without namespaces.
 */
export class DryRunVipOwner implements VipOwner {
  private holding = false;
  constructor(
    private readonly log: Logger,
    private readonly vip: string,
    private readonly iface: string,
  ) {}

  async prepare(): Promise<void> {
    this.log.info({ vip: this.vip, interface: this.iface, dryRun: true }, 'would remove a leftover VIP');
  }
  async acquire(): Promise<void> {
    if (this.holding) return;
    this.holding = true;
    this.log.info(
      { vip: this.vip, interface: this.iface, dryRun: true, held: true },
      'would add the VIP and send gratuitous ARP',
    );
  }
  async renew(): Promise<void> {
    // Renewals come several times a second: not worth a log line each.
  }
  async release(): Promise<void> {
    if (!this.holding) return;
    this.holding = false;
    this.log.info({ vip: this.vip, interface: this.iface, dryRun: true, held: false }, 'would remove the VIP');
  }
  quiesce(): void {
    if (this.holding) this.log.info({ vip: this.vip, dryRun: true }, 'would stop announcing the VIP (handing over)');
  }
  announceUntil(): void {
    // Nothing is announced in a dry run.
  }
  held(): boolean {
    return this.holding;
  }
  async close(): Promise<void> {
    await this.release();
  }
}
