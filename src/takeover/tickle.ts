/**
 * The "tickle ACK" as bytes: the TCP segment a new master sends, from VIP:port, to each client of the
 * dead master so that the client finds out its connection is gone (the technique of Samba CTDB's IP
 * takeover). A dead node sends no FIN or RST, so an idle client (a watch) would otherwise wait for
 * its own keepalive or timeout, tens of seconds or more.
 *
 * How one tickle resets a connection, with nothing but standard TCP:
 *   1. The segment's sequence number is far outside the client's receive window, so the client's
 *      kernel answers it with a duplicate ACK carrying its real sequence and acknowledgment numbers
 *      (RFC 9293 §3.10.7.4; Linux: tcp_validate_incoming, at most one such answer per socket per
 *      net.ipv4.tcp_invalid_ratelimit, 500 ms by default).
 *   2. That ACK reaches the new master, whose kernel has no such connection (at most a listener on
 *      the port) and answers with a RST whose sequence number is the ACK's acknowledgment number
 *      (RFC 9293 §3.10.7.1-2): exactly what the client expects next, so the RST is accepted and not
 *      merely challenged (RFC 5961 §3.2).
 *   3. The client's socket fails at once with ECONNRESET, and it reconnects through the new master.
 *
 * The same for either family: an IPv6 client of an IPv6 VIP gets the same segment in an IPv6
 * packet (RFC 9293's rules do not depend on the network layer; Linux shares tcp_validate_incoming
 * and the RST of a segment for no socket between tcp_v4 and tcp_v6).
 *
 * A pure function, no sockets, so the bytes are tested exactly (test/tickle.test.ts); the raw sockets
 * that send them are src/native/raw-socket.ts's and the batching, repeating sender tickle-sender.ts.
 */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { internetChecksum, internetSum, ipv6PseudoHeaderSum } from '../inet-checksum';

export interface TickleAckFields {
  /** The VIP: the tickle comes from the dead connection's server side. Its family is the packet's. */
  readonly srcIp: string;
  /** The VIP's port (6443). */
  readonly srcPort: number;
  /** The client, of the VIP's family. */
  readonly dstIp: string;
  readonly dstPort: number;
  /** Any value outside the client's window; 0 unless the caller varies it (see TickleSender). */
  readonly seq?: number;
  readonly ack?: number;
}

const IPV4_HEADER_BYTES = 20;
const TCP_HEADER_BYTES = 20;
/** The whole packet: two option-less headers, no payload. */
export const TICKLE_PACKET_BYTES = IPV4_HEADER_BYTES + TCP_HEADER_BYTES;
const IPV6_HEADER_BYTES = 40;
/** The IPv6 packet: the fixed header (no extension headers) and the TCP header, no payload. */
export const TICKLE6_PACKET_BYTES = IPV6_HEADER_BYTES + TCP_HEADER_BYTES;

const IP_VERSION_4_IHL_5 = 0x45;
/** Don't Fragment: 40 bytes never need it, and with DF the identification means nothing (RFC 6864 §4.1). */
const IP_FLAG_DF = 0x4000;
const IP_TTL = 64;
/** Version 6, traffic class 0, flow label 0 (the kernel leaves a hand-written IPv6 header as it is). */
const IPV6_VERSION_WORD = 0x6000_0000;
/** As the IPv4 TTL: the client is on the VIP's segment or a few routers away. */
const IPV6_HOP_LIMIT = 64;
const IPPROTO_TCP = 6;
/** Data offset 5 words (no options), in the high nibble. */
const TCP_DATA_OFFSET_5 = 0x50;
const TCP_FLAG_ACK = 0x10;
/** Any window will do: the client rejects the segment on its sequence number before it reads the window. */
const TCP_WINDOW = 0xffff;

/**
 * One IPv4 packet carrying a bare TCP ACK from srcIp:srcPort to dstIp:dstPort, both checksums filled
 * in. The identification is 0: with IP_HDRINCL Linux picks one for a 0 (raw_send_hdrinc), and it
 * also recomputes the IP header checksum, but the TCP checksum is ours alone.
 *
 * With an IPv6 srcIp, one IPv6 packet instead (TICKLE6_PACKET_BYTES): the 40-byte header (next
 * header TCP, hop limit 64, flow label 0) and the same TCP segment, whose checksum covers the
 * pseudo-header of RFC 8200 §8.1. IPv6 has no header checksum, and the kernel sends a header written
 * with IPV6_HDRINCL as it is (rawv6_send_hdrinc).
 *
 * Throws TypeError for an address that is not a dotted-quad IPv4 or an IPv6 string, a dstIp of
 * another family than srcIp's (or an IPv4-mapped IPv6 one: that client is IPv4), or a field that is
 * not a number; RangeError for a port outside 1-65535 or a seq/ack outside 0 to 2^32 - 1.
 */
export function buildTickleAck(fields: TickleAckFields): Buffer {
  const { srcIp, srcPort, dstIp, dstPort, seq = 0, ack = 0 } = fields;
  if (typeof srcIp === 'string' && isIPv6(srcIp)) return buildTickleAck6(fields);
  if (typeof srcIp !== 'string' || !isIPv4(srcIp)) {
    throw new TypeError(`srcIp must be an IPv4 or IPv6 address, not ${JSON.stringify(srcIp)}`);
  }
  const src = ipv4Bytes('srcIp', srcIp);
  const dst = ipv4Bytes('dstIp', dstIp);
  checkPort('srcPort', srcPort);
  checkPort('dstPort', dstPort);
  checkUint32('seq', seq);
  checkUint32('ack', ack);

  const packet = Buffer.alloc(TICKLE_PACKET_BYTES);
  packet.writeUInt8(IP_VERSION_4_IHL_5, 0);
  packet.writeUInt16BE(TICKLE_PACKET_BYTES, 2);
  packet.writeUInt16BE(IP_FLAG_DF, 6);
  packet.writeUInt8(IP_TTL, 8);
  packet.writeUInt8(IPPROTO_TCP, 9);
  src.copy(packet, 12);
  dst.copy(packet, 16);
  packet.writeUInt16BE(internetChecksum(packet.subarray(0, IPV4_HEADER_BYTES)), 10);

  // The TCP checksum covers a pseudo-header of both addresses, the protocol and the TCP length
  // (RFC 9293 §3.1) and then the segment.
  const pseudo = internetSum(dst, internetSum(src)) + IPPROTO_TCP + TCP_HEADER_BYTES;
  writeTcpAck(packet.subarray(IPV4_HEADER_BYTES), fields, pseudo);
  return packet;
}

/** The bare ACK segment (srcPort, dstPort, seq, ack) into `segment`, its checksum over `pseudoSum` and itself. */
function writeTcpAck(segment: Buffer, fields: TickleAckFields, pseudoSum: number): void {
  const { srcPort, dstPort, seq = 0, ack = 0 } = fields;
  segment.writeUInt16BE(srcPort, 0);
  segment.writeUInt16BE(dstPort, 2);
  segment.writeUInt32BE(seq, 4);
  segment.writeUInt32BE(ack, 8);
  segment.writeUInt8(TCP_DATA_OFFSET_5, 12);
  segment.writeUInt8(TCP_FLAG_ACK, 13);
  segment.writeUInt16BE(TCP_WINDOW, 14);
  segment.writeUInt16BE(internetChecksum(segment, pseudoSum, 16), 16);
}

function buildTickleAck6(fields: TickleAckFields): Buffer {
  const { srcIp, srcPort, dstIp, dstPort, seq = 0, ack = 0 } = fields;
  const src = ipv6Bytes('srcIp', srcIp);
  const dst = ipv6Bytes('dstIp', dstIp);
  checkPort('srcPort', srcPort);
  checkPort('dstPort', dstPort);
  checkUint32('seq', seq);
  checkUint32('ack', ack);

  const packet = Buffer.alloc(TICKLE6_PACKET_BYTES);
  packet.writeUInt32BE(IPV6_VERSION_WORD, 0);
  packet.writeUInt16BE(TCP_HEADER_BYTES, 4); // payload length: what follows the fixed header
  packet.writeUInt8(IPPROTO_TCP, 6); // next header
  packet.writeUInt8(IPV6_HOP_LIMIT, 7);
  src.copy(packet, 8);
  dst.copy(packet, 24);

  writeTcpAck(packet.subarray(IPV6_HEADER_BYTES), fields, ipv6PseudoHeaderSum(src, dst, TCP_HEADER_BYTES, IPPROTO_TCP));
  return packet;
}

/** Checks a port the way buildTickleAck does, naming `field` in the error. */
export function checkPort(field: string, port: unknown): asserts port is number {
  if (typeof port !== 'number') throw new TypeError(`${field} must be a number, not ${JSON.stringify(port)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${field} must be a TCP port from 1 to 65535, not ${port}`);
  }
}

/** Checks an IPv4 address the way buildTickleAck does, naming `field` in the error. */
export function checkIpv4(field: string, ip: unknown): asserts ip is string {
  if (typeof ip !== 'string' || !isIPv4(ip)) {
    throw new TypeError(`${field} must be an IPv4 address (a.b.c.d), not ${JSON.stringify(ip)}`);
  }
}

/**
 * Checks an IPv6 address the way buildTickleAck does, naming `field` in the error: any text form
 * node:net takes, no zone ("%eth0"), not IPv4-mapped (::ffff:a.b.c.d is an IPv4 client).
 */
export function checkIpv6(field: string, ip: unknown): asserts ip is string {
  if (typeof ip !== 'string' || !isIPv6(ip) || ip.includes('%')) {
    throw new TypeError(`${field} must be an IPv6 address, not ${JSON.stringify(ip)}`);
  }
  if (ipaddr.IPv6.parse(ip).isIPv4MappedAddress()) {
    throw new TypeError(`${field} must be an IPv6 address, not IPv4-mapped ${JSON.stringify(ip)}: that client is IPv4`);
  }
}

function checkUint32(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, not ${JSON.stringify(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${field} must be an integer from 0 to 2^32 - 1, not ${value}`);
  }
}

function ipv4Bytes(field: string, ip: unknown): Buffer {
  checkIpv4(field, ip);
  return Buffer.from(ip.split('.').map(Number));
}

function ipv6Bytes(field: string, ip: unknown): Buffer {
  checkIpv6(field, ip);
  return Buffer.from(ipaddr.IPv6.parse(ip).toByteArray());
}
