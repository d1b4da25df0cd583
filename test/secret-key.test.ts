/**
 * The shared secret as the HMAC key (src/config/secret-key.ts): a random secret is used as
 * written (vipd 0.2's members agree), a passphrase-like one is stretched with scrypt with fixed
 * parameters (every member, of any version since, derives the same key), and a heartbeat signed
 * with the passphrase itself is refused by a member that uses the derived key.
 */
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { heartbeatKey, isPassphraseLike, secretMaterial } from '../src/config/secret-key';
import { secretWarnings } from '../src/config/warnings';
import { clusterDigest, wireOrder } from '../src/vrrp/membership';
import { decodeHeartbeat, encodeHeartbeat } from '../src/vrrp/wire';
import { sampleHeartbeat } from './helpers/heartbeat';

const RANDOM = Buffer.from('Zm9vYmFyYmF6cXV1eGNvcmdlZ3JhdWx0Z2FycGx5Cg==');
const PASSPHRASE = Buffer.from('correct horse battery staple');

describe('the heartbeat key', () => {
  it('a random secret (32 bytes in base64) is the key as written', () => {
    assert.equal(isPassphraseLike(RANDOM), false);
    assert.deepEqual(heartbeatKey(RANDOM), RANDOM);
    assert.equal(secretWarnings(RANDOM, '/etc/vipd/secret').length, 0);
  });

  it('raw bytes are counted as written: hex carries 4 bits a character, base64 6', () => {
    assert.deepEqual(secretMaterial(Buffer.from('0123456789abcdef0123456789abcdef')), { kind: 'hex', rawBytes: 16 });
    assert.deepEqual(secretMaterial(Buffer.from('0123456789abcdef01234567')), { kind: 'hex', rawBytes: 12 });
    assert.equal(isPassphraseLike(Buffer.from('0123456789abcdef01234567')), true, '24 hex characters: 12 bytes');
    assert.equal(isPassphraseLike(Buffer.from('0123456789abcdef0123456789abcdef')), false);
    assert.equal(secretMaterial(Buffer.from('GGGGGGGGGGGGGGGGGGGGG1')).rawBytes, 16, '22 base64 characters');
  });

  it('a passphrase is stretched with scrypt, with the parameters the protocol fixes', () => {
    assert.equal(isPassphraseLike(PASSPHRASE), true);
    const key = heartbeatKey(PASSPHRASE);
    assert.equal(key.length, 32);
    const expected = scryptSync(PASSPHRASE, 'vipd-election-secret-v1', 32, {
      N: 1 << 15,
      r: 8,
      p: 1,
      maxmem: 64 << 20,
    });
    assert.deepEqual(key, expected, 'members of every version derive the same key');
    const [warning] = secretWarnings(PASSPHRASE, '/etc/vipd/secret');
    assert.match(warning ?? '', /letters only.*scrypt/);
  });

  it('a heartbeat signed with the passphrase itself does not pass a member using the derived key', () => {
    const members = [
      { name: 'a', address: '10.0.0.1' },
      { name: 'b', address: '10.0.0.2' },
    ];
    const order = wireOrder(members);
    const hb = sampleHeartbeat({
      sender: 'a',
      members: 2,
      digest: clusterDigest({ clusterId: 1, members, intervalMs: 100, deadAfter: 3, maxDeadAfter: 30 }),
    });
    const key = heartbeatKey(PASSPHRASE);
    assert.equal(decodeHeartbeat(encodeHeartbeat(hb, key, order), key, 1, order).ok, true);
    const raw = decodeHeartbeat(encodeHeartbeat(hb, PASSPHRASE, order), key, 1, order);
    assert.equal(raw.ok, false);
    assert.equal(!raw.ok && raw.reason, 'bad_mac');
  });
});
