/**
 * The client connections this member relays on the VIP, kept so the other members know them: if
 * this member dies, the next master resets them ("tickle ACKs", tickle.ts) and the clients reconnect
 * through it at once instead of waiting for their own timeouts (a watch sends nothing and would
 * hang for tens of seconds).
 *
 * Pure bookkeeping, no sockets: the balancer reports connections opened and closed (only those
 * whose local address is the VIP count), and the sync (conn-sync.ts) takes what changed since last
 * time (a delta) or everything (a snapshot). Bounded: past `maxEntries` a connection is not
 * recorded (and counted), so a flood of clients cannot grow memory without limit.
 */

/**
 * A client connection on the VIP, as the next master needs it to reset it. Which VIP is told by the
 * client's family: a member has at most one VIP of each (a dual-stack pair).
 */
export interface ClientEndpoint {
  /**
   * The client: a dotted quad, or IPv6 in canonical (RFC 5952) text as the balancer reports it and
   * conn-wire.ts decodes it, so one connection has one key. Never IPv4-mapped (that client is IPv4).
   */
  readonly clientIp: string;
  readonly clientPort: number;
  /** The VIP's port it came to (the frontend's port, e.g. 6443). */
  readonly vipPort: number;
}

/** The two ports are the key's last two fields, so an IPv6 address's colons leave it unambiguous. */
export const endpointKey = (e: ClientEndpoint): string => `${e.clientIp}:${e.clientPort}:${e.vipPort}`;

/** The client's family, and so the VIP's it came to: IPv6 text has a colon, a dotted quad none. */
export const endpointFamily = (e: ClientEndpoint): 4 | 6 => (e.clientIp.includes(':') ? 6 : 4);

export interface Delta {
  readonly adds: readonly ClientEndpoint[];
  readonly removes: readonly ClientEndpoint[];
}

export class ConnTable {
  private readonly live = new Map<string, ClientEndpoint>();
  private added = new Map<string, ClientEndpoint>();
  private removed = new Map<string, ClientEndpoint>();
  /** Connections not recorded because the table was full. */
  overflow = 0;

  constructor(private readonly maxEntries = 65_536) {}

  get size(): number {
    return this.live.size;
  }

  opened(e: ClientEndpoint): void {
    const key = endpointKey(e);
    if (this.live.has(key)) return;
    if (this.live.size >= this.maxEntries) {
      this.overflow += 1;
      return;
    }
    this.live.set(key, e);
    // Opened and closed again between two deltas: the peers never need to hear of it.
    if (!this.removed.delete(key)) this.added.set(key, e);
  }

  closed(e: ClientEndpoint): void {
    const key = endpointKey(e);
    if (!this.live.delete(key)) return;
    if (!this.added.delete(key)) this.removed.set(key, e);
  }

  /** What changed since the last call (and forgets it). */
  takeDelta(): Delta {
    const delta = { adds: [...this.added.values()], removes: [...this.removed.values()] };
    this.added = new Map();
    this.removed = new Map();
    return delta;
  }

  /** Every connection now. */
  snapshot(): ClientEndpoint[] {
    return [...this.live.values()];
  }
}
