/**
 * The shared secret as the heartbeats' HMAC key. A secret made as the docs say (32 random bytes in
 * base64) is the key as written, as in vipd 0.2. A passphrase-like one (letters only, or fewer than
 * 16 bytes of random material as written: a hex character carries 4 bits, a base64 one 6) is run
 * through scrypt first, so that a dictionary attack on a captured heartbeat costs a scrypt per guess
 * instead of an HMAC: it slows the attack, it cannot make a weak passphrase strong (config
 * warnings say so). Every member decides from the same text, so they all derive the same key.
 */
import { scryptSync } from 'node:crypto';

/** Random material a secret needs to be used as written. */
export const MIN_RANDOM_BYTES = 16;

/** scrypt's parameters: part of the wire protocol (members must agree), never to be changed lightly. */
const KDF = { salt: 'vipd-election-secret-v1', N: 1 << 15, r: 8, p: 1, keyLength: 32 } as const;

interface SecretMaterial {
  /** How the text reads: a letters-only word or phrase, hex, base64 (or alphanumeric), or other text. */
  readonly kind: 'letters' | 'hex' | 'base64' | 'text';
  /** The random material it carries at most, in bytes, counted as written. */
  readonly rawBytes: number;
}

export function secretMaterial(secret: Buffer): SecretMaterial {
  const text = secret.toString('utf8');
  if (/^[a-z]+([ ._-][a-z]+)*$/i.test(text)) return { kind: 'letters', rawBytes: text.length };
  const kind = /^[0-9a-f]+$/i.test(text) ? 'hex' : /^[A-Za-z0-9+/_-]+=*$/.test(text) ? 'base64' : 'text';
  const bits = kind === 'hex' ? 4 : kind === 'base64' ? 6 : 8;
  return { kind, rawBytes: Math.floor((text.replace(/=+$/, '').length * bits) / 8) };
}

/** Letters only, or too little random material: the key is derived (scrypt), and a warning says why. */
export function isPassphraseLike(secret: Buffer): boolean {
  const m = secretMaterial(secret);
  return m.kind === 'letters' || m.rawBytes < MIN_RANDOM_BYTES;
}

/** The HMAC key for heartbeats and connection lists. Takes about 0.1 s for a passphrase-like secret (once, at start). */
export function heartbeatKey(secret: Buffer): Buffer {
  if (!isPassphraseLike(secret)) return secret;
  return scryptSync(secret, KDF.salt, KDF.keyLength, { N: KDF.N, r: KDF.r, p: KDF.p, maxmem: 64 * 1024 * 1024 });
}
