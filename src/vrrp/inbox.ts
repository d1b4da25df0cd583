/**
 * What a received datagram must pass before the state machine sees it, cheapest check first: the
 * source address is a configured peer's (57 ns, before the 3 µs HMAC, so a flood from a stranger
 * costs little; the kernel's socket filter normally drops those already), the HMAC and layout
 * (wire.ts), the sender named is the member at that address, its member list is ours, and its
 * (epoch, seq) is newer than the last accepted (replay-guard.ts). Shared by the runner and the
 * simulator, so both admit exactly the same messages.
 */

import { type ClusterShape, clusterDigest, wireOrder } from './membership';
import { ReplayGuard } from './replay-guard';
import type { ElectionSettings, Heartbeat } from './types';
import { type DropReason, decodeHeartbeat } from './wire';

export type Admission =
  | { readonly ok: true; readonly heartbeat: Heartbeat }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

/** This member's side, for telling a restarted peer from a replay: its current epoch and clock. */
export interface Receiver {
  readonly epoch: number;
  readonly now: number;
}

export class Inbox {
  readonly names: readonly string[];
  readonly digest: string;
  private readonly byAddress: ReadonlyMap<string, string>;
  private readonly replay = new ReplayGuard();
  /** When a message of each sender was last accepted (the receiver's clock). */
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly settings: ClusterShape & Pick<ElectionSettings, 'self'>,
    private readonly secret: Buffer,
  ) {
    this.names = wireOrder(settings.members);
    this.digest = clusterDigest(settings);
    this.byAddress = new Map(
      settings.members.filter((m) => m.name !== settings.self.name).map((m) => [m.address, m.name]),
    );
  }

  /** A datagram as it arrived from `from` (the source IPv4 address). */
  admit(msg: Buffer, from: string, us: Receiver): Admission {
    if (!this.byAddress.has(from)) return refuse('unknown_sender', `${from} is not a configured peer's address`);
    const decoded = decodeHeartbeat(msg, this.secret, this.settings.clusterId, this.names);
    if (!decoded.ok) return decoded;
    return this.admitDecoded(decoded.heartbeat, from, us);
  }

  /** The checks after decoding (the simulator passes heartbeats without bytes). */
  admitDecoded(hb: Heartbeat, from: string, us: Receiver): Admission {
    const member = this.byAddress.get(from);
    if (member === undefined || member !== hb.sender) {
      return refuse('unknown_sender', `sender "${hb.sender}" from ${from} is not the configured peer at that address`);
    }
    if (hb.digest !== this.digest) {
      return refuse(
        'config_mismatch',
        `${hb.sender} has another member list or timing (${hb.members} members and ` +
          `interval ${hb.intervalMs}ms; we have ${this.settings.members.length} and ${this.settings.intervalMs}ms; or other names, ` +
          'addresses, deadAfter or maxDeadAfter): it is not counted until every member has the same peers and election timing',
      );
    }
    // A lower epoch is a later run (the sender's clock stepped back across a restart) only if the
    // message answers one of our heartbeats sent after we last heard the sender.
    const echo = hb.echoes[this.settings.self.name];
    const newerRun =
      echo !== undefined && echo.epoch === us.epoch && echo.ts > (this.lastAt.get(hb.sender) ?? Infinity);
    if (!this.replay.accept(hb.sender, hb.epoch, hb.seq, newerRun)) {
      return refuse('replay', `epoch ${hb.epoch} seq ${hb.seq} is not newer than the last accepted`);
    }
    this.lastAt.set(hb.sender, us.now);
    return { ok: true, heartbeat: hb };
  }
}

function refuse(reason: DropReason, detail: string): Admission {
  return { ok: false, reason, detail };
}
