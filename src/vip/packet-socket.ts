/**
 * A raw Ethernet socket on one interface (AF_PACKET, through the vipd_packet addon in native/):
 * sends whole frames and emits every ARP frame the interface receives. Shaped like dgram.Socket.
 *
 * The addon is loaded on first open(), so importing this module (dry runs, unit tests) never needs
 * a compiled addon.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { VipdError } from '../errors';

interface NativePacketSocket {
  send(frame: Buffer): number;
  close(): void;
  ref(): void;
  unref(): void;
}

export interface PacketBinding {
  PacketSocket: new (ifindex: number, onFrame: (frame: Buffer) => void) => NativePacketSocket;
  ifNameToIndex(name: string): number;
}

/** dist/src/vip -> native/build/Release, where `node-gyp rebuild -C native` puts the addon. */
export const NATIVE_ADDON_PATH = path.resolve(__dirname, '../../../native/build/Release/vipd_packet.node');

let binding: PacketBinding | undefined;

export function loadPacketBinding(): PacketBinding {
  if (binding !== undefined) return binding;
  try {
    binding = require(NATIVE_ADDON_PATH) as PacketBinding;
  } catch (err) {
    throw new VipdError('VIPD_NATIVE',
      `the native packet-socket addon could not be loaded from ${NATIVE_ADDON_PATH}: ${errorText(err)}; ` +
      'build it with `npm run build:native` (needs a C++ compiler, make and python3)', { cause: err });
  }
  return binding;
}

export interface PacketSocketEvents {
  /** One received ARP frame, Ethernet header included. Frames this host sent are not delivered. */
  frame: [frame: Buffer];
  close: [];
}

export class PacketSocket extends EventEmitter<PacketSocketEvents> {
  private native: NativePacketSocket | undefined;
  private boundName: string | undefined;
  private boundIndex: number | undefined;
  private closed = false;

  /** Binds to `ifname` (resolved to its ifindex now, in this process's network namespace). */
  open(ifname: string): this {
    if (this.closed) throw new VipdError('VIPD_NATIVE', 'this packet socket is closed; create a new one');
    if (this.native !== undefined) throw new VipdError('VIPD_NATIVE', `this packet socket is already open on ${this.boundName ?? '?'}`);
    const addon = loadPacketBinding();
    let index: number;
    try {
      index = addon.ifNameToIndex(ifname);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `interface "${ifname}" not found (${errnoCode(err)}); check vip.interface`, { cause: err });
    }
    try {
      this.native = new addon.PacketSocket(index, (frame) => this.emit('frame', frame));
    } catch (err) {
      const code = errnoCode(err);
      const hint = code === 'EPERM' || code === 'EACCES'
        ? '; vipd needs CAP_NET_RAW (root, or the NET_RAW capability in the static pod)'
        : '';
      throw new VipdError('VIPD_NATIVE', `cannot open a packet socket on ${ifname}: ${code}${hint}`, { cause: err });
    }
    this.boundName = ifname;
    this.boundIndex = index;
    return this;
  }

  get ifname(): string | undefined {
    return this.boundName;
  }

  get ifindex(): number | undefined {
    return this.boundIndex;
  }

  /**
   * Sends one Ethernet frame without blocking. Throws VipdError('VIPD_NATIVE') when the kernel
   * refuses (ENETDOWN while the link is down, ENOBUFS on a full queue); `cause.code` has the errno.
   */
  send(frame: Buffer): void {
    if (this.native === undefined) throw new VipdError('VIPD_NATIVE', 'send on a packet socket that is not open');
    try {
      this.native.send(frame);
    } catch (err) {
      throw new VipdError('VIPD_NATIVE', `send on ${this.boundName ?? '?'} failed: ${errnoCode(err)}`, { cause: err });
    }
  }

  /** Keeps the event loop alive while open (the default), like dgram. */
  ref(): this {
    this.native?.ref();
    return this;
  }

  unref(): this {
    this.native?.unref();
    return this;
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const native = this.native;
    this.native = undefined;
    if (native !== undefined) {
      native.close();
      this.emit('close');
    }
  }
}

export function createPacketSocket(): PacketSocket {
  return new PacketSocket();
}

function errnoCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return errorText(err);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
