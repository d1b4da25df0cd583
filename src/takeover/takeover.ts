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
 *
 * Either family: the clients of an IPv4 VIP, of an IPv6 VIP, or of both of a dual-stack pair, each
 * reset from the VIP of its family over a raw socket of that family.
 */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Logger } from '../log/logger';
import { openRawSocket, type RawIpSocket } from '../native/raw-socket';
import type { ConnSync } from './conn-sync';
import { type ClientEndpoint, endpointFamily } from './conn-table';
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

  /** This member's VIPs, one per family, as the balancer reports a local address (canonical text). */
  private readonly vips: ReadonlyMap<4 | 6, string>;

  constructor(
    private readonly opts: {
      readonly sync: ConnSync;
      readonly tickler: Tickler;
      /** The VIPs' addresses (no prefix): one, or a dual-stack pair (one per family). */
      readonly vips: readonly string[];
      readonly log: Logger;
      readonly meters: TakeoverMeters;
    },
  ) {
    const { table } = opts.sync;
    this.vips = new Map(opts.vips.map((vip) => [isIPv6(vip) ? 6 : 4, canonical(vip)] as const));
    const local = new Set(this.vips.values());
    // The clients of either VIP, each of the VIP's family: the relay reports an IPv4 client of a
    // dual-stack "::" listener as a dotted quad (relay-engine.ts) and IPv6 addresses in canonical
    // text, as the config's VIPs are; a "::ffff:" form is taken as the IPv4 it is, just in case.
    const endpoint = (c: ObservedConnection): ClientEndpoint | undefined => {
      const localAddress = stripV4Mapped(c.localAddress);
      if (!local.has(localAddress)) return undefined;
      const clientIp = stripV4Mapped(c.remoteAddress);
      // No zone ("fe80::1%eth0"): a link-local client never reaches a VIP, and the wire has no room for one.
      const usable = isIPv4(clientIp) || (isIPv6(clientIp) && !clientIp.includes('%'));
      return usable && isIPv4(localAddress) === isIPv4(clientIp)
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
    // Only the clients of a VIP this member has: a peer whose config had another pair (a reload
    // under way) may list clients of a family this member holds no VIP of; nobody can reset those.
    const targets = lists.flatMap((l) => l.entries).filter((e) => this.vips.has(endpointFamily(e)));
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
 * The real resets: raw sockets per takeover, one per family among the clients (an IPv4 VIP's clients
 * get IPv4 tickles, an IPv6 VIP's IPv6 ones), a TickleSender over them (tickle-sender.ts: rounds, the
 * four seq/ack pairs, batches that leave the event loop to the election), closed when done or
 * stopped. A socket that cannot be opened (no CAP_NET_RAW) is logged, and that family's clients are
 * not reset; the takeover goes on without them.
 */
export class RawTickler implements Tickler {
  private current: { sender: TickleSender; sockets: RawIpSocket[] } | undefined;

  constructor(
    private readonly opts: {
      /** The VIPs: one, or a dual-stack pair. */
      readonly vips: readonly string[];
      readonly log: Logger;
      readonly ticklesSent: { inc(n: number): void };
      /** For tests: another socket than a raw one. */
      readonly openSocket?: (family: 4 | 6) => RawIpSocket;
    },
  ) {}

  start(targets: readonly ClientEndpoint[]): void {
    this.stop();
    const sockets = new Map<4 | 6, RawIpSocket>();
    const vipFamilies = new Set(this.opts.vips.map((vip) => (isIPv6(vip) ? 6 : 4)));
    for (const family of [4, 6] as const) {
      if (!vipFamilies.has(family) || !targets.some((t) => endpointFamily(t) === family)) continue;
      try {
        sockets.set(family, (this.opts.openSocket ?? openRawSocket)(family));
      } catch (err) {
        this.opts.log.error(
          { component: 'takeover', err, family },
          "cannot reset the previous master's clients: no raw socket",
        );
      }
    }
    const reachable = targets.filter((t) => sockets.has(endpointFamily(t)));
    const vips = this.opts.vips.filter((vip) => sockets.has(isIPv6(vip) ? 6 : 4));
    if (reachable.length === 0 || vips.length === 0) {
      for (const socket of sockets.values()) socket.close();
      return;
    }
    const socket = {
      send: (packet: Buffer, dstIp: string) => {
        const s = sockets.get(isIPv6(dstIp) ? 6 : 4);
        if (s === undefined) throw new TypeError(`no raw socket for ${dstIp}`);
        return s.send(packet, dstIp);
      },
    };
    const sender = new TickleSender({ socket, vip: vips, targets: reachable });
    const current = { sender, sockets: [...sockets.values()] };
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
      for (const s of current.sockets) s.close();
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
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** An IPv6 VIP in canonical (RFC 5952) text, as the relay reports a local address; IPv4 as it is. */
function canonical(vip: string): string {
  return isIPv6(vip) ? ipaddr.IPv6.parse(vip).toRFC5952String() : vip;
}
