/**
 * The classic BPF programs of src/native/bpf.ts, byte for byte, and run on sample packets by a
 * small interpreter of the instructions they use. test/native-filters-netns.test.ts runs them in
 * the kernel.
 */
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { describe, it } from 'node:test';
import {
  arpSenderFilter,
  INSN_BYTES,
  MAX_UDP_SOURCES,
  MAX_UDP6_SOURCES,
  ndTargetFilter,
  SKF_NET_OFF,
  udp6SourceFilter,
  udpSourceFilter,
} from '../src/native/bpf';
import { buildGratuitousArp } from '../src/vip/arp';
import { buildUnsolicitedNa, ipv6ToBytes } from '../src/vip/ndisc';

/**
 * Instructions written as `code jt jf k` in x86-64's (little-endian) layout of struct sock_filter,
 * swapped to this host's order if it is big-endian.
 */
function program(text: string): Buffer {
  const bytes = Buffer.from(text.replace(/\s+/g, ''), 'hex');
  if (endianness() === 'BE') {
    for (let at = 0; at < bytes.length; at += INSN_BYTES) {
      bytes.subarray(at, at + 2).reverse();
      bytes.subarray(at + 4, at + 8).reverse();
    }
  }
  return bytes;
}

const LD_SRC = '2000 00 00 0c00f0ff'; // ld [SKF_NET_OFF + 12]: k = 0xfff0000c
const DROP = '0600 00 00 00000000'; // ret #0
const ACCEPT = '0600 00 00 ffffffff'; // ret #0xffffffff

/**
 * Runs a program of the instructions bpf.ts emits (ld/ldh abs, jeq, ret) on a packet, as the kernel
 * would: returns the bytes to keep, 0 also when a load falls outside the packet. `net` is the offset
 * of the network header, for SKF_NET_OFF loads.
 */
function run(prog: Buffer, packet: Buffer, net = 0): number {
  const le = endianness() === 'LE';
  let a = 0;
  for (let pc = 0, steps = 0; pc * INSN_BYTES < prog.length && steps < 4096; pc++, steps++) {
    const at = pc * INSN_BYTES;
    const code = le ? prog.readUInt16LE(at) : prog.readUInt16BE(at);
    const jt = prog.readUInt8(at + 2);
    const jf = prog.readUInt8(at + 3);
    const k = le ? prog.readUInt32LE(at + 4) : prog.readUInt32BE(at + 4);
    const offset = k >= SKF_NET_OFF ? net + k - SKF_NET_OFF : k;
    switch (code) {
      case 0x20:
      case 0x28:
      case 0x30: {
        const size = code === 0x20 ? 4 : code === 0x28 ? 2 : 1;
        if (offset + size > packet.length) return 0;
        a = size === 4 ? packet.readUInt32BE(offset) : size === 2 ? packet.readUInt16BE(offset) : packet[offset]!;
        break;
      }
      case 0x15:
        pc += a === k ? jt : jf;
        break;
      case 0x06:
        return k;
      default:
        throw new Error(`opcode 0x${code.toString(16)} at ${pc} is not interpreted here`);
    }
  }
  throw new Error('ran off the end of the program');
}

/** An IPv4 header (20 bytes) from `src` plus an 8-byte UDP header, as a UDP socket's filter sees it. */
function udpPacket(src: string): Buffer {
  const packet = Buffer.alloc(28);
  packet[0] = 0x45;
  Buffer.from(src.split('.').map(Number)).copy(packet, 12);
  return packet;
}

describe('udpSourceFilter', () => {
  it('one address: load the IPv4 source, compare, drop, accept', () => {
    assert.deepEqual(
      udpSourceFilter(['10.77.0.2']),
      program(`
      ${LD_SRC}
      1500 01 00 02004d0a
      ${DROP}
      ${ACCEPT}`),
    );
  });

  it('three addresses: each compare jumps over the rest to the accept', () => {
    assert.deepEqual(
      udpSourceFilter(['10.77.0.1', '10.77.0.2', '192.168.10.13']),
      program(`
      ${LD_SRC}
      1500 03 00 01004d0a
      1500 02 00 02004d0a
      1500 01 00 0d0aa8c0
      ${DROP}
      ${ACCEPT}`),
    );
  });

  it('accepts exactly the listed sources', () => {
    const prog = udpSourceFilter(['10.77.0.1', '10.77.0.2', '192.168.10.13']);
    for (const src of ['10.77.0.1', '10.77.0.2', '192.168.10.13']) {
      assert.equal(run(prog, udpPacket(src)), 0xffffffff, src);
    }
    for (const src of ['10.77.0.3', '0.0.0.0', '255.255.255.255', '2.0.77.10']) {
      assert.equal(run(prog, udpPacket(src)), 0, src);
    }
  });

  it('compiles a duplicate once; an empty list drops everything', () => {
    assert.deepEqual(udpSourceFilter(['10.77.0.2', '10.77.0.2']), udpSourceFilter(['10.77.0.2']));
    assert.deepEqual(udpSourceFilter([]), program(DROP));
    assert.equal(run(udpSourceFilter([]), udpPacket('10.77.0.2')), 0);
  });

  it(`takes up to ${MAX_UDP_SOURCES} addresses, the last still reaching the accept`, () => {
    const many = Array.from({ length: MAX_UDP_SOURCES }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const prog = udpSourceFilter(many);
    assert.equal(prog.length, (MAX_UDP_SOURCES + 3) * INSN_BYTES);
    assert.equal(run(prog, udpPacket(many[0]!)), 0xffffffff);
    assert.equal(run(prog, udpPacket(many[MAX_UDP_SOURCES - 1]!)), 0xffffffff);
    assert.equal(run(prog, udpPacket('10.0.1.0')), 0);
  });

  it('rejects what is not an IPv4 address, and too many addresses', () => {
    for (const bad of ['10.77.0', '10.77.0.256', '010.77.0.1', '10.77.0.1 ', '::1', 'cp1', '']) {
      assert.throws(() => udpSourceFilter(['10.77.0.1', bad]), TypeError, JSON.stringify(bad));
    }
    assert.throws(() => udpSourceFilter([42 as unknown as string]), TypeError);
    const tooMany = Array.from({ length: MAX_UDP_SOURCES + 1 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    assert.throws(() => udpSourceFilter(tooMany), { name: 'RangeError', message: /at most 200 addresses, not 201/ });
  });
});

describe('arpSenderFilter', () => {
  it('checks ethertype, hardware and protocol types and lengths, then the sender address', () => {
    assert.deepEqual(
      arpSenderFilter('10.77.0.100'),
      program(`
      2800 00 00 0c000000
      1500 00 07 06080000
      2000 00 00 0e000000
      1500 00 05 00080100
      2800 00 00 12000000
      1500 00 03 04060000
      2000 00 00 1c000000
      1500 00 01 64004d0a
      ${ACCEPT}
      ${DROP}`),
    );
  });

  it('accepts both gratuitous forms claiming the address, and nothing else', () => {
    const prog = arpSenderFilter('10.77.0.100');
    const mac = '02:00:00:00:00:01';
    assert.equal(run(prog, buildGratuitousArp('request', mac, '10.77.0.100')), 0xffffffff);
    assert.equal(run(prog, buildGratuitousArp('reply', mac, '10.77.0.100')), 0xffffffff);
    assert.equal(run(prog, buildGratuitousArp('request', mac, '10.77.0.101')), 0);
    // A who-has for the address from someone else: its target, not its sender.
    const whoHas = buildGratuitousArp('request', mac, '10.77.0.3');
    Buffer.from([10, 77, 0, 100]).copy(whoHas, 38);
    assert.equal(run(prog, whoHas), 0);
    const notIpv4 = buildGratuitousArp('request', mac, '10.77.0.100');
    notIpv4.writeUInt16BE(0x86dd, 16);
    assert.equal(run(prog, notIpv4), 0);
    const notArp = buildGratuitousArp('request', mac, '10.77.0.100');
    notArp.writeUInt16BE(0x0800, 12);
    assert.equal(run(prog, notArp), 0);
    assert.equal(run(prog, buildGratuitousArp('request', mac, '10.77.0.100').subarray(0, 30)), 0, 'truncated');
  });

  it('rejects what is not an IPv4 address', () => {
    for (const bad of ['10.77.0.100/24', '10.77.0', 'fe80::1', '']) {
      assert.throws(() => arpSenderFilter(bad), TypeError, JSON.stringify(bad));
    }
  });
});

/** An IPv6 header (40 bytes) from `src` plus an 8-byte UDP header, as an AF_INET6 UDP socket's filter sees it. */
function udp6Packet(src: string): Buffer {
  const packet = Buffer.alloc(48);
  packet[0] = 0x60;
  ipv6ToBytes(src).copy(packet, 8);
  return packet;
}

describe('udp6SourceFilter', () => {
  it('compares the four words of the IPv6 source; a mismatch in any word goes to the next address', () => {
    const prog = udp6SourceFilter(['fd00:77::11', 'fd00:77::12']);
    assert.equal(prog.length, (2 * 8 + 2) * INSN_BYTES);
    for (const src of ['fd00:77::11', 'fd00:77::12']) assert.equal(run(prog, udp6Packet(src), 0), 0xffffffff, src);
    for (const src of ['fd00:77::13', 'fd01:77::11', 'fd00:77::1:11', '::1', 'fe80::11']) {
      assert.equal(run(prog, udp6Packet(src), 0), 0, src);
    }
  });

  it(`takes up to ${MAX_UDP6_SOURCES} addresses, the first and last reaching the accept; the same address twice once`, () => {
    const many = Array.from({ length: MAX_UDP6_SOURCES }, (_, i) => `fd00::${(i + 1).toString(16)}`);
    const prog = udp6SourceFilter(many);
    assert.equal(run(prog, udp6Packet(many[0]!), 0), 0xffffffff);
    assert.equal(run(prog, udp6Packet(many[MAX_UDP6_SOURCES - 1]!), 0), 0xffffffff);
    assert.equal(run(prog, udp6Packet('fd00::ff'), 0), 0);
    assert.equal(udp6SourceFilter(['fd00::1', 'fd00:0::1']).length, (8 + 2) * INSN_BYTES);
    assert.equal(run(udp6SourceFilter([]), udp6Packet('fd00::1'), 0), 0);
    assert.throws(() => udp6SourceFilter([...many, 'fd00::ff']), RangeError);
    for (const bad of ['10.0.0.1', 'fe80::1%eth0', 'fd00::/64', '']) {
      assert.throws(() => udp6SourceFilter([bad]), TypeError, JSON.stringify(bad));
    }
  });
});

describe('ndTargetFilter', () => {
  const mac = '02:00:00:00:00:01';
  const vip = 'fd00:77::100';

  it('accepts an advertisement or a solicitation about the address, nothing else', () => {
    const prog = ndTargetFilter(vip);
    assert.equal(run(prog, buildUnsolicitedNa(mac, vip)), 0xffffffff);
    const solicitation = buildUnsolicitedNa(mac, vip);
    solicitation[54] = 135;
    assert.equal(run(prog, solicitation), 0xffffffff);
    assert.equal(run(prog, buildUnsolicitedNa(mac, 'fd00:77::101')), 0, 'another target');
    const echo = buildUnsolicitedNa(mac, vip);
    echo[54] = 128;
    assert.equal(run(prog, echo), 0, 'another ICMPv6 type');
    const routed = buildUnsolicitedNa(mac, vip);
    routed[21] = 64;
    assert.equal(run(prog, routed), 0, 'hop limit not 255: not from this link');
    const udp = buildUnsolicitedNa(mac, vip);
    udp[20] = 17;
    assert.equal(run(prog, udp), 0, 'not ICMPv6');
    const arp = buildUnsolicitedNa(mac, vip);
    arp.writeUInt16BE(0x0806, 12);
    assert.equal(run(prog, arp), 0, 'not IPv6');
    assert.equal(run(prog, buildUnsolicitedNa(mac, vip).subarray(0, 70)), 0, 'truncated');
  });

  it('rejects what is not an IPv6 address', () => {
    for (const bad of ['10.77.0.100', 'fd00::1/64', '']) assert.throws(() => ndTargetFilter(bad), TypeError);
  });
});
