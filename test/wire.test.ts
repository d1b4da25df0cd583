import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ReplayGuard } from '../src/vrrp/replay-guard';
import type { Heartbeat } from '../src/vrrp/types';
import { decodeHeartbeat, encodeHeartbeat } from '../src/vrrp/wire';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const hb: Heartbeat = {
  clusterId: 7, sender: 'cp1', epoch: 1_700_000_000_123, seq: 42, role: 'MASTER', priority: 150,
  intervalMs: 100, quorate: true, resigning: false, master: 'cp1', vote: 'cp1',
};

describe('heartbeat wire format', () => {
  it('round-trips every field', () => {
    const decoded = decodeHeartbeat(encodeHeartbeat(hb, secret), secret, 7);
    assert.deepEqual(decoded, { ok: true, heartbeat: hb });
    const resign: Heartbeat = { ...hb, role: 'BACKUP', priority: 0, resigning: true, quorate: false, master: 'cp-2.example', vote: '' };
    assert.deepEqual(decodeHeartbeat(encodeHeartbeat(resign, secret), secret, 7), { ok: true, heartbeat: resign });
  });

  it('lays out the header as documented', () => {
    const bytes = encodeHeartbeat(hb, secret);
    assert.equal(bytes.toString('latin1', 0, 2), 'VP');
    assert.equal(bytes[2], 1);
    assert.equal(bytes.readUInt16BE(4), 7);
    assert.equal(bytes[6], 1, 'quorate flag');
    assert.equal(bytes[7], 2, 'MASTER');
    assert.equal(bytes[8], 150);
    assert.equal(bytes.readUInt16BE(10), 100);
    assert.equal(bytes.readBigUInt64BE(12), 1_700_000_000_123n);
    assert.equal(bytes.readUInt32BE(20), 42);
    assert.equal(bytes.length, 24 + 3 * (1 + 3) + 32);
  });

  it('rejects a message signed with another secret', () => {
    const other = encodeHeartbeat(hb, Buffer.from('another-secret-of-16-bytes'));
    assert.deepEqual(decodeHeartbeat(other, secret, 7).ok, false);
    const r = decodeHeartbeat(other, secret, 7);
    assert.equal(!r.ok && r.reason, 'bad_mac');
  });

  it('rejects any single flipped bit', () => {
    const bytes = encodeHeartbeat(hb, secret);
    for (let i = 0; i < bytes.length; i += 1) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] as number) ^ 0x10;
      const r = decodeHeartbeat(copy, secret, 7);
      assert.equal(r.ok, false, `byte ${i}`);
    }
  });

  it('rejects truncated messages at every length, without throwing', () => {
    const bytes = encodeHeartbeat(hb, secret);
    for (let len = 0; len < bytes.length; len += 1) {
      const r = decodeHeartbeat(bytes.subarray(0, len), secret, 7);
      assert.equal(r.ok, false, `length ${len}`);
    }
  });

  it('rejects another cluster id (after authentication)', () => {
    const r = decodeHeartbeat(encodeHeartbeat(hb, secret), secret, 8);
    assert.equal(!r.ok && r.reason, 'wrong_cluster');
  });

  it('never throws on random bytes', () => {
    for (let i = 0; i < 5000; i += 1) {
      const junk = randomBytes(i % 200);
      if (i % 3 === 0 && junk.length > 3) { junk[0] = 0x56; junk[1] = 0x50; junk[2] = 1; }
      assert.equal(decodeHeartbeat(junk, secret, 7).ok, false);
    }
  });

  it('refuses to encode a name longer than 63 bytes', () => {
    assert.throws(() => encodeHeartbeat({ ...hb, sender: 'x'.repeat(64) }, secret), RangeError);
  });
});

describe('replay guard', () => {
  it('accepts only newer (epoch, seq) per sender', () => {
    const g = new ReplayGuard();
    assert.equal(g.accept('a', 10, 1), true);
    assert.equal(g.accept('a', 10, 1), false, 'the same message again');
    assert.equal(g.accept('a', 10, 0), false, 'older');
    assert.equal(g.accept('a', 10, 2), true);
    assert.equal(g.accept('b', 10, 1), true, 'senders are independent');
    assert.equal(g.accept('a', 11, 0), true, 'a restart (new epoch) starts over');
    assert.equal(g.accept('a', 10, 99), false, 'nothing from the previous run');
  });
});
