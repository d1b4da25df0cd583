/**
 * IPv6 Neighbor Discovery over Ethernet as bytes (RFC 4861): the unsolicited Neighbor Advertisement
 * vipd sends for an IPv6 VIP on takeover (what gratuitous ARP is to IPv4), and the parser for the
 * Neighbor Advertisements and Solicitations it watches for conflicts. Pure functions, no sockets, so
 * the bytes are tested exactly, as arp.ts is.
 */
import ipaddr from 'ipaddr.js';
import { internetChecksum, ipv6PseudoHeaderSum } from '../inet-checksum';
import { etherPayload, formatMac, macToBytes } from './arp';

export const ETHERTYPE_IPV6 = 0x86dd;
const ETH_HEADER = 14;
const IPV6_HEADER = 40;
export const NEXT_HEADER_ICMPV6 = 58;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;
/** Type, code, checksum, flags or reserved (4 + 4 bytes), then the 16-byte target address. */
const ND_FIXED = 24;
const OPTION_SOURCE_LINK_LAYER = 1;
const OPTION_TARGET_LINK_LAYER = 2;
/** RFC 4861 §7.1.2: a receiver drops ND with any other hop limit (it proves the sender is on-link). */
const HOP_LIMIT = 255;
const FLAG_ROUTER = 0x80000000;
const FLAG_SOLICITED = 0x40000000;
const FLAG_OVERRIDE = 0x20000000;

/** ff02::1, the all-nodes group, and the Ethernet group it maps to (RFC 2464 §7: 33:33 + last 4 bytes). */
export const ALL_NODES = 'ff02::1';
const ALL_NODES_MAC = '33:33:00:00:00:01';

/** The offset of the ND message's target address in an untagged frame (for the kernel filter). */
export const ND_TARGET_OFFSET = ETH_HEADER + IPV6_HEADER + 8;
/** The offset of the ICMPv6 type in an untagged frame. */
export const ICMPV6_TYPE_OFFSET = ETH_HEADER + IPV6_HEADER;
/** The offset of the IPv6 next-header field in an untagged frame. */
export const NEXT_HEADER_OFFSET = ETH_HEADER + 6;

export interface NdPacket {
  readonly type: 'advertisement' | 'solicitation';
  /** The Ethernet source of the frame. */
  readonly frameMac: string;
  /** The IPv6 source; '::' for a solicitation sent by duplicate address detection. */
  readonly sourceIp: string;
  readonly targetIp: string;
  /** The link-layer address option (target's for an advertisement, source's for a solicitation). */
  readonly linkMac: string | undefined;
  readonly override: boolean;
  readonly solicited: boolean;
  readonly router: boolean;
}

/** "fd00::1" to 16 bytes; throws TypeError on anything else (our own, already validated, input). */
export function ipv6ToBytes(ip: string): Buffer {
  if (!ipaddr.IPv6.isValid(ip) || ip.includes('%')) throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  return Buffer.from(ipaddr.IPv6.parse(ip).toByteArray());
}

/** 16 bytes to the canonical (RFC 5952) text: "fd00::1". */
export function formatIpv6(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

/**
 * The unsolicited Neighbor Advertisement of RFC 4861 §7.2.6 announcing that `ip` is at `mac`: to
 * all nodes, from the VIP itself, Override set (so every receiver replaces a cached entry with this
 * MAC, and a STALE or REACHABLE entry for the old holder is overwritten), Solicited clear (it
 * answers nobody, so receivers mark the entry STALE and confirm it on use), Router clear (a
 * control-plane VIP is not a router), with the Target Link-Layer Address option. keepalived's
 * ndisc.c sends the same message for an IPv6 virtual address.
 */
export function buildUnsolicitedNa(mac: string, ip: string): Buffer {
  const source = macToBytes(mac);
  const target = ipv6ToBytes(ip);
  const icmpLength = ND_FIXED + 8;
  const frame = Buffer.alloc(ETH_HEADER + IPV6_HEADER + icmpLength);
  macToBytes(ALL_NODES_MAC).copy(frame, 0);
  source.copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_IPV6, 12);
  const ip6 = ETH_HEADER;
  frame.writeUInt32BE(0x60000000, ip6); // version 6, traffic class 0, flow label 0
  frame.writeUInt16BE(icmpLength, ip6 + 4);
  frame.writeUInt8(NEXT_HEADER_ICMPV6, ip6 + 6);
  frame.writeUInt8(HOP_LIMIT, ip6 + 7);
  target.copy(frame, ip6 + 8);
  ipv6ToBytes(ALL_NODES).copy(frame, ip6 + 24);
  const icmp = ip6 + IPV6_HEADER;
  frame.writeUInt8(ICMPV6_NEIGHBOR_ADVERTISEMENT, icmp);
  frame.writeUInt8(0, icmp + 1);
  frame.writeUInt32BE(FLAG_OVERRIDE, icmp + 4);
  target.copy(frame, icmp + 8);
  frame.writeUInt8(OPTION_TARGET_LINK_LAYER, icmp + 24);
  frame.writeUInt8(1, icmp + 25); // length in units of 8 bytes
  source.copy(frame, icmp + 26);
  frame.writeUInt16BE(icmpv6Checksum(frame.subarray(ip6, ip6 + IPV6_HEADER), frame.subarray(icmp)), icmp + 2);
  return frame;
}

/**
 * The ICMPv6 checksum (RFC 4443 §2.3): the one's-complement sum over the pseudo-header of RFC 8200
 * §8.1 (source, destination, upper-layer length, next header) and the message with its checksum
 * field read as zero.
 */
export function icmpv6Checksum(ipv6Header: Uint8Array, message: Uint8Array): number {
  const pseudo = ipv6PseudoHeaderSum(
    ipv6Header.subarray(8, 24),
    ipv6Header.subarray(24, 40),
    message.length,
    NEXT_HEADER_ICMPV6,
  );
  return internetChecksum(message, pseudo, 2);
}

/**
 * The Neighbor Advertisement or Solicitation in an Ethernet frame, or undefined for anything else
 * (short, not IPv6, not ICMPv6 without extension headers, another ICMPv6 type, a hop limit other
 * than 255, a bad checksum). Never throws: the input comes from the wire.
 */
export function parseNdFrame(frame: Uint8Array): NdPacket | undefined {
  const eth = etherPayload(frame);
  if (eth === undefined) return undefined;
  const { view, ethertype, payload: ip6 } = eth;
  if (ethertype !== ETHERTYPE_IPV6 || frame.length < ip6 + IPV6_HEADER) return undefined;
  if (view.getUint8(ip6) >>> 4 !== 6) return undefined;
  if (view.getUint8(ip6 + 6) !== NEXT_HEADER_ICMPV6 || view.getUint8(ip6 + 7) !== HOP_LIMIT) return undefined;
  const payload = view.getUint16(ip6 + 4);
  const icmp = ip6 + IPV6_HEADER;
  if (payload < ND_FIXED || frame.length < icmp + payload) return undefined;
  const message = frame.subarray(icmp, icmp + payload);
  const type = view.getUint8(icmp);
  if (type !== ICMPV6_NEIGHBOR_ADVERTISEMENT && type !== ICMPV6_NEIGHBOR_SOLICITATION) return undefined;
  if (view.getUint8(icmp + 1) !== 0) return undefined;
  if (icmpv6Checksum(frame.subarray(ip6, icmp), message) !== view.getUint16(icmp + 2)) return undefined;
  const flags = view.getUint32(icmp + 4);
  const wanted = type === ICMPV6_NEIGHBOR_ADVERTISEMENT ? OPTION_TARGET_LINK_LAYER : OPTION_SOURCE_LINK_LAYER;
  let linkMac: string | undefined;
  // Options: type, length in 8-byte units (0 is invalid: RFC 4861 §4.6 says drop the packet).
  for (let at = ND_FIXED; at + 2 <= payload; ) {
    const optionType = message[at] ?? 0;
    const units = message[at + 1] ?? 0;
    if (units === 0 || at + units * 8 > payload) return undefined;
    if (optionType === wanted && units === 1) linkMac = formatMac(message.subarray(at + 2, at + 8));
    at += units * 8;
  }
  const advertisement = type === ICMPV6_NEIGHBOR_ADVERTISEMENT;
  return {
    type: advertisement ? 'advertisement' : 'solicitation',
    frameMac: formatMac(frame.subarray(6, 12)),
    sourceIp: formatIpv6(frame.subarray(ip6 + 8, ip6 + 24)),
    targetIp: formatIpv6(message.subarray(8, 24)),
    linkMac,
    override: advertisement && (flags & FLAG_OVERRIDE) !== 0,
    solicited: advertisement && (flags & FLAG_SOLICITED) !== 0,
    router: advertisement && (flags & FLAG_ROUTER) !== 0,
  };
}
