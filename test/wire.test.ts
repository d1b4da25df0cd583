import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Inbox } from '../src/vrrp/inbox';
import { clusterDigest, wireOrder } from '../src/vrrp/membership';
import { ReplayGuard } from '../src/vrrp/replay-guard';
import type { Heartbeat, Member } from '../src/vrrp/types';
import { decodeHeartbeat, encodeHeartbeat } from '../src/vrrp/wire';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const members: Member[] = [
  { name: 'cp1', address: '10.0.0.1' },
  { name: 'cp2', address: '10.0.0.2' },
  { name: 'cp3', address: '10.0.0.3' },
];
const names = wireOrder(members);
const shape = { clusterId: 7, members, intervalMs: 100, deadAfter: 3, maxDeadAfter: 30 };
const digest = clusterDigest(shape);
const hb: Heartbeat = {
  clusterId: 7,
  sender: 'cp1',
  epoch: 1_700_000_000_123,
  seq: 42,
  ts: 12345.678,
  role: 'MASTER',
  priority: 150,
  intervalMs: 100,
  term: 9,
  quorate: true,
  learning: false,
  resigning: false,
  handover: false,
  formed: true,
  observer: false,
  bootstrap: 'self',
  leader: 'cp1',
  leaderTerm: 9,
  grantMs: 0,
  vote: 'cp1',
  successor: '',
  digest,
  members: 3,
  echoes: { cp2: { epoch: 1_700_000_000_999, seq: 7, ts: 55.5 }, cp3: { epoch: 3, seq: 0xffffffff, ts: 0 } },
};

describe('heartbeat wire format', () => {
  it('round-trips every field', () => {
    assert.deepEqual(decodeHeartbeat(encodeHeartbeat(hb, secret, names), secret, 7, names), {
      ok: true,
      heartbeat: hb,
    });
    const other: Heartbeat = {
      ...hb,
      role: 'BACKUP',
      priority: 0,
      resigning: true,
      learning: true,
      handover: true,
      quorate: false,
      leader: 'cp-2.example',
      leaderTerm: 4_000_000_000,
      grantMs: 1825,
      vote: '',
      successor: 'cp3',
      bootstrap: 'other',
      echoes: {},
    };
    assert.deepEqual(decodeHeartbeat(encodeHeartbeat(other, secret, names), secret, 7, names), {
      ok: true,
      heartbeat: other,
    });
  });

  it('says whether the sender is its bootstrap member in two flag bits a vipd 0.2 sender leaves clear', () => {
    const flags = (bootstrap: Heartbeat['bootstrap']) =>
      (encodeHeartbeat({ ...hb, bootstrap, formed: false, quorate: false }, secret, names)[6] as number) & 0xc0;
    assert.equal(flags('self'), 64 | 128);
    assert.equal(flags('other'), 128);
    assert.equal(flags('unstated'), 0, 'as vipd 0.2 sends it');
    for (const bootstrap of ['self', 'other', 'unstated'] as const) {
      const r = decodeHeartbeat(encodeHeartbeat({ ...hb, bootstrap }, secret, names), secret, 7, names);
      assert.equal(r.ok && r.heartbeat.bootstrap, bootstrap);
    }
  });

  it('lays out the header as documented', () => {
    const bytes = encodeHeartbeat({ ...hb, handover: true, learning: true }, secret, names);
    assert.equal(bytes.toString('latin1', 0, 2), 'VP');
    assert.equal(bytes[2], 2, 'version 2');
    assert.equal(bytes.readUInt16BE(4), 7);
    assert.equal(bytes[6], 1 | 4 | 8 | 16 | 64 | 128, 'quorate, learning, handover, formed, bootstrap self');
    assert.equal(bytes[7], 3, 'MASTER');
    assert.equal(bytes[8], 150);
    assert.equal(bytes[9], 3, 'members');
    assert.equal(bytes.readUInt16BE(10), 100);
    assert.equal(bytes.readBigUInt64BE(12), 1_700_000_000_123n);
    assert.equal(bytes.readUInt32BE(20), 42);
    assert.equal(bytes.readDoubleBE(24), 12345.678);
    assert.equal(bytes.readUInt32BE(32), 9);
    assert.equal(bytes.toString('hex', 44, 52), digest);
    const namesLen = 1 + 3 + (1 + 3) + (1 + 3) + 1;
    assert.equal(bytes[52 + namesLen], 2, 'two echoes');
    assert.equal(bytes[52 + namesLen + 1], 1, 'the first for member index 1 (cp2)');
    assert.equal(bytes.length, 52 + namesLen + 1 + 2 * 21 + 32);
  });

  it('rejects a message signed with another secret', () => {
    const r = decodeHeartbeat(encodeHeartbeat(hb, Buffer.from('another-secret-of-16-bytes'), names), secret, 7, names);
    assert.equal(!r.ok && r.reason, 'bad_mac');
  });

  it('rejects any single flipped bit', () => {
    const bytes = encodeHeartbeat(hb, secret, names);
    for (let i = 0; i < bytes.length; i += 1) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] as number) ^ 0x10;
      assert.equal(decodeHeartbeat(copy, secret, 7, names).ok, false, `byte ${i}`);
    }
  });

  it('rejects truncated messages at every length, without throwing', () => {
    const bytes = encodeHeartbeat(hb, secret, names);
    for (let len = 0; len < bytes.length; len += 1)
      assert.equal(decodeHeartbeat(bytes.subarray(0, len), secret, 7, names).ok, false, `length ${len}`);
  });

  it('rejects another cluster id (after authentication), and version 1', () => {
    const r = decodeHeartbeat(encodeHeartbeat(hb, secret, names), secret, 8, names);
    assert.equal(!r.ok && r.reason, 'wrong_cluster');
    const v1 = encodeHeartbeat(hb, secret, names);
    v1[2] = 1;
    const old = decodeHeartbeat(v1, secret, 7, names);
    assert.ok(!old.ok && old.reason === 'malformed' && /version 1/.test(old.detail));
  });

  it('never throws on random bytes', () => {
    for (let i = 0; i < 5000; i += 1) {
      const junk = randomBytes(i % 300);
      if (i % 3 === 0 && junk.length > 3) {
        junk[0] = 0x56;
        junk[1] = 0x50;
        junk[2] = 2;
      }
      assert.equal(decodeHeartbeat(junk, secret, 7, names).ok, false);
    }
  });

  it('refuses to encode a name longer than 63 bytes', () => {
    assert.throws(() => encodeHeartbeat({ ...hb, sender: 'x'.repeat(64) }, secret, names), RangeError);
  });
});

describe('admission (Inbox)', () => {
  const inbox = () => new Inbox({ ...shape, self: members[1]! }, secret);
  const us = { epoch: 1_700_000_000_999, now: 100 };

  it("admits a peer's heartbeat from its own address, once", () => {
    const box = inbox();
    const bytes = encodeHeartbeat(hb, secret, names);
    assert.equal(box.admit(bytes, '10.0.0.1', us).ok, true);
    const again = box.admit(bytes, '10.0.0.1', us);
    assert.equal(!again.ok && again.reason, 'replay');
  });

  it("drops a stranger before spending an HMAC on it, and a member speaking from another member's address", () => {
    const box = inbox();
    const junk = randomBytes(120);
    const r = box.admit(junk, '10.9.9.9', us);
    assert.equal(!r.ok && r.reason, 'unknown_sender');
    const spoof = box.admit(encodeHeartbeat(hb, secret, names), '10.0.0.3', us);
    assert.equal(!spoof.ok && spoof.reason, 'unknown_sender');
  });

  it('drops a member whose member list differs (config_mismatch), naming the counts', () => {
    const other = [...members, { name: 'cp4', address: '10.0.0.4' }];
    const bytes = encodeHeartbeat(
      { ...hb, digest: clusterDigest({ ...shape, members: other }), members: 4 },
      secret,
      wireOrder(other),
    );
    const r = inbox().admit(bytes, '10.0.0.1', us);
    assert.ok(
      !r.ok && r.reason === 'config_mismatch' && /4 members and interval 100ms; we have 3 and 100ms/.test(r.detail),
      !r.ok ? r.detail : '',
    );
  });

  it('a sender whose clock stepped back across a restart (a lower epoch) is accepted once it answers a heartbeat of ours sent since; a replay never is', () => {
    const box = inbox();
    const echoUs = (ts: number) => ({ cp2: { epoch: us.epoch, seq: 1, ts } });
    const old = encodeHeartbeat({ ...hb, seq: 1, echoes: echoUs(50) }, secret, names);
    assert.equal(
      box.admit(encodeHeartbeat({ ...hb, seq: 2, echoes: echoUs(90) }, secret, names), '10.0.0.1', us).ok,
      true,
    );
    // The restarted run, epoch lower: first without having heard us, then answering our heartbeat of t=150.
    const later = { ...us, now: 200 };
    const restarted = { ...hb, epoch: 1_600_000_000_000, seq: 1, echoes: {} };
    const r1 = box.admit(encodeHeartbeat(restarted, secret, names), '10.0.0.1', later);
    assert.equal(!r1.ok && r1.reason, 'replay');
    assert.equal(
      box.admit(encodeHeartbeat({ ...restarted, seq: 2, echoes: echoUs(150) }, secret, names), '10.0.0.1', later).ok,
      true,
    );
    // A recording of the earlier run (it echoes an older heartbeat of ours): refused.
    const r2 = box.admit(old, '10.0.0.1', { ...us, now: 300 });
    assert.equal(!r2.ok && r2.reason, 'replay');
  });

  it('the digest changes with any name, address or timing setting, not with the order', () => {
    assert.equal(clusterDigest({ ...shape, members: [...members].reverse() }), digest);
    assert.notEqual(
      clusterDigest({ ...shape, members: [{ ...members[0]!, address: '10.0.0.9' }, members[1]!, members[2]!] }),
      digest,
    );
    assert.notEqual(clusterDigest({ ...shape, clusterId: 8 }), digest);
    assert.notEqual(clusterDigest({ ...shape, intervalMs: 200 }), digest);
    assert.notEqual(clusterDigest({ ...shape, deadAfter: 4 }), digest);
    assert.notEqual(clusterDigest({ ...shape, maxDeadAfter: 31 }), digest);
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
