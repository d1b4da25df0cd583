/**
 * The vipd_packet addon (native/packet.cc): what it exports, typed, and where it is loaded from.
 * The wrappers (src/vip/packet-socket.ts, src/native/udp-socket.ts, src/native/raw-socket.ts) are its
 * only users.
 *
 * Loaded on first use, so importing a wrapper (dry runs, unit tests) never needs a compiled addon.
 * Every function throws an Error whose `code` is the errno name (EPERM, EADDRINUSE...) when the
 * kernel refuses, and a TypeError or RangeError (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE) on bad
 * arguments.
 */
import * as path from 'node:path';
import { describeError, VipdError } from '../errors';

export interface NativePacketSocket {
  send(frame: Buffer): number;
  /** Replaces the socket's classic BPF filter in one step (see attachFilter). */
  setFilter(program: Buffer): void;
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeRawIpv4Socket {
  /**
   * One complete IPv4 packet, header included, routed towards `dstIp`. True when the kernel took it,
   * false when the send buffer was full (EAGAIN), to back off and retry.
   */
  send(packet: Buffer, dstIp: string): boolean;
  /** Idempotent. */
  close(): void;
}

/** The same for IPv6: one complete IPv6 packet, header included, routed towards `dstIp`. */
export type NativeRawIpv6Socket = NativeRawIpv4Socket;

export interface NativeBinding {
  /**
   * An AF_PACKET socket bound to ETH_P_ARP on `ifindex`; `filter` (a classic BPF program, see
   * src/native/bpf.ts) is attached before the bind, so no frame it drops is ever queued.
   */
  PacketSocket: new (
    ifindex: number,
    onFrame: (frame: Buffer) => void,
    filter?: Buffer | null,
    /** ETH_P_ARP (0x0806) unless given; ETH_P_IPV6 (0x86dd) for Neighbor Discovery. */
    ethertype?: number,
  ) => NativePacketSocket;
  /**
   * A send-only raw IPv4 socket (IPPROTO_RAW, so IP_HDRINCL): the caller writes the whole IP header,
   * source address included. Needs CAP_NET_RAW. `sendBufferBytes` sets SO_SNDBUF, best effort (past
   * net.core.wmem_max with CAP_NET_ADMIN); 0 or absent keeps the default.
   */
  RawIpv4Socket: new (
    sendBufferBytes?: number,
  ) => NativeRawIpv4Socket;
  /**
   * A send-only raw IPv6 socket (IPPROTO_RAW, so IPV6_HDRINCL on Linux >= 4.5): the caller writes the
   * whole IPv6 header, source address included, and the kernel sends it as written. Needs
   * CAP_NET_RAW; `sendBufferBytes` as for RawIpv4Socket.
   */
  RawIpv6Socket: new (
    sendBufferBytes?: number,
  ) => NativeRawIpv6Socket;
  ifNameToIndex(name: string): number;
  /**
   * A non-blocking AF_INET UDP socket with `filter` attached, SO_RCVBUF set (best effort; 0 keeps the
   * default) and bound to address:port without SO_REUSEADDR. Returns the fd, now the caller's to close.
   */
  openUdpSocket(address: string, port: number, filter: Buffer | null, recvBufferBytes: number): number;
  /**
   * SO_ATTACH_FILTER on an open socket. Replaces any previous filter atomically: each packet meets the
   * old program or the new one, never none. Packets already queued are not filtered again.
   */
  attachFilter(fd: number, program: Buffer): void;
  /** Turns SO_REUSEADDR off (libuv turns it on when Node adopts an fd; see udp-socket.ts). */
  clearReuseAddr(fd: number): void;
}

/** dist/src/native -> native/build/Release, where `node-gyp rebuild -C native` puts the addon. */
export const NATIVE_ADDON_PATH = path.resolve(__dirname, '../../../native/build/Release/vipd_packet.node');

let binding: NativeBinding | undefined;

/** What to add to an error from opening a raw or packet socket: the capability it lacks, if that is why. */
export function netRawHint(errno: string | undefined): string {
  return errno === 'EPERM' || errno === 'EACCES'
    ? '; vipd needs CAP_NET_RAW (root, or the NET_RAW capability in the static pod)'
    : '';
}

export function loadPacketBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  try {
    binding = require(NATIVE_ADDON_PATH) as NativeBinding;
  } catch (err) {
    throw new VipdError(
      'VIPD_NATIVE',
      `the native addon could not be loaded from ${NATIVE_ADDON_PATH}: ${describeError(err)}; ` +
        'build it with `npm run build:native` (needs a C++ compiler, make and python3)',
      { cause: err },
    );
  }
  return binding;
}
