/**
 * The heartbeat on the wire: a small fixed header, two names, and an HMAC-SHA256 trailer over
 * everything before it (keepalived 2.4's answer to VRRPv3 dropping authentication).
 *
 *   0  'V' 'P'           magic
 *   2  u8  version (1)   3  u8 type (1 = heartbeat)
 *   4  u16 clusterId     6  u8 flags (1 quorate, 2 resigning)   7 u8 role   8 u8 priority   9 u8 0
 *  10  u16 intervalMs   12  u64 epoch   20 u32 seq
 *  24  three names, each u8 len + UTF-8: sender, master, vote
 *   …  32 bytes HMAC-SHA256(secret, all of the above)
 *
 * Pure functions: the tests check bytes without a socket.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ROLES, type Heartbeat } from './types';

const MAGIC0 = 0x56; // 'V'
const MAGIC1 = 0x50; // 'P'
export const WIRE_VERSION = 1;
const TYPE_HEARTBEAT = 1;
const FIXED = 24;
const MAC_BYTES = 32;
const FLAG_QUORATE = 1;
const FLAG_RESIGNING = 2;
export const MAX_NAME_BYTES = 63;

export type DropReason = 'malformed' | 'bad_mac' | 'wrong_cluster' | 'unknown_sender' | 'replay';
export const DROP_REASONS: readonly DropReason[] = ['malformed', 'bad_mac', 'wrong_cluster', 'unknown_sender', 'replay'];

export type Decoded = { readonly ok: true; readonly heartbeat: Heartbeat } | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

export function encodeHeartbeat(hb: Heartbeat, secret: Buffer): Buffer {
  const names = [hb.sender, hb.master, hb.vote].map((n) => Buffer.from(n, 'utf8'));
  if (names.some((n) => n.length > MAX_NAME_BYTES)) throw new RangeError('member name too long');
  const body = Buffer.alloc(FIXED + names.reduce((sum, n) => sum + 1 + n.length, 0));
  body[0] = MAGIC0;
  body[1] = MAGIC1;
  body[2] = WIRE_VERSION;
  body[3] = TYPE_HEARTBEAT;
  body.writeUInt16BE(hb.clusterId, 4);
  body[6] = (hb.quorate ? FLAG_QUORATE : 0) | (hb.resigning ? FLAG_RESIGNING : 0);
  body[7] = ROLES.indexOf(hb.role);
  body[8] = hb.priority;
  body.writeUInt16BE(hb.intervalMs, 10);
  body.writeBigUInt64BE(BigInt(hb.epoch), 12);
  body.writeUInt32BE(hb.seq >>> 0, 20);
  let at = FIXED;
  for (const n of names) {
    body[at] = n.length;
    n.copy(body, at + 1);
    at += 1 + n.length;
  }
  return Buffer.concat([body, mac(body, secret)]);
}

/** Authenticates, then parses. Never throws: anything wrong is a drop reason. */
export function decodeHeartbeat(msg: Buffer, secret: Buffer, clusterId: number): Decoded {
  if (msg.length < FIXED + 3 + MAC_BYTES) return drop('malformed', `${msg.length} bytes is too short`);
  if (msg[0] !== MAGIC0 || msg[1] !== MAGIC1) return drop('malformed', 'bad magic');
  if (msg[2] !== WIRE_VERSION) return drop('malformed', `unsupported version ${msg[2]}`);
  const body = msg.subarray(0, msg.length - MAC_BYTES);
  if (!timingSafeEqual(mac(body, secret), msg.subarray(msg.length - MAC_BYTES))) {
    return drop('bad_mac', 'HMAC does not match: another secret, or a forged or damaged message');
  }
  if (body[3] !== TYPE_HEARTBEAT) return drop('malformed', `unknown message type ${body[3]}`);
  const role = ROLES[body[7] as number];
  if (role === undefined) return drop('malformed', `unknown role ${body[7]}`);
  const names: string[] = [];
  let at = FIXED;
  for (let i = 0; i < 3; i += 1) {
    const len = body[at];
    if (len === undefined || at + 1 + len > body.length) return drop('malformed', 'truncated name');
    names.push(body.toString('utf8', at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at !== body.length) return drop('malformed', 'name lengths do not match the message length');
  const epoch = body.readBigUInt64BE(12);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return drop('malformed', 'epoch out of range');
  const received = body.readUInt16BE(4);
  if (received !== clusterId) return drop('wrong_cluster', `clusterId ${received}, expected ${clusterId}`);
  const flags = body[6] as number;
  const [sender = '', master = '', vote = ''] = names;
  return {
    ok: true,
    heartbeat: {
      clusterId: received, sender, epoch: Number(epoch), seq: body.readUInt32BE(20), role,
      priority: body[8] as number, intervalMs: body.readUInt16BE(10),
      quorate: (flags & FLAG_QUORATE) !== 0, resigning: (flags & FLAG_RESIGNING) !== 0, master, vote,
    },
  };
}

function mac(body: Buffer, secret: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

function drop(reason: DropReason, detail: string): Decoded {
  return { ok: false, reason, detail };
}
