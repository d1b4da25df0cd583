/**
 * A dgram.Socket whose kernel queue only ever holds datagrams from a list of sources (IPv4 or IPv6,
 * the family of the bound address): the socket is opened natively (native/packet.cc) with a classic
 * BPF filter (bpf.ts, udpSourceFilter or udp6SourceFilter) attached
 * before bind, and Node adopts the bound fd with `bind({ fd })`. A flood from anywhere else is
 * dropped in softirq (counted in /proc/net/snmp `Udp: InErrors`) instead of costing an HMAC check
 * in JavaScript per datagram. The election still checks the sender after decoding: the filter is a
 * cheap first wall, not the authentication.
 *
 * dgram alone cannot do this: it has no SO_ATTACH_FILTER, and a filter attached after bind would let
 * whatever arrived in between through.
 */
import * as dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import { isIP } from 'node:net';
import { describeError, errnoName, VipdError } from '../errors';
import { loadPacketBinding } from './addon';
import { udp6SourceFilter, udpSourceFilter } from './bpf';

export interface FilteredUdpOptions {
  /** The local address to bind (this node's member address): IPv4, or IPv6 for an IPv6-only socket. */
  readonly address: string;
  /** 1-65535, or 0 for any free port. */
  readonly port: number;
  /** The sources whose datagrams are delivered; the kernel drops all others. Empty: deliver none. */
  readonly allowedSources: readonly string[];
  /** SO_RCVBUF in bytes, best effort (raised past net.core.rmem_max when root); 0 or absent: the default. */
  readonly recvBufferBytes?: number;
}

/** The fd and family under each socket this module opened, for setAllowedSources; dropped on close. */
const fds = new WeakMap<dgram.Socket, { fd: number; family: 4 | 6 }>();

/** The filter for a socket of `family`: sources of the other family can never arrive, so none match. */
function sourceFilter(family: 4 | 6, addresses: readonly string[]): Buffer {
  return family === 4 ? udpSourceFilter(addresses) : udp6SourceFilter(addresses);
}

/**
 * A bound dgram.Socket ('udp4' or 'udp6') that only receives datagrams from `allowedSources`. Sending works as
 * on any dgram socket, and close() closes the fd.
 *
 * Rejects with VipdError('VIPD_BIND_FAILED') naming the address, port and errno (EADDRINUSE,
 * EADDRNOTAVAIL...; `cause.code` has it). Throws TypeError or RangeError on invalid options (an
 * address that is not an IP address, sources of another family, more than MAX_UDP_SOURCES sources),
 * which the config schema rules out.
 */
export async function openFilteredUdp(options: FilteredUdpOptions): Promise<dgram.Socket> {
  const { address, port, allowedSources, recvBufferBytes = 0 } = options;
  const family = isIP(address);
  if (family !== 4 && family !== 6) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`not a UDP port: ${port}`);
  // The kernel doubles the value in an int: INT_MAX / 2 is the most it takes.
  if (!Number.isInteger(recvBufferBytes) || recvBufferBytes < 0 || recvBufferBytes > 2 ** 30 - 1) {
    throw new RangeError(`recvBufferBytes must be an integer from 0 to 2^30 - 1, not ${recvBufferBytes}`);
  }
  const filter = sourceFilter(family, allowedSources);
  const addon = loadPacketBinding();
  let fd: number;
  try {
    fd = addon.openUdpSocket(address, port, filter, recvBufferBytes);
  } catch (err) {
    throw new VipdError(
      'VIPD_BIND_FAILED',
      `cannot bind a UDP socket to ${hostPort(address, port)}: ${describeError(err)}${bindHint(err, address)}`,
      { cause: err },
    );
  }
  const socket = dgram.createSocket(family === 4 ? { type: 'udp4' } : { type: 'udp6', ipv6Only: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // Emits 'listening' (and so runs this callback) synchronously; it throws on a wrong fd type.
      socket.bind({ fd }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // Adoption failed, so the handle does not own the fd: close both.
    socket.close();
    closeSync(fd);
    throw new VipdError(
      'VIPD_BIND_FAILED',
      `cannot adopt the UDP socket for ${hostPort(address, port)}: ${describeError(err)}`,
      { cause: err },
    );
  }
  try {
    // libuv's uv_udp_open() has just turned SO_REUSEADDR on; see clearReuseAddr in native/packet.cc.
    // It is on only between these two calls, within one synchronous step of this process.
    addon.clearReuseAddr(fd);
  } catch (err) {
    socket.close();
    throw new VipdError('VIPD_BIND_FAILED', `cannot make ${hostPort(address, port)} exclusive: ${describeError(err)}`, {
      cause: err,
    });
  }
  fds.set(socket, { fd, family });
  socket.once('close', () => fds.delete(socket));
  return socket;
}

/**
 * Replaces the source filter of a socket from openFilteredUdp (or of any IPv4 UDP socket's fd), e.g.
 * after a config reload changed the members. The kernel swaps the programs atomically: no datagram
 * meets no filter. Datagrams already queued under the old filter are still delivered, so the
 * election's own sender check stays.
 *
 * Throws VipdError('VIPD_NATIVE') for a closed socket or when the kernel refuses, TypeError or
 * RangeError for bad addresses.
 */
export function setAllowedSources(target: dgram.Socket | number, addresses: readonly string[]): void {
  const { fd, family } = typeof target === 'number' ? { fd: target, family: 4 as const } : openFd(target);
  const program = sourceFilter(family, addresses);
  try {
    loadPacketBinding().attachFilter(fd, program);
  } catch (err) {
    throw new VipdError('VIPD_NATIVE', `cannot replace the UDP source filter on fd ${fd}: ${describeError(err)}`, {
      cause: err,
    });
  }
}

function openFd(socket: dgram.Socket): { fd: number; family: 4 | 6 } {
  const fd = fds.get(socket);
  // address() throws once close() has run: the fd is closed then, though 'close' (and our cleanup)
  // comes a tick later, and its number may already belong to something else.
  let open = fd !== undefined;
  try {
    socket.address();
  } catch {
    open = false;
  }
  if (fd === undefined || !open) {
    throw new VipdError('VIPD_NATIVE', 'setAllowedSources needs an open socket from openFilteredUdp');
  }
  return fd;
}

/** "10.0.0.1:7580", "[fd00::1]:7580". */
export function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function bindHint(err: unknown, address: string): string {
  switch (errnoName(err)) {
    case 'EADDRINUSE':
      return '; another socket has this address and port: is another vipd running?';
    case 'EADDRNOTAVAIL':
      return `; is ${address} an address of this host?`;
    case 'EACCES':
      return '; ports below 1024 need root or CAP_NET_BIND_SERVICE';
    default:
      return '';
  }
}
