/**
 * Sharing the client connections on the VIP between the members, so that whoever takes the VIP
 * over knows the clients of the member that had it (conn-table.ts says why).
 *
 * Sending: every `deltaEveryMs` what changed (a delta, numbered), and every `snapshotEveryMs` the
 * whole table in chunks (a snapshot, naming the last delta it includes), to every peer, on the
 * election's socket (conn-wire.ts). Deltas make a client known within an interval of connecting;
 * snapshots repair what lost deltas missed and let peers forget what closed. A member whose table
 * is empty sends one empty snapshot, then nothing until it relays again: backups are silent.
 *
 * Receiving: one table per peer. A delta is applied as it comes (a gap is only a few entries
 * missed until the next snapshot); a complete snapshot replaces the table, and the recent deltas
 * newer than it are applied again on top. Tickling an entry that has closed meanwhile is harmless
 * (the client's kernel has no such connection), missing one costs that client its own timeout, so
 * the tables err on the side of keeping entries. Bounded: entries per peer, chunks per snapshot.
 *
 * Both families: the IPv4 and IPv6 clients of a dual-stack pair of VIPs share the table. Deltas go
 * per family (IPv4 ones in the narrow form vipd 0.2 reads, 160 a datagram; IPv6 ones wide, 64 a
 * datagram; conn-wire.ts); a snapshot is in chunks of 160 while the table holds IPv4 clients only,
 * of 64 once it holds any IPv6 one (each chunk wide, unless it happens to hold IPv4 clients only: a
 * vipd 0.2 member never completes such a snapshot and keeps the IPv4 entries its deltas gave it).
 */
import type { Member } from '../vrrp/types';
import type { DropReason } from '../vrrp/wire';
import { type ClientEndpoint, ConnTable, endpointFamily, endpointKey } from './conn-table';
import {
  type ConnMessage,
  decodeConnMessage,
  encodeConnMessage,
  isConnMessage,
  MAX_ENTRIES,
  MAX_WIDE_ENTRIES,
  maxEntriesFor,
} from './conn-wire';

export interface ConnSyncOptions {
  readonly clusterId: number;
  readonly self: Member;
  readonly members: readonly Member[];
  readonly secret: Buffer;
  /** This run's epoch (wall-clock ms at start), as the election's. */
  readonly epoch: number;
  /** Sends one datagram to every peer (the election runner's socket). */
  readonly send: (bytes: Buffer) => void;
  readonly deltaEveryMs: number;
  readonly snapshotEveryMs?: number;
  readonly maxEntries?: number;
}

/** Deltas kept per peer to re-apply over a snapshot that completes after them. */
const RECENT_DELTAS = 64;
/**
 * A snapshot larger than this many chunks is refused: the default 65,536 entries make 410 narrow
 * chunks of 160 when IPv4, 1,024 wide ones of 64 when all IPv6 (each family is chunked apart).
 */
const MAX_CHUNKS = 1024;
/** Datagrams sent per delta tick at most; the rest goes in the next tick (a storm must not flood). */
const MAX_DATAGRAMS_PER_TICK = 64;
/**
 * A new connection is told to the peers this soon (not at the next interval): one that opened just
 * before the master died must be on the next master's list too, or its client waits for its own
 * timeouts. Closes wait for the interval (a tickle to a closed connection is harmless).
 */
const NEW_CONNECTION_DELAY_MS = 5;
/**
 * A snapshot this long after a delta (at most one pending): a delta lost on the way (a full socket
 * buffer during a reconnect storm) is repaired within this, not only at the next periodic snapshot.
 */
const SETTLE_SNAPSHOT_MS = 500;

interface PeerTable {
  epoch: number;
  /** The last delta the last applied snapshot included: older deltas arriving late are skipped. */
  snapshotDseq: number;
  readonly entries: Map<string, ClientEndpoint>;
  recent: { dseq: number; adds: readonly ClientEndpoint[]; removes: readonly ClientEndpoint[] }[];
  snapshot: { id: number; chunks: Map<number, readonly ClientEndpoint[]>; total: number; dseq: number } | undefined;
}

export class ConnSync {
  readonly table: ConnTable;
  private readonly byAddress: ReadonlyMap<string, string>;
  private readonly replay = new WindowGuard();
  private readonly peers = new Map<string, PeerTable>();
  private readonly maxEntries: number;
  private seq = 0;
  private dseq = 0;
  private snapshotId = 0;
  /** Delta messages still to send (a tick sends at most MAX_DATAGRAMS_PER_TICK). */
  private backlog: ConnMessage[] = [];
  private sentEmpty = true;
  private deltaTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ConnSyncOptions) {
    this.maxEntries = opts.maxEntries ?? 65_536;
    this.table = new ConnTable(this.maxEntries);
    this.byAddress = new Map(opts.members.filter((m) => m.name !== opts.self.name).map((m) => [m.address, m.name]));
  }

  start(): void {
    this.deltaTimer = setInterval(() => this.flushDelta(), this.opts.deltaEveryMs);
    this.deltaTimer.unref();
    this.snapshotTimer = setInterval(() => this.sendSnapshot(), this.opts.snapshotEveryMs ?? 5_000);
    this.snapshotTimer.unref();
  }

  /** A connection opened: send the delta within NEW_CONNECTION_DELAY_MS (batching what opens meanwhile). */
  opened(e: ClientEndpoint): void {
    this.table.opened(e);
    if (this.soonTimer !== undefined || this.deltaTimer === undefined) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.flushDelta();
    }, NEW_CONNECTION_DELAY_MS);
    this.soonTimer.unref();
  }

  close(): void {
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    if (this.deltaTimer !== undefined) clearInterval(this.deltaTimer);
    if (this.snapshotTimer !== undefined) clearInterval(this.snapshotTimer);
    this.deltaTimer = undefined;
    this.snapshotTimer = undefined;
  }

  /** Sends what changed since the last delta (and what a previous tick could not send). */
  flushDelta(): void {
    const { adds, removes } = this.table.takeDelta();
    // Each family apart: the IPv4 clients' deltas stay in the form a vipd 0.2 member reads.
    for (const [family, perDatagram] of [
      [4, MAX_ENTRIES],
      [6, MAX_WIDE_ENTRIES],
    ] as const) {
      const familyAdds = adds.filter((e) => endpointFamily(e) === family);
      const familyRemoves = removes.filter((e) => endpointFamily(e) === family);
      for (let a = 0, r = 0; a < familyAdds.length || r < familyRemoves.length; ) {
        const addPart = familyAdds.slice(a, a + perDatagram);
        const removePart = familyRemoves.slice(r, r + perDatagram - addPart.length);
        a += addPart.length;
        r += removePart.length;
        this.dseq += 1;
        this.backlog.push({ kind: 'delta', ...this.common(), dseq: this.dseq, adds: addPart, removes: removePart });
      }
    }
    if (this.table.size > 0) this.sentEmpty = false;
    for (const m of this.backlog.splice(0, MAX_DATAGRAMS_PER_TICK)) this.emit({ ...m, seq: this.nextSeq() });
    if ((adds.length > 0 || removes.length > 0) && this.settleTimer === undefined && this.deltaTimer !== undefined) {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined;
        this.sendSnapshot();
      }, SETTLE_SNAPSHOT_MS);
      this.settleTimer.unref();
    }
  }

  /** Sends the whole table in chunks; an empty table once, so peers forget, then nothing. */
  sendSnapshot(): void {
    const entries = this.table.snapshot();
    if (entries.length === 0 && this.sentEmpty) return;
    this.sentEmpty = entries.length === 0;
    this.snapshotId += 1;
    // Each family in chunks of its own form: IPv4 clients 160 a datagram in the narrow form, IPv6
    // ones 64 in the wide one. One IPv6 client must not turn a large IPv4 table into 2.5 times the
    // datagrams (and a burst the election socket's buffer may not hold).
    const v4 = entries.filter((e) => endpointFamily(e) === 4);
    const v6 = entries.filter((e) => endpointFamily(e) === 6);
    const slices: ClientEndpoint[][] = [];
    for (const [list, per] of [
      [v4, maxEntriesFor(v4)],
      [v6, maxEntriesFor(v6)],
    ] as const) {
      for (let at = 0; at < list.length; at += per) slices.push(list.slice(at, at + per));
    }
    if (slices.length === 0) slices.push([]);
    slices.forEach((slice, i) => {
      this.emit({
        kind: 'snapshot',
        ...this.common(),
        seq: this.nextSeq(),
        dseq: this.dseq,
        snapshotId: this.snapshotId,
        chunk: i,
        chunks: slices.length,
        entries: slice,
      });
    });
  }

  /** Whether a datagram is for this channel (a connection message), before authentication. */
  isOwn(msg: Buffer): boolean {
    return isConnMessage(msg);
  }

  /** A connection message from `from` (the source address). Returns a drop reason, or undefined when taken. */
  receive(msg: Buffer, from: string): DropReason | undefined {
    const member = this.byAddress.get(from);
    if (member === undefined) return 'unknown_sender';
    const decoded = decodeConnMessage(msg, this.opts.secret, this.opts.clusterId);
    if (!decoded.ok) return decoded.reason;
    const m = decoded.message;
    if (m.sender !== member) return 'unknown_sender';
    if (!this.replay.accept(m.sender, m.epoch, m.seq)) return 'replay';
    this.apply(m);
    return undefined;
  }

  /** The connections each peer reported, as known now. */
  peerEntries(peer: string): ClientEndpoint[] {
    return [...(this.peers.get(peer)?.entries.values() ?? [])];
  }

  /** Every peer's connections, and forgets them: the takeover resets them once. */
  takeAll(): { peer: string; entries: ClientEndpoint[] }[] {
    const out = [...this.peers.entries()].map(([peer, t]) => ({ peer, entries: [...t.entries.values()] }));
    this.peers.clear();
    return out.filter((p) => p.entries.length > 0);
  }

  /** Known entries per peer (metrics). */
  counts(): { peer: string; count: number }[] {
    return [...this.peers.entries()].map(([peer, t]) => ({ peer, count: t.entries.size }));
  }

  private apply(m: ConnMessage): void {
    let t = this.peers.get(m.sender);
    if (t === undefined || t.epoch !== m.epoch) {
      // A new run of that member: whatever it had before is gone with its old process.
      t = { epoch: m.epoch, snapshotDseq: 0, entries: new Map(), recent: [], snapshot: undefined };
      this.peers.set(m.sender, t);
    }
    if (m.kind === 'delta') {
      if (m.dseq <= t.snapshotDseq) return;
      this.applyDelta(t, m.adds, m.removes);
      t.recent.push({ dseq: m.dseq, adds: m.adds, removes: m.removes });
      if (t.recent.length > RECENT_DELTAS) t.recent.shift();
      return;
    }
    if (m.chunks > MAX_CHUNKS) return;
    if (t.snapshot?.id !== m.snapshotId)
      t.snapshot = { id: m.snapshotId, chunks: new Map(), total: m.chunks, dseq: m.dseq };
    t.snapshot.chunks.set(m.chunk, m.entries);
    if (t.snapshot.chunks.size < t.snapshot.total) return;
    // Complete: the table is the snapshot, plus the deltas it did not include yet.
    const snap = t.snapshot;
    t.snapshot = undefined;
    t.snapshotDseq = snap.dseq;
    t.entries.clear();
    for (const part of snap.chunks.values()) this.applyDelta(t, part, []);
    for (const d of t.recent) if (d.dseq > snap.dseq) this.applyDelta(t, d.adds, d.removes);
  }

  private applyDelta(t: PeerTable, adds: readonly ClientEndpoint[], removes: readonly ClientEndpoint[]): void {
    for (const e of adds) if (t.entries.size < this.maxEntries) t.entries.set(endpointKey(e), e);
    for (const e of removes) t.entries.delete(endpointKey(e));
  }

  private common() {
    return { clusterId: this.opts.clusterId, sender: this.opts.self.name, epoch: this.opts.epoch, seq: 0 };
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  private emit(m: ConnMessage): void {
    this.opts.send(encodeConnMessage(m, this.opts.secret));
  }
}

/**
 * Anti-replay for connection messages, with a window (as IPsec's): each delta says something of its
 * own, so one that a reordering network delivers after a later one must still count; a message seen
 * before, older than the window, or of an earlier run of its sender is refused.
 */
export class WindowGuard {
  private readonly last = new Map<string, { epoch: number; top: number; seen: Set<number> }>();

  constructor(private readonly window = 256) {}

  accept(sender: string, epoch: number, seq: number): boolean {
    const prev = this.last.get(sender);
    if (prev === undefined || epoch > prev.epoch) {
      this.last.set(sender, { epoch, top: seq, seen: new Set([seq]) });
      return true;
    }
    if (epoch < prev.epoch || seq <= prev.top - this.window || prev.seen.has(seq)) return false;
    prev.seen.add(seq);
    if (seq > prev.top) {
      prev.top = seq;
      for (const old of prev.seen) if (old <= seq - this.window) prev.seen.delete(old);
    }
    return true;
  }
}
