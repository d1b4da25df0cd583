/**
 * IPv4 arithmetic for the config's address rules: subnets, their network and broadcast addresses,
 * and the special ranges no member or VIP can use. Addresses are dotted quads the schema already
 * validated.
 */

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

export function inSubnet(ip: string, subnet: string, prefixLength: number): boolean {
  const m = mask(prefixLength);
  return (ipv4Number(ip) & m) >>> 0 === (ipv4Number(subnet) & m) >>> 0;
}

function networkAddress(ip: string, prefixLength: number): string {
  return ipv4Text((ipv4Number(ip) & mask(prefixLength)) >>> 0);
}

function broadcastAddress(ip: string, prefixLength: number): string {
  return ipv4Text((ipv4Number(ip) | ~mask(prefixLength)) >>> 0);
}

/**
 * What makes an address unusable as a member's or the VIP's own, or undefined when it is usable:
 * "this network" (0/8, RFC 1122 3.2.1.3), loopback (127/8), multicast (224/4) and the limited
 * broadcast. Loopback is reported separately by callers that allow it (an all-loopback test
 * cluster), so it comes as its own word.
 */
export function specialAddress(ip: string): 'unspecified' | 'loopback' | 'multicast' | 'broadcast' | undefined {
  const first = Number(ip.split('.')[0]);
  if (first === 0) return 'unspecified';
  if (first === 127) return 'loopback';
  if (first >= 224 && first <= 239) return 'multicast';
  if (ip === '255.255.255.255') return 'broadcast';
  return undefined;
}

/** The network or broadcast address of `subnet/prefixLength` that `ip` is, if any (/31 and /32 have none). */
export function subnetEdge(ip: string, subnet: string, prefixLength: number): 'network' | 'broadcast' | undefined {
  if (prefixLength > 30 || !inSubnet(ip, subnet, prefixLength)) return undefined;
  if (ip === networkAddress(subnet, prefixLength)) return 'network';
  if (ip === broadcastAddress(subnet, prefixLength)) return 'broadcast';
  return undefined;
}
