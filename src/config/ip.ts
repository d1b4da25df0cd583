/**
 * IP arithmetic for the config's address rules, both families: subnets, their edge addresses, and
 * the special ranges no member or VIP can use. Addresses are ones the schema already validated;
 * IPv6 goes through ipaddr.js (parsing and prefix matching of the compressed text forms).
 */
import { isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { canonicalIpv6 } from './host-port';

/** The address as an unsigned 32-bit number. */
function ipv4Number(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function ipv4Text(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** The mask of a prefix length as an unsigned 32-bit number (/0 is 0). */
function mask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** 4 or 6, by the text's form (the schema allows nothing else). */
export function familyOf(ip: string): 4 | 6 {
  return isIPv6(ip) ? 6 : 4;
}

/** `ip` is inside `subnet/prefixLength`; never across families. */
export function inSubnet(ip: string, subnet: string, prefixLength: number): boolean {
  if (familyOf(ip) !== familyOf(subnet)) return false;
  if (familyOf(ip) === 6) return ipaddr.IPv6.parse(ip).match(ipaddr.IPv6.parse(subnet), prefixLength);
  const m = mask(prefixLength);
  return (ipv4Number(ip) & m) >>> 0 === (ipv4Number(subnet) & m) >>> 0;
}

function networkAddress(ip: string, prefixLength: number): string {
  return ipv4Text((ipv4Number(ip) & mask(prefixLength)) >>> 0);
}

function broadcastAddress(ip: string, prefixLength: number): string {
  return ipv4Text((ipv4Number(ip) | ~mask(prefixLength)) >>> 0);
}

export type SpecialKind = 'unspecified' | 'loopback' | 'multicast' | 'broadcast' | 'link-local';

/**
 * What makes an address unusable as a member's or the VIP's own, or undefined when it is usable:
 * "this network" (0/8, RFC 1122 3.2.1.3; ::), loopback (127/8; ::1), multicast (224/4; ff00::/8),
 * the limited broadcast, and IPv6 link-local (fe80::/10: it needs a zone, "%eth0", to mean anything,
 * and kubeadm's endpoint cannot carry one). Loopback is reported separately by callers that allow it
 * (an all-loopback test cluster), so it comes as its own word.
 */
export function specialAddress(ip: string): SpecialKind | undefined {
  if (familyOf(ip) === 6) {
    const range = ipaddr.IPv6.parse(ip).range();
    if (range === 'unspecified' || range === 'loopback' || range === 'multicast') return range;
    if (range === 'linkLocal') return 'link-local';
    return undefined;
  }
  const first = Number(ip.split('.')[0]);
  if (first === 0) return 'unspecified';
  if (first === 127) return 'loopback';
  if (first >= 224 && first <= 239) return 'multicast';
  if (ip === '255.255.255.255') return 'broadcast';
  return undefined;
}

/**
 * The network or broadcast address of `subnet/prefixLength` that `ip` is, if any (/31 and /32 have
 * none). IPv6 has no broadcast, but its network address is the Subnet-Router anycast address
 * (RFC 4291 §2.6.1), which routers answer: 'network' for it (/127 and /128 have none, RFC 6164).
 */
export function subnetEdge(ip: string, subnet: string, prefixLength: number): 'network' | 'broadcast' | undefined {
  if (familyOf(ip) === 6) {
    if (prefixLength > 126 || !inSubnet(ip, subnet, prefixLength)) return undefined;
    const network = ipaddr.IPv6.networkAddressFromCIDR(`${subnet}/${prefixLength}`).toString();
    return ipaddr.IPv6.parse(ip).toString() === network ? 'network' : undefined;
  }
  if (prefixLength > 30 || !inSubnet(ip, subnet, prefixLength)) return undefined;
  if (ip === networkAddress(subnet, prefixLength)) return 'network';
  if (ip === broadcastAddress(subnet, prefixLength)) return 'broadcast';
  return undefined;
}

/** The same address in both texts ("fd00::0100" and "fd00::100"); never across families. */
export function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const canonical = familyOf(a) === 6 && familyOf(b) === 6 ? canonicalIpv6(a) : undefined;
  return canonical !== undefined && canonical === canonicalIpv6(b);
}

/** A wildcard listener address: "0.0.0.0" or "::". */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}
