/**
 * Classic BPF programs (the `struct sock_filter` arrays SO_ATTACH_FILTER takes) that drop hostile
 * traffic in the kernel, before it is queued on a socket and long before JavaScript sees it:
 *  - udpSourceFilter: the election's UDP socket keeps only datagrams from the configured peers;
 *  - arpSenderFilter: the packet socket keeps only ARP frames that claim the VIP, so a LAN full of
 *    ARP never wakes the event loop, on backups (which ignore every frame) included.
 *
 * Pure functions returning bytes, tested byte for byte (test/bpf.test.ts); the native addon attaches
 * them (src/native/addon.ts) and test/native-filters-netns.test.ts checks them against a real kernel.
 * The instruction set and the semantics of the return value are in the kernel's
 * Documentation/networking/filter.rst; the constants below are those of linux/filter.h and bpf_common.h.
 */
import { isIPv4 } from 'node:net';
import { endianness } from 'node:os';

// Instruction classes, sizes, modes and operands (linux/bpf_common.h).
const BPF_LD = 0x00;
const BPF_JMP = 0x05;
const BPF_RET = 0x06;
const BPF_W = 0x00;
const BPF_H = 0x08;
const BPF_ABS = 0x20;
const BPF_JEQ = 0x10;
const BPF_K = 0x00;

/** A = the 32-bit word at offset k, read in network byte order (big-endian), as every BPF load is. */
export const LD_W_ABS = BPF_LD | BPF_W | BPF_ABS;
/** A = the 16-bit half-word at offset k, network byte order. */
export const LD_H_ABS = BPF_LD | BPF_H | BPF_ABS;
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

/** "10.0.0.1" as the number a BPF word load of those four bytes yields (0x0a000001). */
function ipv4ToWord(ip: string): number {
  if (typeof ip !== 'string' || !isIPv4(ip)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((word, part) => word * 256 + Number(part), 0);
}
