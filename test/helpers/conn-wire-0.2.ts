/**
 * vipd 0.2's connection messages, verbatim (src/takeover/conn-wire.ts at 0.2.0, before IPv6
 * entries; only this comment is new and the ClientEndpoint type written in place of its import), so
 * that test/conn-sync.test.ts shows how this version and a 0.2 member understand each other: the
 * IPv4-only messages both ways as before, the wide ones refused by 0.2 as `malformed` without a throw.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

interface ClientEndpoint {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly vipPort: number;
}

const MAGIC0 = 0x56;
const MAGIC1 = 0x50;
const VERSION = 2;
export const TYPE_CONNECTIONS = 2;
const FIXED = 36;
const ENTRY = 8;
const MAC_BYTES = 32;
export const MAX_ENTRIES = 160;
const MAX_NAME_BYTES = 63;

export type ConnMessage =
  | {
      readonly kind: 'delta';
      readonly clusterId: number;
      readonly sender: string;
      readonly epoch: number;
      readonly seq: number;
      readonly dseq: number;
      readonly adds: readonly ClientEndpoint[];
      readonly removes: readonly ClientEndpoint[];
    }
  | {
      readonly kind: 'snapshot';
      readonly clusterId: number;
      readonly sender: string;
      readonly epoch: number;
      readonly seq: number;
      readonly dseq: number;
      readonly snapshotId: number;
      readonly chunk: number;
      readonly chunks: number;
      readonly entries: readonly ClientEndpoint[];
    };

export type DecodedConns =
  | { readonly ok: true; readonly message: ConnMessage }
  | { readonly ok: false; readonly reason: 'malformed' | 'bad_mac' | 'wrong_cluster'; readonly detail: string };

/** Whether a datagram is a connection message (before it is authenticated: only for dispatch). */
export function isConnMessage(msg: Buffer): boolean {
  return msg.length > 3 && msg[0] === MAGIC0 && msg[1] === MAGIC1 && msg[3] === TYPE_CONNECTIONS;
}

export function encodeConnMessage(m: ConnMessage, secret: Buffer): Buffer {
  const name = Buffer.from(m.sender, 'utf8');
  if (name.length > MAX_NAME_BYTES) throw new RangeError('member name too long');
  const first = m.kind === 'delta' ? m.adds : m.entries;
  const second = m.kind === 'delta' ? m.removes : [];
  if (first.length + second.length > MAX_ENTRIES)
    throw new RangeError(`more than ${MAX_ENTRIES} entries in one message`);
  const body = Buffer.alloc(FIXED + 1 + name.length + (first.length + second.length) * ENTRY);
  body[0] = MAGIC0;
  body[1] = MAGIC1;
  body[2] = VERSION;
  body[3] = TYPE_CONNECTIONS;
  body.writeUInt16BE(m.clusterId, 4);
  body[6] = m.kind === 'delta' ? 1 : 2;
  body.writeBigUInt64BE(BigInt(m.epoch), 8);
  body.writeUInt32BE(m.seq >>> 0, 16);
  body.writeUInt32BE(m.dseq >>> 0, 20);
  if (m.kind === 'snapshot') {
    body.writeUInt32BE(m.snapshotId >>> 0, 24);
    body.writeUInt16BE(m.chunk, 28);
    body.writeUInt16BE(m.chunks, 30);
  }
  body.writeUInt16BE(first.length, 32);
  body.writeUInt16BE(second.length, 34);
  body[FIXED] = name.length;
  name.copy(body, FIXED + 1);
  let at = FIXED + 1 + name.length;
  for (const e of [...first, ...second]) {
    body.writeUInt32BE(ipv4ToUint(e.clientIp), at);
    body.writeUInt16BE(e.clientPort, at + 4);
    body.writeUInt16BE(e.vipPort, at + 6);
    at += ENTRY;
  }
  return Buffer.concat([body, mac(body, secret)]);
}

/** Authenticates, then parses. Never throws. */
export function decodeConnMessage(msg: Buffer, secret: Buffer, clusterId: number): DecodedConns {
  if (msg.length < FIXED + 1 + MAC_BYTES) return fail('malformed', `${msg.length} bytes is too short`);
  if (!isConnMessage(msg)) return fail('malformed', 'not a connection message');
  if (msg[2] !== VERSION) return fail('malformed', `unsupported version ${msg[2]}`);
  const body = msg.subarray(0, msg.length - MAC_BYTES);
  if (!timingSafeEqual(mac(body, secret), msg.subarray(msg.length - MAC_BYTES))) {
    return fail('bad_mac', 'HMAC does not match: another secret, or a forged or damaged message');
  }
  const kind = body[6] === 1 ? 'delta' : body[6] === 2 ? 'snapshot' : undefined;
  if (kind === undefined) return fail('malformed', `unknown kind ${body[6]}`);
  const nameLen = body[FIXED] as number;
  const adds = body.readUInt16BE(32);
  const removes = body.readUInt16BE(34);
  if (FIXED + 1 + nameLen + (adds + removes) * ENTRY !== body.length) return fail('malformed', 'lengths do not match');
  const epoch = body.readBigUInt64BE(8);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return fail('malformed', 'epoch out of range');
  const received = body.readUInt16BE(4);
  if (received !== clusterId) return fail('wrong_cluster', `clusterId ${received}, expected ${clusterId}`);
  const sender = body.toString('utf8', FIXED + 1, FIXED + 1 + nameLen);
  const read = (from: number, count: number): ClientEndpoint[] => {
    const out: ClientEndpoint[] = [];
    for (let i = 0, at = from; i < count; i += 1, at += ENTRY) {
      out.push({
        clientIp: uintToIpv4(body.readUInt32BE(at)),
        clientPort: body.readUInt16BE(at + 4),
        vipPort: body.readUInt16BE(at + 6),
      });
    }
    return out;
  };
  const start = FIXED + 1 + nameLen;
  const common = {
    clusterId: received,
    sender,
    epoch: Number(epoch),
    seq: body.readUInt32BE(16),
    dseq: body.readUInt32BE(20),
  };
  if (kind === 'delta') {
    return {
      ok: true,
      message: { kind, ...common, adds: read(start, adds), removes: read(start + adds * ENTRY, removes) },
    };
  }
  const chunks = body.readUInt16BE(30);
  const chunk = body.readUInt16BE(28);
  if (removes !== 0 || chunks === 0 || chunk >= chunks) return fail('malformed', 'a snapshot chunk out of range');
  return {
    ok: true,
    message: { kind, ...common, snapshotId: body.readUInt32BE(24), chunk, chunks, entries: read(start, adds) },
  };
}

function mac(body: Buffer, secret: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

function fail(reason: 'malformed' | 'bad_mac' | 'wrong_cluster', detail: string): DecodedConns {
  return { ok: false, reason, detail };
}

export function ipv4ToUint(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new RangeError(`not an IPv4 address: ${ip}`);
  return parts.reduce((acc, p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`not an IPv4 address: ${ip}`);
    return acc * 256 + n;
  }, 0);
}

export function uintToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
