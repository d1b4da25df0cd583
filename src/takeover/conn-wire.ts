/**
 * The connection list on the wire: message type 2 on the election's socket, authenticated like a
 * heartbeat (HMAC-SHA256 trailer with the shared secret; src/vrrp/wire.ts has type 1).
 *
 *   0  'V' 'P'   2 u8 version (2)   3 u8 type (2 = connections)
 *   4  u16 clusterId   6 u8 kind   7 u8 0
 *          kind 1 delta, 2 snapshot chunk: IPv4 entries only (vipd 0.2's form)
 *          kind 3 delta, 4 snapshot chunk: wide entries, either family (vipd 0.3)
 *   8  u64 epoch (the sender's run)   16 u32 seq (per message, for the replay guard)
 *  20  u32 dseq: a delta's number; for a snapshot, the last delta it includes
 *  24  u32 snapshot id   28 u16 chunk   30 u16 chunks   32 u16 adds (or entries)   34 u16 removes
 *  36  u8 len + UTF-8: the sender's name
 *   …  entries (adds, then removes):
 *          kinds 1, 2: 8 bytes each: u32 client IPv4, u16 client port, u16 VIP port
 *          kinds 3, 4: 20 bytes each: 16-byte client IPv6 address (an IPv4 client as IPv4-mapped
 *          ::ffff:a.b.c.d, RFC 4291 §2.5.5.2), u16 client port, u16 VIP port
 *   …  32 bytes HMAC-SHA256(secret, all of the above)
 *
 * Which VIP an entry belongs to is its family's: a member has one VIP per family (a dual-stack pair).
 *
 * At most MAX_ENTRIES (160) narrow or MAX_WIDE_ENTRIES (64) wide entries per datagram: 1,412 bytes
 * either way with a 63-byte name, one Ethernet frame over IPv6 too (1,452 bytes of UDP payload).
 *
 * The encoder picks the form: a message whose entries are all IPv4 goes as kind 1 or 2, exactly as
 * vipd 0.2 sends it; one with an IPv6 entry as kind 3 or 4. Compatibility with vipd 0.2 members (a
 * rolling upgrade), decided for new kinds rather than a new version: an IPv4-only cluster's messages
 * are unchanged, so 0.2 and 0.3 members share their lists both ways; a 0.2 member that receives kind
 * 3 or 4 checks the version (still 2) and the HMAC, then refuses the unknown kind as `malformed`
 * without throwing: the election runner counts it in vipd_heartbeats_dropped_total{reason="malformed"}
 * and warns (rate-limited, "dropped a heartbeat"), and the member goes on. So in a cluster with an
 * IPv6 VIP a 0.2 member gets the IPv4 deltas still (ConnSync sends each family's deltas apart), but
 * neither the IPv6 entries nor the snapshots of a table holding any: it resets the IPv4 clients it
 * heard of, no IPv6 client, as before. (A new version number would have cost the IPv4 lists too.)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { ClientEndpoint } from './conn-table';

const MAGIC0 = 0x56;
const MAGIC1 = 0x50;
const VERSION = 2;
export const TYPE_CONNECTIONS = 2;
const FIXED = 36;
const ENTRY = 8;
const WIDE_ENTRY = 20;
const MAC_BYTES = 32;
/** Entries per datagram of IPv4 clients only (kinds 1 and 2). */
export const MAX_ENTRIES = 160;
/** Entries per datagram when any is IPv6 (kinds 3 and 4). */
export const MAX_WIDE_ENTRIES = 64;
const KIND_DELTA = 1;
const KIND_SNAPSHOT = 2;
const KIND_WIDE_DELTA = 3;
const KIND_WIDE_SNAPSHOT = 4;
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

/** Whether these entries need the wide form (kinds 3 and 4): any of them is IPv6. */
export function needsWide(entries: readonly ClientEndpoint[]): boolean {
  return entries.some((e) => !isIPv4(e.clientIp));
}

/** How many of these entries fit one datagram: MAX_ENTRIES, or MAX_WIDE_ENTRIES if any is IPv6. */
export function maxEntriesFor(entries: readonly ClientEndpoint[]): number {
  return needsWide(entries) ? MAX_WIDE_ENTRIES : MAX_ENTRIES;
}

/**
 * The datagram, in the narrow form when every entry is IPv4 (what vipd 0.2 reads), the wide one
 * otherwise. Throws RangeError for a name too long or more entries than the form holds, TypeError
 * for a client address of neither family.
 */
export function encodeConnMessage(m: ConnMessage, secret: Buffer): Buffer {
  const name = Buffer.from(m.sender, 'utf8');
  if (name.length > MAX_NAME_BYTES) throw new RangeError('member name too long');
  const first = m.kind === 'delta' ? m.adds : m.entries;
  const second = m.kind === 'delta' ? m.removes : [];
  const wide = needsWide(first) || needsWide(second);
  const max = wide ? MAX_WIDE_ENTRIES : MAX_ENTRIES;
  if (first.length + second.length > max) throw new RangeError(`more than ${max} entries in one message`);
  const entry = wide ? WIDE_ENTRY : ENTRY;
  const body = Buffer.alloc(FIXED + 1 + name.length + (first.length + second.length) * entry);
  body[0] = MAGIC0;
  body[1] = MAGIC1;
  body[2] = VERSION;
  body[3] = TYPE_CONNECTIONS;
  body.writeUInt16BE(m.clusterId, 4);
  body[6] = m.kind === 'delta' ? (wide ? KIND_WIDE_DELTA : KIND_DELTA) : wide ? KIND_WIDE_SNAPSHOT : KIND_SNAPSHOT;
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
    if (wide) {
      addressBytes(e.clientIp).copy(body, at);
      body.writeUInt16BE(e.clientPort, at + 16);
      body.writeUInt16BE(e.vipPort, at + 18);
    } else {
      body.writeUInt32BE(ipv4ToUint(e.clientIp), at);
      body.writeUInt16BE(e.clientPort, at + 4);
      body.writeUInt16BE(e.vipPort, at + 6);
    }
    at += entry;
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
  const code = body[6];
  const kind =
    code === KIND_DELTA || code === KIND_WIDE_DELTA
      ? 'delta'
      : code === KIND_SNAPSHOT || code === KIND_WIDE_SNAPSHOT
        ? 'snapshot'
        : undefined;
  if (kind === undefined) return fail('malformed', `unknown kind ${code}`);
  const wide = code === KIND_WIDE_DELTA || code === KIND_WIDE_SNAPSHOT;
  const entry = wide ? WIDE_ENTRY : ENTRY;
  const nameLen = body[FIXED] as number;
  const adds = body.readUInt16BE(32);
  const removes = body.readUInt16BE(34);
  if (FIXED + 1 + nameLen + (adds + removes) * entry !== body.length) return fail('malformed', 'lengths do not match');
  const epoch = body.readBigUInt64BE(8);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return fail('malformed', 'epoch out of range');
  const received = body.readUInt16BE(4);
  if (received !== clusterId) return fail('wrong_cluster', `clusterId ${received}, expected ${clusterId}`);
  const sender = body.toString('utf8', FIXED + 1, FIXED + 1 + nameLen);
  const read = (from: number, count: number): ClientEndpoint[] => {
    const out: ClientEndpoint[] = [];
    for (let i = 0, at = from; i < count; i += 1, at += entry) {
      out.push(
        wide
          ? {
              clientIp: bytesToAddress(body.subarray(at, at + 16)),
              clientPort: body.readUInt16BE(at + 16),
              vipPort: body.readUInt16BE(at + 18),
            }
          : {
              clientIp: uintToIpv4(body.readUInt32BE(at)),
              clientPort: body.readUInt16BE(at + 4),
              vipPort: body.readUInt16BE(at + 6),
            },
      );
    }
    return out;
  };
  const start = FIXED + 1 + nameLen;
  // A port 0 is no connection (the tickle sender would refuse it, at takeover): the message is malformed.
  for (let i = 0, at = start; i < adds + removes; i += 1, at += entry) {
    if (body.readUInt16BE(at + (wide ? 16 : 4)) === 0 || body.readUInt16BE(at + (wide ? 18 : 6)) === 0) {
      return fail('malformed', `entry ${i} has port 0`);
    }
  }
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
      message: { kind, ...common, adds: read(start, adds), removes: read(start + adds * entry, removes) },
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

/** A client address as 16 bytes: IPv6 as it is, IPv4 as IPv4-mapped (::ffff:a.b.c.d). */
function addressBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ipaddr.IPv4.parse(ip).toIPv4MappedAddress().toByteArray());
  if (!isIPv6(ip) || ip.includes('%')) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  return Buffer.from(ipaddr.IPv6.parse(ip).toByteArray());
}

/**
 * 16 bytes as the text the balancer reports a client in: an IPv4-mapped address as the dotted quad,
 * IPv6 in canonical (RFC 5952) text, so a peer's entry has the key the member's own has.
 */
function bytesToAddress(bytes: Buffer): string {
  const address = new ipaddr.IPv6([...bytes]);
  return address.isIPv4MappedAddress() ? address.toIPv4Address().toString() : address.toRFC5952String();
}
