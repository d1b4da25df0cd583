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
 * A pure function, no sockets, so the bytes are tested exactly (test/tickle.test.ts); the raw socket
 * that sends them is src/native/raw-socket.ts and the batching, repeating sender tickle-sender.ts.
 */
import { isIPv4 } from 'node:net';

export interface TickleAckFields {
  /** The VIP: the tickle comes from the dead connection's server side. */
  readonly srcIp: string;
  /** The VIP's port (6443). */
  readonly srcPort: number;
  /** The client. */
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

const IP_VERSION_4_IHL_5 = 0x45;
/** Don't Fragment: 40 bytes never need it, and with DF the identification means nothing (RFC 6864 §4.1). */
const IP_FLAG_DF = 0x4000;
const IP_TTL = 64;
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
 * Throws TypeError for an address that is not a dotted-quad IPv4 string or a field that is not a
 * number, RangeError for a port outside 1-65535 or a seq/ack outside 0 to 2^32 - 1.
 */
export function buildTickleAck(fields: TickleAckFields): Buffer {
  const { srcIp, srcPort, dstIp, dstPort, seq = 0, ack = 0 } = fields;
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

  const tcp = IPV4_HEADER_BYTES;
  packet.writeUInt16BE(srcPort, tcp);
  packet.writeUInt16BE(dstPort, tcp + 2);
  packet.writeUInt32BE(seq, tcp + 4);
  packet.writeUInt32BE(ack, tcp + 8);
  packet.writeUInt8(TCP_DATA_OFFSET_5, tcp + 12);
  packet.writeUInt8(TCP_FLAG_ACK, tcp + 13);
  packet.writeUInt16BE(TCP_WINDOW, tcp + 14);
  // The TCP checksum covers a pseudo-header of both addresses, the protocol and the TCP length
  // (RFC 9293 §3.1) and then the segment, with its checksum field 0 while summing.
  const pseudo = Buffer.alloc(12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 4);
  pseudo.writeUInt8(IPPROTO_TCP, 9);
  pseudo.writeUInt16BE(TCP_HEADER_BYTES, 10);
  packet.writeUInt16BE(internetChecksum(packet.subarray(tcp), internetSum(pseudo)), tcp + 16);
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

/** The 16-bit one's-complement sum of `bytes` (an even length here) added to `initial`, not yet folded. */
function internetSum(bytes: Buffer, initial = 0): number {
  let sum = initial;
  for (let at = 0; at + 1 < bytes.length; at += 2) sum += bytes.readUInt16BE(at);
  return sum;
}

/** RFC 1071: the one's complement of the one's-complement sum, carries folded back in. */
function internetChecksum(bytes: Buffer, initial = 0): number {
  let sum = internetSum(bytes, initial);
  // Two folds suffice for any sum below 2^32 (at most 2^15 words here): the first leaves at most 0x1fffe.
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
