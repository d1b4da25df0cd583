/**
 * Classic BPF programs (the `struct sock_filter` arrays SO_ATTACH_FILTER takes) that drop hostile
 * traffic in the kernel, before it is queued on a socket and long before JavaScript sees it:
 *  - udpSourceFilter: the election's UDP socket keeps only datagrams from the configured peers;
 *  - udp6SourceFilter: the same for an IPv6 election socket;
 *  - arpSenderFilter: the packet socket keeps only ARP frames that claim the VIP, so a LAN full of
 *    ARP never wakes the event loop, on backups (which ignore every frame) included;
 *  - ndTargetFilter: the same for an IPv6 VIP: Neighbor Advertisements and Solicitations about it.
 *
 * Pure functions returning bytes, tested byte for byte (test/bpf.test.ts); the native addon attaches
 * them (src/native/addon.ts) and test/native-filters-netns.test.ts checks them against a real kernel.
 * The instruction set and the semantics of the return value are in the kernel's
 * Documentation/networking/filter.rst; the constants below are those of linux/filter.h and bpf_common.h.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';

// Instruction classes, sizes, modes and operands (linux/bpf_common.h).
const BPF_LD = 0x00;
const BPF_JMP = 0x05;
const BPF_RET = 0x06;
const BPF_W = 0x00;
const BPF_H = 0x08;
const BPF_B = 0x10;
const BPF_ABS = 0x20;
const BPF_JEQ = 0x10;
const BPF_K = 0x00;

/** A = the 32-bit word at offset k, read in network byte order (big-endian), as every BPF load is. */
export const LD_W_ABS = BPF_LD | BPF_W | BPF_ABS;
/** A = the 16-bit half-word at offset k, network byte order. */
export const LD_H_ABS = BPF_LD | BPF_H | BPF_ABS;
/** A = the byte at offset k. */
export const LD_B_ABS = BPF_LD | BPF_B | BPF_ABS;
/** pc += (A == k) ? jt : jf, counted from the next instruction. */
export const JEQ_K = BPF_JMP | BPF_JEQ | BPF_K;
/** Stop; k is how many bytes of the packet to keep: 0 drops it. */
export const RET_K = BPF_RET | BPF_K;

/**
 * Negative offsets address the packet from its network (IP) header rather than from skb->data
 * (linux/filter.h). A UDP socket's filter runs with skb->data at the UDP header, so the IPv4 source
 * address (IP header offset 12) can only be reached this way. As a u32, since `k` is unsigned.
 */
export const SKF_NET_OFF = -0x100000 >>> 0;

/** Keep the whole packet: the return value is a byte count and the kernel trims to min(len, k). */
export const ACCEPT = 0xffffffff;
export const DROP = 0;

/** The kernel's limit (BPF_MAXINSNS) on a classic program's length. */
export const BPF_MAX_INSNS = 4096;
/**
 * A conditional jump reaches at most 255 instructions ahead (jt and jf are u8), and every address
 * jumps over the ones after it to the accept at the end. 200 is far above any control plane.
 */
export const MAX_UDP_SOURCES = 200;

/** Bytes per instruction: struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }. */
export const INSN_BYTES = 8;

export interface Insn {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

export function insn(code: number, jt: number, jf: number, k: number): Insn {
  return { code, jt, jf, k };
}

/**
 * Encodes instructions as the kernel reads them: a C struct in host byte order (little-endian on
 * x86-64 and arm64). Only the loads' data is big-endian, and that is the kernel's business.
 */
export function encodeProgram(program: readonly Insn[]): Buffer {
  if (program.length === 0 || program.length > BPF_MAX_INSNS) {
    throw new RangeError(`a classic BPF program has 1 to ${BPF_MAX_INSNS} instructions, not ${program.length}`);
  }
  const le = endianness() === 'LE';
  const out = Buffer.alloc(program.length * INSN_BYTES);
  program.forEach(({ code, jt, jf, k }, i) => {
    const at = i * INSN_BYTES;
    if (le) out.writeUInt16LE(code, at);
    else out.writeUInt16BE(code, at);
    out.writeUInt8(jt, at + 2);
    out.writeUInt8(jf, at + 3);
    if (le) out.writeUInt32LE(k >>> 0, at + 4);
    else out.writeUInt32BE(k >>> 0, at + 4);
  });
  return out;
}

/**
 * For SO_ATTACH_FILTER on an AF_INET UDP socket: accepts a datagram only if its IPv4 source address
 * is one of `addresses`, drops everything else (the kernel counts those in `Udp: InErrors`).
 *
 *   ld  [SKF_NET_OFF + 12]          ; A = IPv4 source address
 *   jeq #addresses[0], accept, 0
 *   ...                             ; one compare per address
 *   ret #0                          ; no match: drop
 *   accept: ret #0xffffffff
 *
 * An empty list is a single `ret #0`: a socket that hears nobody, which is what it says. Duplicates
 * are compiled once. Throws TypeError on anything but a dotted-quad IPv4 address, RangeError on more
 * than MAX_UDP_SOURCES addresses.
 */
export function udpSourceFilter(addresses: readonly string[]): Buffer {
  const unique = [...new Set(addresses)];
  if (unique.length > MAX_UDP_SOURCES) {
    throw new RangeError(`a UDP source filter takes at most ${MAX_UDP_SOURCES} addresses, not ${unique.length}`);
  }
  const words = unique.map(ipv4ToWord);
  if (words.length === 0) return encodeProgram([insn(RET_K, 0, 0, DROP)]);
  const program: Insn[] = [insn(LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) >>> 0)];
  // The compare at position i (0-based) is followed by n - 1 - i compares and the drop.
  words.forEach((word, i) => {
    program.push(insn(JEQ_K, words.length - i, 0, word));
  });
  program.push(insn(RET_K, 0, 0, DROP), insn(RET_K, 0, 0, ACCEPT));
  return encodeProgram(program);
}

// Offsets in an Ethernet frame carrying ARP (RFC 826). A packet socket's filter sees the frame from
// the destination MAC; a VLAN tag is not in the data: the kernel moves it to skb metadata
// (skb_vlan_untag in __netif_receive_skb_core) before packet sockets and their filters run.
const ETH_TYPE = 12;
const ARP_HTYPE_PTYPE = 14;
const ARP_HLEN_PLEN = 18;
const ARP_SENDER_IP = 28;
const ETHERTYPE_ARP = 0x0806;
/** htype 1 (Ethernet), ptype 0x0800 (IPv4) as one big-endian word. */
const ARP_ETHERNET_IPV4 = 0x0001_0800;
/** hlen 6, plen 4. */
const ARP_ADDR_LENGTHS = 0x0604;

/**
 * For the AF_PACKET socket bound to ETH_P_ARP: accepts only ARP-over-Ethernet frames for IPv4 whose
 * sender protocol address is `ip` (a frame claiming it, from another host or our own), drops the rest.
 * A frame too short for a load is dropped too: classic BPF aborts with 0 on an out-of-bounds load.
 *
 *   ldh [12]; jeq #0x0806, 0, drop           ; ethertype ARP
 *   ld  [14]; jeq #0x00010800, 0, drop       ; htype Ethernet, ptype IPv4
 *   ldh [18]; jeq #0x0604, 0, drop           ; hlen 6, plen 4
 *   ld  [28]; jeq #ip, 0, drop               ; sender protocol address
 *   ret #0xffffffff
 *   drop: ret #0
 */
export function arpSenderFilter(ip: string): Buffer {
  const word = ipv4ToWord(ip);
  const checks: Array<[load: number, offset: number, value: number]> = [
    [LD_H_ABS, ETH_TYPE, ETHERTYPE_ARP],
    [LD_W_ABS, ARP_HTYPE_PTYPE, ARP_ETHERNET_IPV4],
    [LD_H_ABS, ARP_HLEN_PLEN, ARP_ADDR_LENGTHS],
    [LD_W_ABS, ARP_SENDER_IP, word],
  ];
  const program: Insn[] = [];
  checks.forEach(([load, offset, value], i) => {
    // Past this compare: the remaining checks (two instructions each) and the accept.
    const toDrop = 2 * (checks.length - 1 - i) + 1;
    program.push(insn(load, 0, 0, offset), insn(JEQ_K, 0, toDrop, value));
  });
  program.push(insn(RET_K, 0, 0, ACCEPT), insn(RET_K, 0, 0, DROP));
  return encodeProgram(program);
}

/**
 * At most this many IPv6 sources: each takes 8 instructions (four word loads and compares), and the
 * first block's jump to the accept (8n - 7 instructions ahead) must stay within 255.
 */
export const MAX_UDP6_SOURCES = 32;

/**
 * udpSourceFilter for an AF_INET6 UDP socket: the IPv6 source address (header offset 8, 16 bytes)
 * compared as four words per address.
 *
 *   a0: ld [SKF_NET_OFF + 8];  jeq #a0w0, 0, a1
 *       ld [SKF_NET_OFF + 12]; jeq #a0w1, 0, a1
 *       ld [SKF_NET_OFF + 16]; jeq #a0w2, 0, a1
 *       ld [SKF_NET_OFF + 20]; jeq #a0w3, accept, a1
 *   a1: ...
 *       ret #0
 *   accept: ret #0xffffffff
 */
export function udp6SourceFilter(addresses: readonly string[]): Buffer {
  const unique = [...new Set(addresses.map((a) => ipv6Words(a).join(',')))];
  if (unique.length > MAX_UDP6_SOURCES) {
    throw new RangeError(`an IPv6 source filter takes at most ${MAX_UDP6_SOURCES} addresses, not ${unique.length}`);
  }
  if (unique.length === 0) return encodeProgram([insn(RET_K, 0, 0, DROP)]);
  const block = 8;
  const drop = unique.length * block;
  const program: Insn[] = [];
  unique.forEach((key, i) => {
    const words = key.split(',').map(Number);
    const next = (i + 1) * block;
    words.forEach((word, j) => {
      program.push(insn(LD_W_ABS, 0, 0, (SKF_NET_OFF + 8 + 4 * j) >>> 0));
      const here = program.length; // the jeq's own index; jumps count from the one after it
      const onMatch = j === 3 ? drop + 1 - (here + 1) : 0;
      program.push(insn(JEQ_K, onMatch, next - (here + 1), word));
    });
  });
  program.push(insn(RET_K, 0, 0, DROP), insn(RET_K, 0, 0, ACCEPT));
  return encodeProgram(program);
}

// Offsets in an Ethernet frame carrying IPv6 Neighbor Discovery (RFC 4861), no VLAN tag (as above).
const ETHERTYPE_IPV6 = 0x86dd;
const IPV6_NEXT_HEADER = 20;
const IPV6_HOP_LIMIT = 21;
const ICMPV6_TYPE = 54;
const ND_TARGET = 62;

/**
 * For the AF_PACKET socket bound to ETH_P_IPV6: accepts only ICMPv6 Neighbor Advertisements (136)
 * and Solicitations (135) with hop limit 255 whose target is `ip`, drops the rest.
 *
 *   ldh [12]; jeq #0x86dd, 0, drop            ; ethertype IPv6
 *   ldb [20]; jeq #58, 0, drop                ; next header ICMPv6 (no extension headers)
 *   ldb [21]; jeq #255, 0, drop               ; hop limit 255 (RFC 4861 §7.1)
 *   ldb [54]; jeq #136, target, 0             ; an advertisement
 *             jeq #135, 0, drop               ; or a solicitation
 *   target: ld [62]; jeq #w0, 0, drop ... ld [74]; jeq #w3, 0, drop
 *   ret #0xffffffff
 *   drop: ret #0
 */
export function ndTargetFilter(ip: string): Buffer {
  const words = ipv6Words(ip);
  const program: Insn[] = [];
  const total = 2 * 3 + 3 + 2 * 4 + 2;
  const dropAt = total - 1;
  const check = (load: number, offset: number, value: number) => {
    program.push(insn(load, 0, 0, offset));
    program.push(insn(JEQ_K, 0, dropAt - (program.length + 1), value));
  };
  check(LD_H_ABS, ETH_TYPE, ETHERTYPE_IPV6);
  check(LD_B_ABS, IPV6_NEXT_HEADER, 58);
  check(LD_B_ABS, IPV6_HOP_LIMIT, 255);
  program.push(insn(LD_B_ABS, 0, 0, ICMPV6_TYPE));
  program.push(insn(JEQ_K, 1, 0, 136));
  program.push(insn(JEQ_K, 0, dropAt - (program.length + 1), 135));
  words.forEach((word, j) => {
    check(LD_W_ABS, ND_TARGET + 4 * j, word);
  });
  program.push(insn(RET_K, 0, 0, ACCEPT), insn(RET_K, 0, 0, DROP));
  if (program.length !== total) throw new Error(`ndTargetFilter: ${program.length} instructions, expected ${total}`);
  return encodeProgram(program);
}

/** "fd00::1" as the four numbers BPF word loads of its 16 bytes yield. */
function ipv6Words(ip: string): number[] {
  if (typeof ip !== 'string' || !isIPv6(ip) || ip.includes('%')) {
    throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  }
  const bytes = ipaddr.IPv6.parse(ip).toByteArray();
  return [0, 4, 8, 12].map((at) => bytes.slice(at, at + 4).reduce((w, b) => w * 256 + b, 0));
}

/** "10.0.0.1" as the number a BPF word load of those four bytes yields (0x0a000001). */
function ipv4ToWord(ip: string): number {
  if (typeof ip !== 'string' || !isIPv4(ip)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((word, part) => word * 256 + Number(part), 0);
}
