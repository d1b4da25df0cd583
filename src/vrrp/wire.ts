/**
 * The heartbeat on the wire: a small fixed header, two names, and an HMAC-SHA256 trailer over
 * everything before it (keepalived 2.4's answer to VRRPv3 dropping authentication).
 *
 *   0  'V' 'P'           magic
 *   2  u8  version (1)   3  u8 type (1 = heartbeat)
 *   4  u16 clusterId     6  u8 flags (1 quorate, 2 resigning)   7 u8 role   8 u8 priority   9 u8 0
 *  10  u16 intervalMs   12  u64 epoch   20 u32 seq
 *  24  u8 len + sender name, u8 len + master name
 *   …  32 bytes HMAC-SHA256(secret, all of the above)
 *
 * Pure functions: the tests check bytes without a socket.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ROLES, type Heartbeat, type Role } from './types';

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
  const sender = Buffer.from(hb.sender, 'utf8');
  const master = Buffer.from(hb.master, 'utf8');
  if (sender.length > MAX_NAME_BYTES || master.length > MAX_NAME_BYTES) throw new RangeError('member name too long');
  const body = Buffer.alloc(FIXED + 1 + sender.length + 1 + master.length);
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
  body[FIXED] = sender.length;
  sender.copy(body, FIXED + 1);
  body[FIXED + 1 + sender.length] = master.length;
  master.copy(body, FIXED + 2 + sender.length);
  return Buffer.concat([body, mac(body, secret)]);
}

/** Authenticates, then parses. Never throws: anything wrong is a drop reason. */
export function decodeHeartbeat(msg: Buffer, secret: Buffer, clusterId: number): Decoded {
  if (msg.length < FIXED + 2 + MAC_BYTES) return drop('malformed', `${msg.length} bytes is too short`);
  if (msg[0] !== MAGIC0 || msg[1] !== MAGIC1) return drop('malformed', 'bad magic');
  if (msg[2] !== WIRE_VERSION) return drop('malformed', `unsupported version ${msg[2]}`);
  const body = msg.subarray(0, msg.length - MAC_BYTES);
  if (!timingSafeEqual(mac(body, secret), msg.subarray(msg.length - MAC_BYTES))) {
    return drop('bad_mac', 'HMAC does not match: another secret, or a forged or damaged message');
  }
  if (body[3] !== TYPE_HEARTBEAT) return drop('malformed', `unknown message type ${body[3]}`);
  const role = ROLES[body[7] as number];
  if (role === undefined) return drop('malformed', `unknown role ${body[7]}`);
  const senderLen = body[FIXED] as number;
  const masterAt = FIXED + 1 + senderLen;
  if (masterAt >= body.length) return drop('malformed', 'truncated sender name');
  const masterLen = body[masterAt] as number;
  if (masterAt + 1 + masterLen !== body.length) return drop('malformed', 'name lengths do not match the message length');
  const epoch = body.readBigUInt64BE(12);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return drop('malformed', 'epoch out of range');
  const received = body.readUInt16BE(4);
  if (received !== clusterId) return drop('wrong_cluster', `clusterId ${received}, expected ${clusterId}`);
  const flags = body[6] as number;
  return {
    ok: true,
    heartbeat: {
      clusterId: received,
      sender: body.toString('utf8', FIXED + 1, masterAt),
      epoch: Number(epoch),
      seq: body.readUInt32BE(20),
      role: role as Role,
      priority: body[8] as number,
      intervalMs: body.readUInt16BE(10),
      quorate: (flags & FLAG_QUORATE) !== 0,
      resigning: (flags & FLAG_RESIGNING) !== 0,
      master: body.toString('utf8', masterAt + 1),
    },
  };
}

function mac(body: Buffer, secret: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

function drop(reason: DropReason, detail: string): Decoded {
  return { ok: false, reason, detail };
}
