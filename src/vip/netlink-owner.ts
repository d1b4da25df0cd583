/**
 * The real VipOwner of one VIP: puts it on the interface over rtnetlink, announces it from a packet
 * socket, and (optionally) watches for another MAC claiming it. An IPv4 VIP is announced with
 * gratuitous ARP and watched through ARP; an IPv6 VIP is added with `nodad` (duplicate address
 * detection would keep it tentative, unusable, for a second or more after a takeover), announced
 * with unsolicited Neighbor Advertisements (ndisc.ts) and watched through Neighbor Discovery. Both
 * get the same finite kernel lifetime, renewed while the lease holds. A dual-stack pair is two of
 * these under one MultiVipOwner (multi-owner.ts).
 *
 * Timings follow keepalived's lessons: a burst on takeover (garp_master_repeat) because one frame
 * can be lost while a switch port is still converging, and a periodic refresh
 * (garp_master_refresh) because some switches keep a stale entry for hours. kube-vip sends no
 * burst, and its first GARP comes up to 3 s after takeover.
 */
import type { VipConfig } from '../config/schema';
import { describeError, VipdError } from '../errors';
import { type Logger, RateLimitedLog } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { buildGratuitousArp, ipv4ToBytes, parseArpFrame } from './arp';
import { buildUnsolicitedNa, ipv6ToBytes, parseNdFrame } from './ndisc';
import type { VipOwner } from './owner';
import { createPacketSocket, type PacketSocket } from './packet-socket';
import {
  AF_INET,
  AF_INET6,
  closeRtnl,
  getAddresses,
  getLinkByName,
  type LinkInfo,
  NETLINK_TIMEOUT_MS,
  netlinkErrno,
  openRtnl,
  type RtNetlinkSocket,
} from './rtnl';

const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
/** INFINITY_LIFE_TIME of the kernel's addrconf: a valid lifetime that never runs out. */
const INFINITY_LIFETIME = 0xffffffff;
/**
 * After a takeover, one more announcement once any other holder's copy has surely expired: a node
 * that stalled or was killed with the VIP keeps answering ARP until its lifetime runs out (plus the
 * kernel's up to ~0.4 s of timer slack), and a client that asked in that window may cache it.
 */
const LATE_GARP_SLACK_MS = 500;
/** A conflict answers with a fresh burst, but two claimants must not ping-pong GARP floods. */
const CONFLICT_BURST_MIN_GAP_MS = 1000;

export interface NetlinkVipOwnerOptions {
  readonly vip: Pick<VipConfig, 'address' | 'interface' | 'garp' | 'conflictDetection'> & {
    /** The address lifetime in ms (whole seconds); absent: permanent (tests of the owner alone). */
    readonly lifetime?: number;
  };
  readonly log: Logger;
  readonly metrics: Pick<Metrics, 'garpSent' | 'naSent' | 'vipConflicts'>;
  /** Monotonic milliseconds; injectable for tests. */
  readonly now?: () => number;
}

export class NetlinkVipOwner implements VipOwner {
  private readonly ip: string;
  private readonly prefix: number;
  private readonly family: 4 | 6;
  /** The address as rtnetlink takes it (4 or 16 bytes). */
  private readonly bytes: Buffer;
  private readonly iface: string;
  private readonly now: () => number;
  private readonly limited: RateLimitedLog;
  private rtnl: RtNetlinkSocket | undefined;
  private packets: PacketSocket | undefined;
  private link: LinkInfo | undefined;
  private frames: readonly Buffer[] = [];
  private holding = false;
  /** Handing over: the address stays, but we announce nothing and answer no conflict. */
  private quiet = false;
  /** The address may be on the interface: set before adding it, cleared once a delete succeeds. */
  private mayHold = false;
  private burstTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private lateGarpTimer: NodeJS.Timeout | undefined;
  private lastConflictBurst = Number.NEGATIVE_INFINITY;
  /** The lease as the election last said: no GARP and no renewal after it (announceUntil). */
  private deadline = Number.POSITIVE_INFINITY;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: NetlinkVipOwnerOptions) {
    const [ip, prefix] = opts.vip.address.split('/');
    this.ip = ip ?? '';
    this.prefix = Number(prefix);
    this.family = this.ip.includes(':') ? 6 : 4;
    // The schema validated it; these throw if a caller did not.
    this.bytes = this.family === 6 ? ipv6ToBytes(this.ip) : ipv4ToBytes(this.ip);
    this.iface = opts.vip.interface;
    this.now = opts.now ?? (() => performance.now());
    // Conflict errors and send failures: the first at once, then one line per 10 s with a count.
    this.limited = new RateLimitedLog(opts.log, 10_000, this.now);
  }

  async prepare(): Promise<void> {
    this.assertOpen();
    const link = await this.resolveLink();
    // Opened here rather than on takeover so a missing addon or CAP_NET_RAW fails at start-up,
    // not at the moment this node should be announcing the VIP.
    this.ensurePacketSocket(link);
    for (const addr of await getAddresses(this.netlink(), link.index, this.af())) {
      if (addr.address !== this.ip) continue;
      // A crashed earlier run (kill -9, OOM, `docker rm`) leaves the VIP behind; keepalived #2361.
      await this.deleteAddress(link.index, addr.prefix);
      this.opts.log.warn(
        { vip: `${addr.address}/${addr.prefix}`, interface: this.iface },
        'removed a leftover copy of the VIP',
      );
    }
  }

  async acquire(): Promise<void> {
    this.assertOpen();
    this.quiet = false;
    if (this.holding) return;
    this.stopTimers();
    const link = await this.resolveLink();
    this.mayHold = true;
    await this.putAddress(link.index);
    this.holding = true;
    this.opts.log.info(
      {
        vip: this.opts.vip.address,
        interface: this.iface,
        mac: link.mac,
        lifetime: this.lifetimeSeconds() ?? 'forever',
      },
      'VIP added',
    );
    try {
      this.ensurePacketSocket(link);
    } catch (err) {
      // The VIP is up and routable from hosts whose cache has expired; losing only the announcements
      // is better than refusing to serve.
      if (this.family === 6) {
        this.opts.log.error({ err, interface: this.iface }, 'cannot send Neighbor Advertisements for the VIP');
      } else {
        this.opts.log.error({ err, interface: this.iface }, 'cannot send gratuitous ARP for the VIP');
      }
    }
    this.startBurst();
    if (this.opts.vip.garp.refresh > 0) {
      this.refreshTimer = setInterval(() => this.sendRound(), this.opts.vip.garp.refresh);
      this.refreshTimer.unref();
    }
    const lifetime = this.opts.vip.lifetime;
    if (lifetime !== undefined && lifetime > 0) {
      this.lateGarpTimer = setTimeout(() => this.sendRound(), lifetime + LATE_GARP_SLACK_MS);
      this.lateGarpTimer.unref();
    }
  }

  announceUntil(deadline: number): void {
    this.deadline = deadline;
  }

  async renew(): Promise<void> {
    this.assertOpen();
    // A renewal that waited in the queue past the lease would extend an address nobody leases.
    if (!this.holding || this.lifetimeSeconds() === undefined || this.now() >= this.deadline) return;
    const index = this.link?.index;
    if (index === undefined) return;
    await this.putAddress(index);
    this.opts.log.debug({ vip: this.opts.vip.address, lifetime: this.lifetimeSeconds() }, 'VIP lifetime renewed');
  }

  /** Adds the VIP, or replaces it in place to restart its lifetime (no flap: routes and sockets stay). */
  private async putAddress(index: number): Promise<void> {
    const seconds = this.lifetimeSeconds();
    try {
      await this.netlink().newAddress(
        { family: this.af(), prefixlen: this.prefix, index, scope: 0 },
        {
          local: this.bytes,
          address: this.bytes,
          // IPv6: no duplicate address detection. The election already decided this node is the one
          // holder, and DAD would hold the address tentative (unusable) for dad_transmits seconds.
          ...(this.family === 6 ? { flags: { nodad: true } } : {}),
          ...this.cacheInfo(seconds),
        },
        { flags: NLM_F_CREATE | NLM_F_REPLACE, timeout: NETLINK_TIMEOUT_MS },
      );
    } catch (err) {
      throw new VipdError(
        'VIPD_NETLINK',
        `cannot add ${this.opts.vip.address} to ${this.iface}: ${describeError(err)}`,
        { cause: err },
      );
    }
  }

  /**
   * The lifetimes. An IPv6 VIP is added deprecated (preferred lifetime 0): it still takes connections
   * and explicit binds, but source address selection (RFC 6724 rule 3) skips it, so the master's own
   * outgoing IPv6 connections (the balancer's backend connects and checks, the kubelet, etcd's peer
   * dials, whose certificates name the node's address) keep the node's address. A preferred VIP, the
   * newest global address, would become the default source (kube-vip #1198; keepalived #1483). An
   * IPv4 VIP is a secondary address of its subnet and never the source by default.
   */
  private cacheInfo(seconds: number | undefined): { cacheInfo?: { ifaPrefered: number; ifaValid: number } } {
    if (this.family === 6) return { cacheInfo: { ifaPrefered: 0, ifaValid: seconds ?? INFINITY_LIFETIME } };
    return seconds === undefined ? {} : { cacheInfo: { ifaPrefered: seconds, ifaValid: seconds } };
  }

  private af(): number {
    return this.family === 6 ? AF_INET6 : AF_INET;
  }

  private lifetimeSeconds(): number | undefined {
    const ms = this.opts.vip.lifetime;
    return ms === undefined || ms <= 0 ? undefined : Math.max(1, Math.round(ms / 1000));
  }

  async release(): Promise<void> {
    this.stopTimers();
    const wasHeld = this.holding;
    this.holding = false;
    if (!this.mayHold) return;
    const index = this.link?.index;
    if (index !== undefined) await this.deleteAddress(index, this.prefix);
    this.mayHold = false;
    if (wasHeld) this.opts.log.info({ vip: this.opts.vip.address, interface: this.iface }, 'VIP removed');
  }

  quiesce(): void {
    this.quiet = true;
    this.stopTimers();
  }

  held(): boolean {
    return this.holding;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.release();
      } finally {
        this.stopTimers();
        this.packets?.close();
        this.packets = undefined;
        if (this.rtnl !== undefined) closeRtnl(this.rtnl);
        this.rtnl = undefined;
      }
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new VipdError('VIPD_NETLINK', 'this VIP owner is closed');
  }

  private netlink(): RtNetlinkSocket {
    this.rtnl ??= openRtnl((err) =>
      this.limited.warn('netlink-error', { err: describeError(err) }, 'rtnetlink socket error'),
    );
    return this.rtnl;
  }

  /** Looked up on every prepare/acquire: the interface may have been re-created (new ifindex, MAC). */
  private async resolveLink(): Promise<LinkInfo> {
    const link = await getLinkByName(this.netlink(), this.iface);
    if (link === undefined) {
      throw new VipdError('VIPD_NETLINK', `interface "${this.iface}" (vip.interface) does not exist on this node`);
    }
    if (link.mac === '') {
      throw new VipdError(
        'VIPD_NETLINK',
        `interface "${this.iface}" has no Ethernet address; gratuitous ARP needs an Ethernet interface`,
      );
    }
    if (this.link?.mac !== link.mac) {
      this.frames =
        this.family === 6
          ? [buildUnsolicitedNa(link.mac, this.ip)]
          : [buildGratuitousArp('request', link.mac, this.ip), buildGratuitousArp('reply', link.mac, this.ip)];
    }
    this.link = link;
    return link;
  }

  private ensurePacketSocket(link: LinkInfo): void {
    if (this.packets !== undefined && this.packets.ifindex === link.index) return;
    this.packets?.close();
    this.packets = undefined;
    const socket = createPacketSocket();
    socket.on('frame', (frame) => this.onFrame(frame));
    // Only ARP (or Neighbor Discovery) about the VIP crosses into JavaScript (the kernel drops the
    // rest), on backups too.
    socket.open(this.iface, this.family === 6 ? { ndTarget: this.ip } : { arpSender: this.ip });
    this.packets = socket;
  }

  private async deleteAddress(index: number, prefix: number): Promise<void> {
    try {
      // IFA_LOCAL only: IPv4 then matches the address whatever its prefix length; IPv6 needs the
      // prefix length it was added with (prepare() passes the one listed).
      await this.netlink().delAddress(
        { family: this.af(), prefixlen: prefix, index },
        { local: this.bytes },
        { timeout: NETLINK_TIMEOUT_MS },
      );
    } catch (err) {
      const code = netlinkErrno(err);
      // Already gone, or the whole interface is gone (and the address with it).
      if (code === 'EADDRNOTAVAIL' || code === 'ENOENT' || code === 'ENODEV') return;
      throw new VipdError('VIPD_NETLINK', `cannot remove ${this.ip} from ${this.iface}: ${describeError(err)}`, {
        cause: err,
      });
    }
  }

  /** One round at once, then `burst - 1` more `burstInterval` apart. Restarts a burst in progress. */
  private startBurst(): void {
    if (this.burstTimer !== undefined) clearInterval(this.burstTimer);
    this.burstTimer = undefined;
    this.sendRound();
    let left = this.opts.vip.garp.burst - 1;
    if (left <= 0) return;
    const timer = setInterval(() => {
      if (!this.holding || --left <= 0) {
        clearInterval(timer);
        if (this.burstTimer === timer) this.burstTimer = undefined;
      }
      if (this.holding) this.sendRound();
    }, this.opts.vip.garp.burstInterval);
    timer.unref();
    this.burstTimer = timer;
  }

  /** One frame of each form (see arp.ts for why both). */
  private sendRound(): void {
    // After a stall, timers fire before the election notices: a lapsed lease announces nothing.
    if (!this.holding || this.quiet || this.packets === undefined || this.now() >= this.deadline) return;
    for (const frame of this.frames) {
      try {
        this.packets.send(frame);
        (this.family === 6 ? this.opts.metrics.naSent : this.opts.metrics.garpSent).inc();
      } catch (err) {
        // ENETDOWN while the link is down: the link watch reports that; the refresh retries.
        const fields = { err: describeError(err), interface: this.iface };
        if (this.family === 6) this.limited.warn('na-send', fields, 'Neighbor Advertisement not sent');
        else this.limited.warn('garp-send', fields, 'gratuitous ARP not sent');
      }
    }
  }

  /** Another host's claim in `frame`: its MAC and what it sent, or undefined when the frame claims nothing. */
  private claim(frame: Buffer, ourMac: string): { theirMac: string; op: string } | undefined {
    if (this.family === 4) {
      const arp = parseArpFrame(frame);
      if (arp === undefined || arp.senderIp !== this.ip || arp.senderMac === ourMac) return undefined;
      return { theirMac: arp.senderMac, op: arp.op };
    }
    const nd = parseNdFrame(frame);
    if (nd === undefined || nd.targetIp !== this.ip) return undefined;
    // An advertisement for the VIP from another MAC claims it; so does duplicate address detection
    // (a solicitation from ::): that host is configuring the VIP for itself. Our kernel answers it.
    if (nd.type === 'advertisement') {
      const theirMac = nd.linkMac ?? nd.frameMac;
      return theirMac === ourMac ? undefined : { theirMac, op: 'neighbor-advertisement' };
    }
    if (nd.sourceIp === '::' && nd.frameMac !== ourMac)
      return { theirMac: nd.frameMac, op: 'duplicate-address-detection' };
    return undefined;
  }

  private onFrame(frame: Buffer): void {
    if (!this.holding || this.quiet || !this.opts.vip.conflictDetection || this.link === undefined) return;
    const claim = this.claim(frame, this.link.mac);
    if (claim === undefined) return;
    this.opts.metrics.vipConflicts.inc();
    const t = this.now();
    this.limited.error(
      'conflict',
      {
        vip: this.ip,
        interface: this.iface,
        ourMac: this.link.mac,
        theirMac: claim.theirMac,
        op: claim.op,
      },
      'VIP conflict: another host claims the VIP; re-announcing it',
    );
    if (t - this.lastConflictBurst >= CONFLICT_BURST_MIN_GAP_MS) {
      this.lastConflictBurst = t;
      this.startBurst();
    }
  }

  private stopTimers(): void {
    if (this.burstTimer !== undefined) clearInterval(this.burstTimer);
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
    if (this.lateGarpTimer !== undefined) clearTimeout(this.lateGarpTimer);
    this.burstTimer = undefined;
    this.refreshTimer = undefined;
    this.lateGarpTimer = undefined;
  }
}
