/**
 * Send-only raw IPv4 and IPv6 sockets (through the vipd_packet addon in native/): they send complete
 * packets whose header the caller wrote, source address included. The takeover's tickle ACKs
 * (src/takeover/) need them: they come from VIP:port to a client of the dead master, a connection no
 * TCP socket of this host owns, so neither net nor dgram can send them. One socket per family: an
 * IPv4 VIP's clients get IPv4 packets, an IPv6 VIP's IPv6 ones.
 *
 * The addon is loaded on first open (src/native/addon.ts), so importing this module (dry runs, unit
 * tests) never needs a compiled addon.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { describeError, errnoName, VipdError } from '../errors';
import { loadPacketBinding, type NativeRawIpv4Socket, type NativeRawIpv6Socket, netRawHint } from './addon';

/** What both families' sockets offer: the takeover's tickle sender sends through either. */
export interface RawIpSocket {
  readonly family: 4 | 6;
  readonly closed: boolean;
  send(packet: Buffer, dstIp: string): boolean;
  close(): void;
}

export class RawIpv4Socket implements RawIpSocket {
  readonly family = 4;
  private native: NativeRawIpv4Socket | undefined;

  /** Use openRawIpv4Socket(). */
  constructor(native: NativeRawIpv4Socket) {
    this.native = native;
  }

  get closed(): boolean {
    return this.native === undefined;
  }

  /**
   * Sends one IPv4 packet (header included; the kernel rewrites its checksum and total length) towards
   * `dstIp`, which should be the header's destination: the kernel routes by this argument. Never blocks.
   *
   * Returns false when the kernel had no room for it (the send buffer is full of packets not yet
   * transmitted): back off a few milliseconds and send it again. Throws VipdError('VIPD_NATIVE') when
   * the kernel refuses it (EPERM from a firewall rule, ENETUNREACH; `cause.code` has the errno) or the
   * socket is closed, TypeError for a `dstIp` that is not an IPv4 address.
   */
  send(packet: Buffer, dstIp: string): boolean {
    if (!isIPv4(dstIp)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(dstIp)}`);
    if (this.native === undefined) throw new VipdError('VIPD_NATIVE', 'send on a raw IPv4 socket that is closed');
    try {
      return this.native.send(packet, dstIp);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `raw IPv4 send to ${dstIp} failed: ${describeError(err)}`, { cause: err });
    }
  }

  /** Idempotent. */
  close(): void {
    const native = this.native;
    this.native = undefined;
    native?.close();
  }
}

export class RawIpv6Socket implements RawIpSocket {
  readonly family = 6;
  private native: NativeRawIpv6Socket | undefined;

  /** Use openRawIpv6Socket(). */
  constructor(native: NativeRawIpv6Socket) {
    this.native = native;
  }

  get closed(): boolean {
    return this.native === undefined;
  }

  /**
   * Sends one IPv6 packet (header included, sent as written) towards `dstIp`, which should be the
   * header's destination: the kernel routes by this argument. Never blocks. Returns false when the
   * kernel had no room for it (a full send buffer, e.g. packets held while Neighbor Discovery
   * resolves a client): back off and send it again. Throws as RawIpv4Socket.send does, TypeError for
   * a `dstIp` that is not an IPv6 address (a zone, "%eth0", included: the kernel would ignore it).
   */
  send(packet: Buffer, dstIp: string): boolean {
    if (!isIPv6(dstIp) || dstIp.includes('%')) throw new TypeError(`not an IPv6 address: ${JSON.stringify(dstIp)}`);
    if (this.native === undefined) throw new VipdError('VIPD_NATIVE', 'send on a raw IPv6 socket that is closed');
    try {
      return this.native.send(packet, dstIp);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `raw IPv6 send to ${dstIp} failed: ${describeError(err)}`, { cause: err });
    }
  }

  /** Idempotent. */
  close(): void {
    const native = this.native;
    this.native = undefined;
    native?.close();
  }
}

export interface RawIpv4SocketOptions {
  /** SO_SNDBUF in bytes, best effort (raised past net.core.wmem_max with CAP_NET_ADMIN); 0: the default. */
  readonly sendBufferBytes?: number;
}

/**
 * The default send buffer: 4 MiB, room for about 5,000 small packets. A packet waiting in a neighbour
 * queue while ARP resolves its destination still counts against the socket's send buffer. With the
 * kernel's default (208 KiB, about 270 tickles) one client slow to answer ARP fills it, and every send
 * to every other client fails with EAGAIN until that ARP resolves or fails (1 to 3 s). With room for
 * several neighbour queues (each capped by net.ipv4.neigh.<dev>.unres_qlen_bytes, 208 KiB by default)
 * the kernel drops that one client's oldest packets instead and the others' go out
 * (test/tickle-netns.test.ts).
 */
export const RAW_SEND_BUFFER_BYTES = 4 << 20;

/**
 * Opens a raw IPv4 socket in this process's network namespace. Throws VipdError('VIPD_NATIVE'), with
 * a hint on EPERM: raw sockets need CAP_NET_RAW. Throws RangeError for a bad `sendBufferBytes`.
 */
export function openRawIpv4Socket(options: RawIpv4SocketOptions = {}): RawIpv4Socket {
  const sendBufferBytes = checkedSendBuffer(options);
  const addon = loadPacketBinding();
  try {
    return new RawIpv4Socket(new addon.RawIpv4Socket(sendBufferBytes));
  } catch (err) {
    throw openFailed('IPv4', err);
  }
}

/**
 * Opens a raw IPv6 socket in this process's network namespace (the same send buffer by default, for
 * the same reason: a client slow to answer Neighbor Discovery holds its packets in a neighbour
 * queue). Throws as openRawIpv4Socket does.
 */
export function openRawIpv6Socket(options: RawIpv4SocketOptions = {}): RawIpv6Socket {
  const sendBufferBytes = checkedSendBuffer(options);
  const addon = loadPacketBinding();
  try {
    return new RawIpv6Socket(new addon.RawIpv6Socket(sendBufferBytes));
  } catch (err) {
    throw openFailed('IPv6', err);
  }
}

/** Either family's socket. */
export function openRawSocket(family: 4 | 6, options: RawIpv4SocketOptions = {}): RawIpSocket {
  return family === 4 ? openRawIpv4Socket(options) : openRawIpv6Socket(options);
}

function checkedSendBuffer(options: RawIpv4SocketOptions): number {
  const { sendBufferBytes = RAW_SEND_BUFFER_BYTES } = options;
  // The kernel doubles the value in an int: INT_MAX / 2 is the most it takes.
  if (!Number.isInteger(sendBufferBytes) || sendBufferBytes < 0 || sendBufferBytes > 2 ** 30 - 1) {
    throw new RangeError(`sendBufferBytes must be an integer from 0 to 2^30 - 1, not ${sendBufferBytes}`);
  }
  return sendBufferBytes;
}

function openFailed(family: 'IPv4' | 'IPv6', err: unknown): VipdError {
  const hint = netRawHint(errnoName(err));
  return new VipdError('VIPD_NATIVE', `cannot open a raw ${family} socket: ${describeError(err)}${hint}`, {
    cause: err,
  });
}
