/**
 * The seam between the election and the network: whoever holds the VIP on the interface.
 * The runner calls these one at a time, in order (never two at once).
 */
export interface VipOwner {
  /** Before joining the election: remove a copy of our VIP left by a crashed earlier run. */
  prepare(): Promise<void>;
  /** Put the VIP on the interface and announce it (gratuitous ARP). Idempotent. */
  acquire(): Promise<void>;
  /** Take the VIP off the interface. Idempotent. */
  release(): Promise<void>;
  /**
   * Stop announcing (no more GARP, no answers to conflicts) but keep the address: a stopping
   * master hands over make-before-break, and must not fight its successor's GARP meanwhile.
   */
  quiesce(): void;
  /** Whether the VIP is on the interface as far as this owner knows. */
  held(): boolean;
  /** Release everything this owner opened (sockets, timers). Idempotent. */
  close(): Promise<void>;
}
