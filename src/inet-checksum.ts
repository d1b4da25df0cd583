/**
 * The Internet checksum (RFC 1071) and the IPv6 upper-layer pseudo-header (RFC 8200 §8.1), as pure
 * functions: the one implementation behind the tickle ACKs' IPv4 header and TCP checksums
 * (takeover/tickle.ts) and the Neighbor Advertisements' ICMPv6 checksum (vip/ndisc.ts).
 */

/**
 * The 16-bit one's-complement sum of `bytes` added to `initial`, not yet folded; an odd last byte
 * counts as its word's high byte (RFC 1071 pads with zero). `skip`: the offset of one word read as 0
 * (a checksum field while it is computed or verified).
 */
export function internetSum(bytes: Uint8Array, initial = 0, skip = -1): number {
  let sum = initial;
  for (let at = 0; at < bytes.length; at += 2) {
    if (at !== skip) sum += ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
  }
  return sum;
}

/** RFC 1071: the one's complement of the one's-complement sum, carries folded back in. */
export function internetChecksum(bytes: Uint8Array, initial = 0, skip = -1): number {
  let sum = internetSum(bytes, initial, skip);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The sum of RFC 8200 §8.1's pseudo-header: both 16-byte addresses, the 32-bit length, the next header. */
export function ipv6PseudoHeaderSum(src: Uint8Array, dst: Uint8Array, length: number, nextHeader: number): number {
  return internetSum(dst, internetSum(src)) + Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
}
