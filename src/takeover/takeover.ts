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
import { isIPv4 } from 'node:net';
import type { Logger } from '../log/logger';
import { openRawIpv4Socket, type RawIpv4Socket } from '../native/raw-socket';
import type { ConnSync } from './conn-sync';
import type { ClientEndpoint } from './conn-table';
import { TickleSender } from './tickle-sender';

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

  constructor(
    private readonly opts: {
      readonly sync: ConnSync;
      readonly tickler: Tickler;
      /** The VIP's address (no prefix). */
      readonly vip: string;
      readonly log: Logger;
      readonly meters: TakeoverMeters;
    },
  ) {
    const { table } = opts.sync;
    // Only IPv4 clients: the tickle ACK (tickle.ts) and the lists' wire (conn-wire.ts, 4 bytes an
    // address, which throws on anything else) are IPv4. An IPv6 client of a "::" frontend is not
    // recorded: after a failover it waits for its own timeouts, as every client did before tickles.
    // An IPv4 client of a dual-stack listener is reported as IPv4 (relay-engine.ts) and is recorded.
    const endpoint = (c: ObservedConnection): ClientEndpoint | undefined => {
      const clientIp = stripV4Mapped(c.remoteAddress);
      return c.localAddress === opts.vip && isIPv4(clientIp)
        ? { clientIp, clientPort: c.remotePort, vipPort: c.localPort }
        : undefined;
    };
    this.observer = {
      opened: (c) => {
        const e = endpoint(c);
        if (e !== undefined) opts.sync.opened(e);
      },
      closed: (c) => {
        const e = endpoint(c);
        if (e !== undefined) table.closed(e);
      },
    };
  }

  /**
   * The VIP is now on this member's interface (and announced), or no longer. The resets go out only
   * once it is: the clients answer them at the VIP, and this member's kernel must be the one that
   * answers with the reset.
   */
  onVipHeld(held: boolean): void {
    if (held) this.tookOver();
    else this.opts.tickler.stop();
  }

  close(): void {
    this.opts.tickler.stop();
  }

  private tookOver(): void {
    const lists = this.opts.sync.takeAll();
    const targets = lists.flatMap((l) => l.entries);
    if (targets.length === 0) return;
    this.opts.meters.clientsReset.inc(targets.length);
    this.opts.log.info(
      {
        component: 'takeover',
        clients: targets.length,
        previous: lists.map((l) => `${l.peer} (${l.entries.length})`),
      },
      `resetting ${targets.length} client connection(s) of the previous master (tickle ACKs), so they reconnect here now`,
    );
    this.opts.tickler.start(targets);
  }
}

/**
 * The real resets: one raw socket per takeover, a TickleSender over it (tickle-sender.ts: rounds,
 * the four seq/ack pairs, batches that leave the event loop to the election), closed when done or
 * stopped. A socket that cannot be opened (no CAP_NET_RAW) is logged; the takeover goes on without.
 */
export class RawTickler implements Tickler {
  private current: { sender: TickleSender; socket: RawIpv4Socket } | undefined;

  constructor(
    private readonly opts: {
      readonly vip: string;
      readonly log: Logger;
      readonly ticklesSent: { inc(n: number): void };
      /** For tests: another socket than a raw one. */
      readonly openSocket?: () => RawIpv4Socket;
    },
  ) {}

  start(targets: readonly ClientEndpoint[]): void {
    this.stop();
    let socket: RawIpv4Socket;
    try {
      socket = (this.opts.openSocket ?? openRawIpv4Socket)();
    } catch (err) {
      this.opts.log.error({ component: 'takeover', err }, "cannot reset the previous master's clients: no raw socket");
      return;
    }
    const sender = new TickleSender({ socket, vip: this.opts.vip, targets });
    const current = { sender, socket };
    this.current = current;
    void sender.start().then((report) => {
      this.opts.ticklesSent.inc(report.packetsSent);
      this.opts.log.info(
        { component: 'takeover', ...report },
        report.stopped
          ? 'stopped resetting clients (this member lost the VIP)'
          : `reset the previous master's clients: ${report.targets} connection(s), first pass in ${Math.round(report.firstPassMs ?? 0)} ms`,
      );
      if (this.current === current) this.current = undefined;
      socket.close();
    });
  }

  stop(): void {
    const current = this.current;
    this.current = undefined;
    current?.sender.stop();
  }
}

/** `vipd run --dry-run`: says what it would reset, sends nothing. */
export class LogTickler implements Tickler {
  constructor(private readonly log: Logger) {}
  start(targets: readonly ClientEndpoint[]): void {
    this.log.info(
      { component: 'takeover', clients: targets.length, dryRun: true },
      "would reset the previous master's clients",
    );
  }
  stop(): void {
    // nothing was sent
  }
}

/** "::ffff:10.0.0.5" (a dual-stack listener's view of an IPv4 client) as "10.0.0.5". */
function stripV4Mapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
