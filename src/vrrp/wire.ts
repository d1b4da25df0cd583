/**
 * The heartbeat on the wire: a fixed header, four names, the echoes, and an HMAC-SHA256 trailer
 * over everything before it (keepalived 2.4's answer to VRRPv3 dropping authentication).
 *
 *   0  'V' 'P'            magic
 *   2  u8  version (2)    3  u8 type (1 = heartbeat)
 *   4  u16 clusterId      6  u8 flags (1 quorate, 2 resigning, 4 learning, 8 handover, 16 formed,
 *                                     32 observer, 64 the sender is its config's bootstrap member,
 *                                     128 the sender states bit 64: 0.2 senders leave both clear)
 *   7  u8  role           8  u8 priority   9 u8 members (the sender's member count)
 *  10  u16 intervalMs    12  u64 epoch    20 u32 seq     24 f64 ts (sender's monotonic ms)
 *  32  u32 term          36  u32 leaderTerm   40 u32 grantMs   44 8 bytes member-list digest
 *  52  four names, each u8 len + UTF-8: sender, leader, vote, successor
 *   …  u8 echo count, then per echo: u8 member index (sorted names), u64 epoch, u32 seq, f64 ts
 *   …  32 bytes HMAC-SHA256(secret, all of the above)
 *
 * Pure functions: the tests check bytes without a socket.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Echo, type Heartbeat, ROLES } from './types';

const MAGIC0 = 0x56; // 'V'
const MAGIC1 = 0x50; // 'P'
export const WIRE_VERSION = 2;
const TYPE_HEARTBEAT = 1;
const FIXED = 52;
const ECHO_BYTES = 21;
const MAC_BYTES = 32;
const FLAG_QUORATE = 1;
const FLAG_RESIGNING = 2;
const FLAG_LEARNING = 4;
const FLAG_HANDOVER = 8;
const FLAG_FORMED = 16;
const FLAG_OBSERVER = 32;
const FLAG_BOOTSTRAP_SELF = 64;
const FLAG_BOOTSTRAP_STATED = 128;
export const MAX_NAME_BYTES = 63;
const MAX_U32 = 0xffffffff;

export type DropReason = 'malformed' | 'bad_mac' | 'wrong_cluster' | 'unknown_sender' | 'config_mismatch' | 'replay';
export const DROP_REASONS: readonly DropReason[] = [
  'malformed',
  'bad_mac',
  'wrong_cluster',
  'unknown_sender',
  'config_mismatch',
  'replay',
];

export type Decoded =
  | { readonly ok: true; readonly heartbeat: Heartbeat }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

/** `names` is the member list in wire order (membership.ts, wireOrder): echoes travel as indexes into it. */
export function encodeHeartbeat(hb: Heartbeat, secret: Buffer, names: readonly string[]): Buffer {
  const strings = [hb.sender, hb.leader, hb.vote, hb.successor].map((n) => Buffer.from(n, 'utf8'));
  if (strings.some((n) => n.length > MAX_NAME_BYTES)) throw new RangeError('member name too long');
  const echoes = names.flatMap((name, index) => {
    const e = hb.echoes[name];
    return e === undefined ? [] : [{ index, e }];
  });
  const length = FIXED + strings.reduce((sum, n) => sum + 1 + n.length, 0) + 1 + echoes.length * ECHO_BYTES;
  const body = Buffer.alloc(length);
  body[0] = MAGIC0;
  body[1] = MAGIC1;
  body[2] = WIRE_VERSION;
  body[3] = TYPE_HEARTBEAT;
  body.writeUInt16BE(hb.clusterId, 4);
  body[6] =
    (hb.quorate ? FLAG_QUORATE : 0) |
    (hb.resigning ? FLAG_RESIGNING : 0) |
    (hb.learning ? FLAG_LEARNING : 0) |
    (hb.handover ? FLAG_HANDOVER : 0) |
    (hb.formed ? FLAG_FORMED : 0) |
    (hb.observer ? FLAG_OBSERVER : 0) |
    (hb.bootstrap === 'unstated' ? 0 : FLAG_BOOTSTRAP_STATED) |
    (hb.bootstrap === 'self' ? FLAG_BOOTSTRAP_SELF : 0);
  body[7] = ROLES.indexOf(hb.role);
  body[8] = hb.priority;
  body[9] = Math.min(255, hb.members);
  body.writeUInt16BE(hb.intervalMs, 10);
  body.writeBigUInt64BE(BigInt(hb.epoch), 12);
  body.writeUInt32BE(hb.seq >>> 0, 20);
  body.writeDoubleBE(hb.ts, 24);
  body.writeUInt32BE(hb.term >>> 0, 32);
  body.writeUInt32BE(hb.leaderTerm >>> 0, 36);
  body.writeUInt32BE(Math.min(MAX_U32, Math.max(0, Math.floor(hb.grantMs))), 40);
  body.write(hb.digest.padEnd(16, '0').slice(0, 16), 44, 'hex');
  let at = FIXED;
  for (const n of strings) {
    body[at] = n.length;
    n.copy(body, at + 1);
    at += 1 + n.length;
  }
  body[at] = echoes.length;
  at += 1;
  for (const { index, e } of echoes) {
    body[at] = index;
    body.writeBigUInt64BE(BigInt(e.epoch), at + 1);
    body.writeUInt32BE(e.seq >>> 0, at + 9);
    body.writeDoubleBE(e.ts, at + 13);
    at += ECHO_BYTES;
  }
  return Buffer.concat([body, mac(body, secret)]);
}

/** Authenticates, then parses. Never throws: anything wrong is a drop reason. */
export function decodeHeartbeat(msg: Buffer, secret: Buffer, clusterId: number, names: readonly string[]): Decoded {
  if (msg.length < FIXED + 5 + MAC_BYTES) return drop('malformed', `${msg.length} bytes is too short`);
  if (msg[0] !== MAGIC0 || msg[1] !== MAGIC1) return drop('malformed', 'bad magic');
  if (msg[2] !== WIRE_VERSION)
    return drop('malformed', `unsupported version ${msg[2]} (this vipd speaks ${WIRE_VERSION})`);
  const body = msg.subarray(0, msg.length - MAC_BYTES);
  if (!timingSafeEqual(mac(body, secret), msg.subarray(msg.length - MAC_BYTES))) {
    return drop('bad_mac', 'HMAC does not match: another secret, or a forged or damaged message');
  }
  if (body[3] !== TYPE_HEARTBEAT) return drop('malformed', `unknown message type ${body[3]}`);
  const role = ROLES[body[7] as number];
  if (role === undefined) return drop('malformed', `unknown role ${body[7]}`);
  const strings: string[] = [];
  let at = FIXED;
  for (let i = 0; i < 4; i += 1) {
    const len = body[at];
    if (len === undefined || at + 1 + len > body.length) return drop('malformed', 'truncated name');
    strings.push(body.toString('utf8', at + 1, at + 1 + len));
    at += 1 + len;
  }
  const count = body[at];
  if (count === undefined || at + 1 + count * ECHO_BYTES !== body.length)
    return drop('malformed', 'echoes do not match the message length');
  at += 1;
  const echoes: Record<string, Echo> = {};
  for (let i = 0; i < count; i += 1, at += ECHO_BYTES) {
    const name = names[body[at] as number];
    const epoch = body.readBigUInt64BE(at + 1);
    if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return drop('malformed', 'echo epoch out of range');
    const echoTs = body.readDoubleBE(at + 13);
    if (!Number.isFinite(echoTs)) return drop('malformed', 'echo timestamp is not a number');
    // An index past our list: the sender's member list differs (admission drops it by digest).
    if (name !== undefined) echoes[name] = { epoch: Number(epoch), seq: body.readUInt32BE(at + 9), ts: echoTs };
  }
  const epoch = body.readBigUInt64BE(12);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return drop('malformed', 'epoch out of range');
  const ts = body.readDoubleBE(24);
  if (!Number.isFinite(ts)) return drop('malformed', 'timestamp is not a number');
  const received = body.readUInt16BE(4);
  if (received !== clusterId) return drop('wrong_cluster', `clusterId ${received}, expected ${clusterId}`);
  const flags = body[6] as number;
  const [sender = '', leader = '', vote = '', successor = ''] = strings;
  return {
    ok: true,
    heartbeat: {
      clusterId: received,
      sender,
      epoch: Number(epoch),
      seq: body.readUInt32BE(20),
      ts,
      role,
      priority: body[8] as number,
      intervalMs: body.readUInt16BE(10),
      term: body.readUInt32BE(32),
      quorate: (flags & FLAG_QUORATE) !== 0,
      resigning: (flags & FLAG_RESIGNING) !== 0,
      learning: (flags & FLAG_LEARNING) !== 0,
      handover: (flags & FLAG_HANDOVER) !== 0,
      formed: (flags & FLAG_FORMED) !== 0,
      observer: (flags & FLAG_OBSERVER) !== 0,
      bootstrap:
        (flags & FLAG_BOOTSTRAP_STATED) === 0 ? 'unstated' : (flags & FLAG_BOOTSTRAP_SELF) !== 0 ? 'self' : 'other',
      leader,
      leaderTerm: body.readUInt32BE(36),
      grantMs: body.readUInt32BE(40),
      vote,
      successor,
      digest: body.toString('hex', 44, 52),
      members: body[9] as number,
      echoes,
    },
  };
}

function mac(body: Buffer, secret: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

function drop(reason: DropReason, detail: string): Decoded {
  return { ok: false, reason, detail };
}
