/**
 * A raw Ethernet socket on one interface (AF_PACKET, through the vipd_packet addon in native/):
 * sends whole frames and emits the ARP frames the interface receives (or, opened with `ndTarget`,
 * the IPv6 Neighbor Discovery frames about one address). Shaped like dgram.Socket.
 *
 * With `arpSender` the kernel drops every ARP frame that does not claim that address before it is
 * queued (src/native/bpf.ts, arpSenderFilter): conflict detection only needs frames claiming the VIP,
 * and a busy segment's ARP then never wakes the event loop.
 *
 * The addon is loaded on first open() (src/native/addon.ts), so importing this module (dry runs,
 * unit tests) never needs a compiled addon.
 */
import { EventEmitter } from 'node:events';
import { describeError, errnoName, VipdError } from '../errors';
import { loadPacketBinding, type NativePacketSocket, netRawHint } from '../native/addon';
import { arpSenderFilter, ndTargetFilter } from '../native/bpf';

export interface PacketSocketOpenOptions {
  /** Deliver only ARP frames whose sender protocol address is this IPv4 address. */
  readonly arpSender?: string;
  /**
   * Listen to IPv6 instead of ARP, and deliver only Neighbor Advertisements and Solicitations whose
   * target is this IPv6 address (an IPv6 VIP's conflicts).
   */
  readonly ndTarget?: string;
}

const ETH_P_IPV6 = 0x86dd;

export interface PacketSocketEvents {
  /**
   * One received ARP frame, Ethernet header included (with `arpSender`, only frames claiming it).
   * Frames this host sent are not delivered.
   */
  frame: [frame: Buffer];
  close: [];
}

export class PacketSocket extends EventEmitter<PacketSocketEvents> {
  private native: NativePacketSocket | undefined;
  private boundName: string | undefined;
  private boundIndex: number | undefined;
  private closed = false;

  /**
   * Binds to `ifname` (resolved to its ifindex now, in this process's network namespace). The
   * `arpSender` filter is attached before the bind, so not one other frame is ever delivered.
   * Throws TypeError for an `arpSender` that is not an IPv4 address.
   */
  open(ifname: string, options: PacketSocketOpenOptions = {}): this {
    if (this.closed) throw new VipdError('VIPD_NATIVE', 'this packet socket is closed; create a new one');
    if (this.native !== undefined)
      throw new VipdError('VIPD_NATIVE', `this packet socket is already open on ${this.boundName ?? '?'}`);
    const filter =
      options.ndTarget !== undefined
        ? ndTargetFilter(options.ndTarget)
        : options.arpSender === undefined
          ? null
          : arpSenderFilter(options.arpSender);
    const ethertype = options.ndTarget !== undefined ? ETH_P_IPV6 : undefined;
    const addon = loadPacketBinding();
    let index: number;
    try {
      index = addon.ifNameToIndex(ifname);
    } catch (err) {
      throw new VipdError(
        'VIPD_NATIVE',
        `interface "${ifname}" not found (${describeError(err)}); check vip.interface`,
        { cause: err },
      );
    }
    try {
      this.native = new addon.PacketSocket(index, (frame) => this.emit('frame', frame), filter, ethertype);
    } catch (err) {
      const hint = netRawHint(errnoName(err));
      throw new VipdError('VIPD_NATIVE', `cannot open a packet socket on ${ifname}: ${describeError(err)}${hint}`, {
        cause: err,
      });
    }
    this.boundName = ifname;
    this.boundIndex = index;
    return this;
  }

  get ifname(): string | undefined {
    return this.boundName;
  }

  get ifindex(): number | undefined {
    return this.boundIndex;
  }

  /**
   * Sends one Ethernet frame without blocking. Throws VipdError('VIPD_NATIVE') when the kernel
   * refuses (ENETDOWN while the link is down, ENOBUFS on a full queue); `cause.code` has the errno.
   */
  send(frame: Buffer): void {
    if (this.native === undefined) throw new VipdError('VIPD_NATIVE', 'send on a packet socket that is not open');
    try {
      this.native.send(frame);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `send on ${this.boundName ?? '?'} failed: ${describeError(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * Replaces the filter on the open socket (a new VIP after a reload): from now on only ARP frames
   * claiming `ip` are delivered. The kernel swaps programs atomically; frames already queued under
   * the old one are still delivered.
   */
  setArpSender(ip: string): void {
    const filter = arpSenderFilter(ip);
    if (this.native === undefined) {
      throw new VipdError('VIPD_NATIVE', 'setArpSender on a packet socket that is not open');
    }
    try {
      this.native.setFilter(filter);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `cannot filter ARP on ${this.boundName ?? '?'}: ${describeError(err)}`, {
        cause: err,
      });
    }
  }

  /** Keeps the event loop alive while open (the default), like dgram. */
  ref(): this {
    this.native?.ref();
    return this;
  }

  unref(): this {
    this.native?.unref();
    return this;
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const native = this.native;
    this.native = undefined;
    if (native !== undefined) {
      native.close();
      this.emit('close');
    }
  }
}

export function createPacketSocket(): PacketSocket {
  return new PacketSocket();
}
