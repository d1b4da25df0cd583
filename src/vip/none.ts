/**
 * The VIP owner of a witness: it holds nothing and touches no interface, so a witness needs neither
 * CAP_NET_ADMIN nor CAP_NET_RAW. A witness runs as an observer and never claims; should the
 * election ever ask it to add the VIP, the refusal puts it in FAULT rather than on the network.
 */
import type { VipOwner } from './owner';

export class NoVipOwner implements VipOwner {
  async prepare(): Promise<void> {
    // No interface: no leftover copy to remove.
  }
  async acquire(): Promise<void> {
    throw new Error('a witness never holds the VIP');
  }
  async renew(): Promise<void> {
    throw new Error('a witness never holds the VIP');
  }
  async release(): Promise<void> {
    // Nothing held.
  }
  quiesce(): void {
    // Nothing announced.
  }
  announceUntil(): void {
    // Nothing announced.
  }
  held(): boolean {
    return false;
  }
  async close(): Promise<void> {
    // Nothing opened.
  }
}
