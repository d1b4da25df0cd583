/**
 * ARP over Ethernet as bytes (RFC 826): the gratuitous ARP vipd sends on takeover and the parser
 * for the ARP frames it watches for conflicts. Pure functions, no sockets, so the bytes are
 * tested exactly (as kube-vip's pkg/vip/arp.go separates building from sending).
 */

export type ArpOp = 'request' | 'reply';

export interface ArpPacket {
  readonly op: ArpOp;
  /** Lower-case, colon separated: "02:00:00:00:00:01". */
  readonly senderMac: string;
  /** Dotted quad. */
  readonly senderIp: string;
  readonly targetMac: string;
  readonly targetIp: string;
}

export const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const HTYPE_ETHERNET = 1;
const OP_REQUEST = 1;
const OP_REPLY = 2;
const ETH_HEADER = 14;
const ARP_LENGTH = 28;
/**
 * Frames are padded to Ethernet's 60-byte minimum (ETH_ZLEN). A NIC pads runts itself, but veth,
 * bridges and tap devices forward the 42 bytes as they are, and some receivers drop runts.
 */
export const MIN_FRAME = 60;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';

/**
 * A gratuitous ARP announcing that `ip` is at `mac`, broadcast to the segment.
 *
 * Both forms exist because receivers disagree about which one updates their cache (RFC 5944 §4.6
 * allows either; kube-vip alternates them), so vipd sends one of each per round:
 *  - request: sender = target = VIP, target MAC 00:00:00:00:00:00, the ARP Announcement of
 *    RFC 5227 §2.3 (§3 explains why a request: every host on the segment processes it).
 *  - reply: sender = target = VIP and target MAC = sender MAC, as RFC 5944 §4.6 specifies, for
 *    the older switches and routers that only learn from replies. Not ff:ff:ff:ff:ff:ff: Linux
 *    (net/ipv4/arp.c, arp_is_garp) treats a reply as gratuitous only when target MAC equals sender
 *    MAC, and otherwise ignores it for an entry updated within the last `locktime` (1 s) — exactly
 *    the window after a failover. test/vip-netns.test.ts checks both forms against a real kernel.
 */
export function buildGratuitousArp(op: ArpOp, mac: string, ip: string): Buffer {
  const sender = macToBytes(mac);
  const address = ipv4ToBytes(ip);
  const frame = Buffer.alloc(MIN_FRAME);
  macToBytes(BROADCAST_MAC).copy(frame, 0);
  sender.copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_ARP, 12);
  const arp = ETH_HEADER;
  frame.writeUInt16BE(HTYPE_ETHERNET, arp);
  frame.writeUInt16BE(ETHERTYPE_IPV4, arp + 2);
  frame.writeUInt8(6, arp + 4);
  frame.writeUInt8(4, arp + 5);
  frame.writeUInt16BE(op === 'request' ? OP_REQUEST : OP_REPLY, arp + 6);
  sender.copy(frame, arp + 8);
  address.copy(frame, arp + 14);
  (op === 'request' ? macToBytes(ZERO_MAC) : sender).copy(frame, arp + 18);
  address.copy(frame, arp + 24);
  return frame;
}

/**
 * The ARP packet in an Ethernet frame, or undefined for anything else (short, not ARP, not
 * Ethernet/IPv4, an unknown op). Never throws: the input comes from the wire.
 */
export function parseArpFrame(frame: Uint8Array): ArpPacket | undefined {
  const eth = etherPayload(frame);
  if (eth === undefined) return undefined;
  const { view, ethertype, payload: arp } = eth;
  if (ethertype !== ETHERTYPE_ARP || frame.length < arp + ARP_LENGTH) return undefined;
  if (view.getUint16(arp) !== HTYPE_ETHERNET || view.getUint16(arp + 2) !== ETHERTYPE_IPV4) return undefined;
  if (view.getUint8(arp + 4) !== 6 || view.getUint8(arp + 5) !== 4) return undefined;
  const opcode = view.getUint16(arp + 6);
  if (opcode !== OP_REQUEST && opcode !== OP_REPLY) return undefined;
  return {
    op: opcode === OP_REQUEST ? 'request' : 'reply',
    senderMac: formatMac(frame.subarray(arp + 8, arp + 14)),
    senderIp: formatIpv4(frame.subarray(arp + 14, arp + 18)),
    targetMac: formatMac(frame.subarray(arp + 18, arp + 24)),
    targetIp: formatIpv4(frame.subarray(arp + 24, arp + 28)),
  };
}

/**
 * An Ethernet frame's ethertype and where its payload starts, or undefined when too short. Packet
 * sockets normally see VLAN tags stripped, but a tag left in place (no offload) is skipped.
 */
export function etherPayload(frame: Uint8Array): { view: DataView; ethertype: number; payload: number } | undefined {
  if (frame.length < ETH_HEADER) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let offset = 12;
  let ethertype = view.getUint16(offset);
  if (ethertype === ETHERTYPE_VLAN) {
    offset += 4;
    if (frame.length < offset + 2) return undefined;
    ethertype = view.getUint16(offset);
  }
  return { view, ethertype, payload: offset + 2 };
}

/** "02:00:00:00:00:01" (either case) to 6 bytes; throws on anything else (it is our own input). */
export function macToBytes(mac: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac))
    throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(mac.split(':').map((part) => parseInt(part, 16)));
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** "10.0.0.1" to 4 bytes; throws on anything else (it is our own, already validated, input). */
export function ipv4ToBytes(ip: string): Buffer {
  const parts = ip.split('.');
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255)))
    throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return Buffer.from(bytes);
}

export function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes).join('.');
}
