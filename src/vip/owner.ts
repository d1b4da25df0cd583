/**
 * The seam between the election and the network: whoever holds the VIP on the interface.
 * The runner calls these one at a time, in order (never two at once).
 */
export interface VipOwner {
  /** Before joining the election: remove a copy of our VIP left by a crashed earlier run. */
  prepare(): Promise<void>;
  /**
   * Put the VIP on the interface, with a finite kernel lifetime, and announce it (gratuitous ARP).
   * Idempotent.
   */
  acquire(): Promise<void>;
  /**
   * Restart the VIP's kernel lifetime (the master's lease still holds); adds it again if the kernel
   * already let it expire. A vipd that stops renewing (hung, stopped, killed) loses the VIP by itself.
   */
  renew(): Promise<void>;
  /** Take the VIP off the interface. Idempotent. */
  release(): Promise<void>;
  /**
   * Stop announcing (no more GARP, no answers to conflicts) but keep the address: a stopping
   * master hands over make-before-break, and must not fight its successor's GARP meanwhile.
   */
  quiesce(): void;
  /**
   * Announce (gratuitous ARP) and renew only until this time, on the monotonic clock: the master's
   * lease. Timers that fire after a stall, or operations that waited in a queue, must not announce
   * or extend an address whose lease has lapsed. -Infinity stops them; Infinity (quorum: none) never.
   */
  announceUntil(deadline: number): void;
  /** Whether the VIP is on the interface as far as this owner knows. */
  held(): boolean;
  /** Release everything this owner opened (sockets, timers). Idempotent. */
  close(): Promise<void>;
}
