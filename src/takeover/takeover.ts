/**
 * What happens to clients when the VIP changes hands without a goodbye (the master's node died, was
 * partitioned away, stalled): the new master resets the previous master's client connections, so
 * a watch that would sit silent for tens of seconds on a dead connection fails at once and
 * reconnects through the new master.
 *
 * It keeps this member's own connections on the VIP in the shared table (conn-sync.ts, fed by the
 * balancer through `observer`), and when this member becomes MASTER it takes every peer's list and
 * hands it to the tickler (tickle ACKs). A graceful handover needs none of it (the stopping master
 * closes its connections itself), but it costs nothing then: the lists are empty or stale, and a
 * tickle to a connection that is gone is answered by nobody.
 */
import type { Logger } from '../log/logger';
import type { ElectionAction } from '../vrrp/types';
import type { ConnSync } from './conn-sync';
import type { ClientEndpoint } from './conn-table';

/** Sends the resets: tickle ACKs from the VIP (tickle.ts), or only a log line in a dry run. */
export interface Tickler {
  /** Reset these clients of the VIP; `stop()` (or a later start) cancels what is left. */
  start(targets: readonly ClientEndpoint[]): void;
  stop(): void;
}

/** A client connection as the balancer reports it (src/proxy/frontend.ts). */
export interface ObservedConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

export interface TakeoverMeters {
  /** Clients of a previous master this member set out to reset. */
  readonly clientsReset: { inc(n: number): void };
}

export class Takeover {
  /** For the balancer: every client connection accepted and closed (only those on the VIP count). */
  readonly observer: { opened(c: ObservedConnection): void; closed(c: ObservedConnection): void };

  constructor(private readonly opts: {
    readonly sync: ConnSync;
    readonly tickler: Tickler;
    /** The VIP's address (no prefix). */
    readonly vip: string;
    readonly log: Logger;
    readonly meters: TakeoverMeters;
  }) {
    const { table } = opts.sync;
    const endpoint = (c: ObservedConnection): ClientEndpoint | undefined => (c.localAddress === opts.vip
      ? { clientIp: stripV4Mapped(c.remoteAddress), clientPort: c.remotePort, vipPort: c.localPort } : undefined);
    this.observer = {
      opened: (c) => { const e = endpoint(c); if (e !== undefined) table.opened(e); },
      closed: (c) => { const e = endpoint(c); if (e !== undefined) table.closed(e); },
    };
  }

  /** The election's role changes (the runner's transition actions). */
  onTransition(t: Extract<ElectionAction, { type: 'transition' }>): void {
    if (t.to === 'MASTER' && t.from !== 'MASTER') this.becameMaster(t.reason);
    else if (t.from === 'MASTER' && t.to !== 'MASTER') this.opts.tickler.stop();
  }

  close(): void {
    this.opts.tickler.stop();
  }

  private becameMaster(reason: string): void {
    const lists = this.opts.sync.takeAll();
    const targets = lists.flatMap((l) => l.entries);
    if (targets.length === 0) return;
    this.opts.meters.clientsReset.inc(targets.length);
    this.opts.log.info({
      component: 'takeover', clients: targets.length, reason, previous: lists.map((l) => `${l.peer} (${l.entries.length})`),
    }, `resetting ${targets.length} client connection(s) of the previous master (tickle ACKs), so they reconnect here now`);
    this.opts.tickler.start(targets);
  }
}

/** "::ffff:10.0.0.5" (a dual-stack listener's view of an IPv4 client) as "10.0.0.5". */
function stripV4Mapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
