import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildGratuitousArp,
  formatIpv4,
  formatMac,
  ipv4ToBytes,
  MIN_FRAME,
  macToBytes,
  parseArpFrame,
} from '../src/vip/arp';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const PAD = '00'.repeat(18);

// MAC 02:00:00:00:00:01 announcing 10.77.0.100 (0a 4d 00 64).
const REQUEST = hex(`
  ffffffffffff 020000000001 0806
  0001 0800 06 04 0001
  020000000001 0a4d0064
  000000000000 0a4d0064
  ${PAD}`);
const REPLY = hex(`
  ffffffffffff 020000000001 0806
  0001 0800 06 04 0002
  020000000001 0a4d0064
  020000000001 0a4d0064
  ${PAD}`);

describe('gratuitous ARP frames', () => {
  it('builds the request form byte for byte (RFC 5227 announcement)', () => {
    assert.deepEqual(buildGratuitousArp('request', '02:00:00:00:00:01', '10.77.0.100'), REQUEST);
  });

  it('builds the reply form byte for byte (RFC 5944 §4.6: target MAC = sender MAC)', () => {
    assert.deepEqual(buildGratuitousArp('reply', '02:00:00:00:00:01', '10.77.0.100'), REPLY);
  });

  it('pads to the Ethernet minimum and accepts an upper-case MAC', () => {
    const frame = buildGratuitousArp('request', 'AA:BB:CC:DD:EE:0F', '192.168.10.1');
    assert.equal(frame.length, MIN_FRAME);
    assert.deepEqual(frame.subarray(6, 12), hex('aabbccddee0f'));
    assert.deepEqual(frame.subarray(28, 32), hex('c0a80a01'));
    assert.deepEqual(frame.subarray(42), Buffer.alloc(18));
  });

  it('rejects bad input of its own callers', () => {
    assert.throws(() => buildGratuitousArp('request', '02:00:00:00:00', '10.0.0.1'), TypeError);
    assert.throws(() => buildGratuitousArp('request', '02:00:00:00:00:01', '10.0.0.256'), TypeError);
    assert.throws(() => buildGratuitousArp('request', '02:00:00:00:00:01', '10.0.0'), TypeError);
  });
});

describe('parseArpFrame', () => {
  it('reads back both gratuitous forms', () => {
    assert.deepEqual(parseArpFrame(REQUEST), {
      op: 'request',
      senderMac: '02:00:00:00:00:01',
      senderIp: '10.77.0.100',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.77.0.100',
    });
    assert.deepEqual(parseArpFrame(REPLY), {
      op: 'reply',
      senderMac: '02:00:00:00:00:01',
      senderIp: '10.77.0.100',
      targetMac: '02:00:00:00:00:01',
      targetIp: '10.77.0.100',
    });
  });

  it('parses an ordinary unpadded who-has (42 bytes), as veth delivers it', () => {
    const whoHas = hex(`
      ffffffffffff 0affee000102 0806
      0001 0800 06 04 0001
      0affee000102 0a4d0003
      000000000000 0a4d0064`);
    assert.equal(whoHas.length, 42);
    assert.deepEqual(parseArpFrame(whoHas), {
      op: 'request',
      senderMac: '0a:ff:ee:00:01:02',
      senderIp: '10.77.0.3',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.77.0.100',
    });
  });

  it('skips an 802.1Q tag left in the frame', () => {
    const tagged = Buffer.concat([REPLY.subarray(0, 12), hex('8100 0064'), REPLY.subarray(12)]);
    assert.equal(parseArpFrame(tagged)?.senderIp, '10.77.0.100');
  });

  it('parses a frame inside a larger buffer (a Buffer slice with an offset)', () => {
    const big = Buffer.concat([Buffer.alloc(7, 0xee), REPLY]);
    assert.equal(parseArpFrame(big.subarray(7))?.op, 'reply');
  });

  it('returns undefined for garbage, never throws', () => {
    const cases: Array<[string, Uint8Array]> = [
      ['empty', Buffer.alloc(0)],
      ['shorter than an Ethernet header', REQUEST.subarray(0, 13)],
      ['truncated ARP', REQUEST.subarray(0, 41)],
      ['IPv4, not ARP', Buffer.concat([REQUEST.subarray(0, 12), hex('0800'), REQUEST.subarray(14)])],
      ['truncated VLAN tag', Buffer.concat([REQUEST.subarray(0, 12), hex('8100 00')])],
      ['hardware type not Ethernet', patch(REQUEST, 14, '0006')],
      ['protocol not IPv4', patch(REQUEST, 16, '86dd')],
      ['hardware length not 6', patch(REQUEST, 18, '08')],
      ['protocol length not 4', patch(REQUEST, 19, '10')],
      ['unknown op (RARP request)', patch(REQUEST, 20, '0003')],
      ['op 0', patch(REQUEST, 20, '0000')],
    ];
    for (const [what, frame] of cases) assert.equal(parseArpFrame(frame), undefined, what);
    for (let i = 0; i < 2000; i++) {
      const random = Buffer.from(
        Array.from({ length: Math.floor(Math.random() * 80) }, () => Math.floor(Math.random() * 256)),
      );
      assert.doesNotThrow(() => parseArpFrame(random));
    }
  });
});

describe('address helpers', () => {
  it('round-trip MACs and IPv4 addresses', () => {
    assert.equal(formatMac(macToBytes('0A:1b:2C:3d:4E:5f')), '0a:1b:2c:3d:4e:5f');
    assert.equal(formatIpv4(ipv4ToBytes('255.0.10.1')), '255.0.10.1');
  });
});

function patch(frame: Buffer, offset: number, bytes: string): Buffer {
  const copy = Buffer.from(frame);
  hex(bytes).copy(copy, offset);
  return copy;
}
