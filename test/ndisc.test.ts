/**
 * src/vip/ndisc.ts: the unsolicited Neighbor Advertisement for an IPv6 VIP, byte for byte, and the
 * parser for the advertisements and solicitations conflict detection watches. A real kernel taking
 * the advertisement (the neighbor cache of another namespace) is in test/vip-ipv6-netns.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildUnsolicitedNa, formatIpv6, icmpv6Checksum, ipv6ToBytes, parseNdFrame } from '../src/vip/ndisc';

const MAC = '02:00:00:00:00:01';
const VIP = 'fd00:77::100';

describe('buildUnsolicitedNa', () => {
  it('is an all-nodes advertisement from the VIP, Override set, with its MAC in the option', () => {
    const f = buildUnsolicitedNa(MAC, VIP);
    assert.equal(f.length, 14 + 40 + 32);
    assert.equal(f.subarray(0, 14).toString('hex'), '333300000001' + '020000000001' + '86dd');
    // version 6, payload 32, next header 58, hop limit 255, source the VIP, destination ff02::1
    assert.equal(f.subarray(14, 22).toString('hex'), '60000000' + '0020' + '3a' + 'ff');
    assert.equal(f.subarray(22, 38).toString('hex'), 'fd000077000000000000000000000100');
    assert.equal(f.subarray(38, 54).toString('hex'), 'ff020000000000000000000000000001');
    // type 136, code 0, then flags R=0 S=0 O=1, the target, option 2 (target link-layer) of 1 unit
    assert.equal(f[54], 136);
    assert.equal(f[55], 0);
    assert.equal(f.subarray(58, 62).toString('hex'), '20000000');
    assert.equal(f.subarray(62, 78).toString('hex'), 'fd000077000000000000000000000100');
    assert.equal(f.subarray(78, 86).toString('hex'), '0201' + '020000000001');
  });

  it('carries the RFC 4443 checksum: a known value, and the sum over everything with it is 0xffff', () => {
    const f = buildUnsolicitedNa(MAC, VIP);
    // Computed by hand from the pseudo-header and message above (one's-complement sum of 16-bit words).
    assert.equal(f.readUInt16BE(56), knownChecksum(f));
    const zeroed = Buffer.from(f);
    assert.equal(icmpv6Checksum(zeroed.subarray(14, 54), zeroed.subarray(54)), f.readUInt16BE(56));
  });

  it('rejects what is not a MAC or an IPv6 address', () => {
    assert.throws(() => buildUnsolicitedNa('02:00:00:00:00', VIP), TypeError);
    assert.throws(() => buildUnsolicitedNa(MAC, '10.77.0.100'), TypeError);
    assert.throws(() => buildUnsolicitedNa(MAC, 'fe80::1%eth0'), TypeError);
  });
});

describe('parseNdFrame', () => {
  it('reads back what buildUnsolicitedNa wrote', () => {
    assert.deepEqual(parseNdFrame(buildUnsolicitedNa(MAC, VIP)), {
      type: 'advertisement',
      frameMac: MAC,
      sourceIp: VIP,
      targetIp: VIP,
      linkMac: MAC,
      override: true,
      solicited: false,
      router: false,
    });
  });

  it('reads a solicitation (duplicate address detection: from ::, no link-layer option)', () => {
    const ns = dadSolicitation('02:00:00:00:00:09', VIP);
    assert.deepEqual(parseNdFrame(ns), {
      type: 'solicitation',
      frameMac: '02:00:00:00:00:09',
      sourceIp: '::',
      targetIp: VIP,
      linkMac: undefined,
      override: false,
      solicited: false,
      router: false,
    });
  });

  it('returns undefined for a bad checksum, another type, a routed hop limit, garbage; never throws', () => {
    const bad = buildUnsolicitedNa(MAC, VIP);
    bad[57] = (bad[57] ?? 0) ^ 1;
    assert.equal(parseNdFrame(bad), undefined, 'checksum');
    const hop = buildUnsolicitedNa(MAC, VIP);
    hop[21] = 64;
    assert.equal(parseNdFrame(hop), undefined, 'hop limit');
    const zeroOption = buildUnsolicitedNa(MAC, VIP);
    zeroOption[79] = 0;
    zeroOption.writeUInt16BE(0, 56);
    zeroOption.writeUInt16BE(icmpv6Checksum(zeroOption.subarray(14, 54), zeroOption.subarray(54)), 56);
    assert.equal(parseNdFrame(zeroOption), undefined, 'an option of length 0');
    for (let n = 0; n < 86; n++) assert.equal(parseNdFrame(buildUnsolicitedNa(MAC, VIP).subarray(0, n)), undefined);
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.alloc(90);
      for (let j = 0; j < junk.length; j++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        junk[j] = seed >>> 24;
      }
      junk.writeUInt16BE(0x86dd, 12);
      parseNdFrame(junk);
    }
  });

  it('skips a VLAN tag left in the frame', () => {
    const plain = buildUnsolicitedNa(MAC, VIP);
    const tagged = Buffer.concat([plain.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x0a]), plain.subarray(12)]);
    assert.equal(parseNdFrame(tagged)?.targetIp, VIP);
  });

  it('formats and parses IPv6 addresses canonically', () => {
    assert.equal(formatIpv6(ipv6ToBytes('FD00:0077:0:0:0:0:0:0100')), VIP);
    assert.equal(formatIpv6(ipv6ToBytes('::')), '::');
  });
});

/** A duplicate-address-detection solicitation: from ::, to the solicited-node group, no options. */
function dadSolicitation(mac: string, target: string): Buffer {
  const f = Buffer.alloc(14 + 40 + 24);
  Buffer.from('3333ff000100', 'hex').copy(f, 0);
  Buffer.from(mac.split(':').map((h) => parseInt(h, 16))).copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(0x60000000, 14);
  f.writeUInt16BE(24, 18);
  f[20] = 58;
  f[21] = 255;
  Buffer.from('ff0200000000000000000001ff000100', 'hex').copy(f, 38);
  f[54] = 135;
  ipv6ToBytes(target).copy(f, 62);
  f.writeUInt16BE(icmpv6Checksum(f.subarray(14, 54), f.subarray(54)), 56);
  return f;
}

/** The checksum written out the long way, word by word, to check icmpv6Checksum against. */
function knownChecksum(f: Buffer): number {
  const words: number[] = [];
  for (let i = 22; i < 54; i += 2) words.push(f.readUInt16BE(i)); // source and destination
  words.push(0, 32, 0, 58); // upper-layer length (32-bit) and next header (32-bit)
  for (let i = 54; i < 86; i += 2) words.push(i === 56 ? 0 : f.readUInt16BE(i));
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return 0xffff - sum;
}
