/**
 * The connection list the members share (src/takeover): the table's deltas and snapshots, the
 * bytes on the wire, and a receiver that ends up with the sender's table through loss, reordering
 * and replays.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../src/log/logger';
import { ConnSync, WindowGuard } from '../src/takeover/conn-sync';
import { type ClientEndpoint, ConnTable } from '../src/takeover/conn-table';
import {
  type ConnMessage,
  decodeConnMessage,
  encodeConnMessage,
  isConnMessage,
  MAX_ENTRIES,
  MAX_WIDE_ENTRIES,
} from '../src/takeover/conn-wire';
import { RawTickler, Takeover } from '../src/takeover/takeover';
import * as wire02 from './helpers/conn-wire-0.2';
import { mulberry32 } from './helpers/sim-cluster';

const secret = Buffer.from('conn-sync-test-secret-0123');
const members = [
  { name: 'cp1', address: '10.0.0.1' },
  { name: 'cp2', address: '10.0.0.2' },
];
const ep = (i: number): ClientEndpoint => ({
  clientIp: `10.1.${(i >> 8) & 255}.${i & 255}`,
  clientPort: 30000 + (i % 30000),
  vipPort: 6443,
});
/** An IPv6 client, in the canonical text the balancer reports (fd00:1::<i>, a zero group compressed). */
const ep6 = (i: number): ClientEndpoint => ({
  clientIp: `fd00:1::${(i + 1).toString(16)}`,
  clientPort: 30000 + (i % 30000),
  vipPort: 6443,
});
const sorted = (list: readonly ClientEndpoint[]) => list.map((e) => `${e.clientIp}:${e.clientPort}`).sort();

describe('ConnTable', () => {
  it('deltas carry what changed since the last one; open-and-close in between is never sent', () => {
    const t = new ConnTable();
    t.opened(ep(1));
    t.opened(ep(2));
    assert.deepEqual(sorted(t.takeDelta().adds), sorted([ep(1), ep(2)]));
    t.closed(ep(1));
    t.opened(ep(3));
    t.closed(ep(3));
    const d = t.takeDelta();
    assert.deepEqual(sorted(d.removes), sorted([ep(1)]));
    assert.deepEqual(d.adds, []);
    assert.deepEqual(sorted(t.snapshot()), sorted([ep(2)]));
  });

  it('is bounded', () => {
    const t = new ConnTable(10);
    for (let i = 0; i < 50; i += 1) t.opened(ep(i));
    assert.equal(t.size, 10);
    assert.equal(t.overflow, 40);
  });
});

describe('connection messages on the wire', () => {
  it('round-trip deltas and snapshot chunks, and fit one Ethernet frame', () => {
    const adds = Array.from({ length: 100 }, (_, i) => ep(i));
    const removes = Array.from({ length: 60 }, (_, i) => ep(1000 + i));
    const delta = {
      kind: 'delta' as const,
      clusterId: 3,
      sender: 'cp1',
      epoch: 1_700_000_000_000,
      seq: 7,
      dseq: 9,
      adds,
      removes,
    };
    const bytes = encodeConnMessage(delta, secret);
    assert.ok(isConnMessage(bytes));
    assert.ok(bytes.length <= 1472, `${bytes.length} bytes`);
    assert.deepEqual(decodeConnMessage(bytes, secret, 3), { ok: true, message: delta });
    const snap = {
      kind: 'snapshot' as const,
      clusterId: 3,
      sender: 'cp1',
      epoch: 5,
      seq: 8,
      dseq: 9,
      snapshotId: 2,
      chunk: 1,
      chunks: 3,
      entries: adds,
    };
    assert.deepEqual(decodeConnMessage(encodeConnMessage(snap, secret), secret, 3), { ok: true, message: snap });
    assert.throws(() => encodeConnMessage({ ...delta, adds: [...adds, ...adds] }, secret), RangeError);
    assert.equal(MAX_ENTRIES, 160);
  });

  it('refuse another secret, another cluster, any flipped bit, any truncation, without throwing', () => {
    const bytes = encodeConnMessage(
      { kind: 'delta', clusterId: 3, sender: 'cp1', epoch: 1, seq: 1, dseq: 1, adds: [ep(1)], removes: [] },
      secret,
    );
    const other = decodeConnMessage(bytes, Buffer.from('another-secret-16-bytes'), 3);
    assert.equal(!other.ok && other.reason, 'bad_mac');
    const cluster = decodeConnMessage(bytes, secret, 4);
    assert.equal(!cluster.ok && cluster.reason, 'wrong_cluster');
    for (let i = 0; i < bytes.length; i += 1) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] as number) ^ 0x04;
      assert.equal(decodeConnMessage(copy, secret, 3).ok, false, `byte ${i}`);
      assert.equal(decodeConnMessage(bytes.subarray(0, i), secret, 3).ok, false, `length ${i}`);
    }
  });

  it('an authenticated entry with port 0 is malformed (the tickle sender would refuse it at takeover)', () => {
    for (const bad of [
      { clientIp: '10.0.0.5', clientPort: 0, vipPort: 6443 },
      { clientIp: '10.0.0.5', clientPort: 40000, vipPort: 0 },
      { clientIp: 'fd00::5', clientPort: 0, vipPort: 6443 },
    ]) {
      const bytes = encodeConnMessage(
        { kind: 'delta', clusterId: 3, sender: 'cp1', epoch: 1, seq: 1, dseq: 1, adds: [ep(1), bad], removes: [] },
        secret,
      );
      const r = decodeConnMessage(bytes, secret, 3);
      assert.equal(!r.ok && r.reason, 'malformed', JSON.stringify(bad));
    }
  });
});

describe('connection messages with IPv6 clients', () => {
  const delta = (adds: ClientEndpoint[], removes: ClientEndpoint[]): ConnMessage => ({
    kind: 'delta',
    clusterId: 3,
    sender: 'c'.repeat(63),
    epoch: 1_700_000_000_000,
    seq: 7,
    dseq: 9,
    adds,
    removes,
  });

  it('round-trip IPv6 and mixed entries, in the wide form (kind 3, 4), within one Ethernet frame over IPv6', () => {
    const v6 = Array.from({ length: MAX_WIDE_ENTRIES }, (_, i) => ep6(i));
    const odd: ClientEndpoint[] = [
      { clientIp: '2001:db8::1:0:0:1', clientPort: 1, vipPort: 65535 },
      { clientIp: '::2', clientPort: 65535, vipPort: 1 },
      { clientIp: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', clientPort: 443, vipPort: 443 },
      { clientIp: '255.255.255.255', clientPort: 2, vipPort: 6443 },
      { clientIp: '0.0.0.1', clientPort: 3, vipPort: 6443 },
    ];
    const mixed = delta([...v6.slice(0, 20), ep(1), ...odd], [ep(2), ...v6.slice(20, 20 + MAX_WIDE_ENTRIES - 27)]);
    const bytes = encodeConnMessage(mixed, secret);
    assert.equal(bytes[6], 3, 'a wide delta');
    // The largest datagram: 37 + 63 (name) + 64 x 20 + 32 = 1,412 bytes; over IPv6 a frame carries 1,452.
    assert.equal(bytes.length, 1412);
    assert.deepEqual(decodeConnMessage(bytes, secret, 3), { ok: true, message: mixed });
    assert.throws(() => encodeConnMessage(delta([...v6, ep(1)], []), secret), {
      name: 'RangeError',
      message: /more than 64 entries/,
    });
    // All IPv4: the narrow form vipd 0.2 sends, 160 entries in the same 1,412 bytes.
    const narrow = encodeConnMessage(
      delta(
        Array.from({ length: MAX_ENTRIES }, (_, i) => ep(i)),
        [],
      ),
      secret,
    );
    assert.deepEqual([narrow[6], narrow.length], [1, 1412]);
    const snap: ConnMessage = {
      kind: 'snapshot',
      clusterId: 3,
      sender: 'cp1',
      epoch: 5,
      seq: 8,
      dseq: 9,
      snapshotId: 2,
      chunk: 0,
      chunks: 1,
      entries: [ep(5), ep6(5)],
    };
    const snapBytes = encodeConnMessage(snap, secret);
    assert.equal(snapBytes[6], 4, 'a wide snapshot chunk');
    assert.deepEqual(decodeConnMessage(snapBytes, secret, 3), { ok: true, message: snap });
  });

  it('writes an IPv6 entry as 16 address bytes and two ports, an IPv4 one of a wide message as ::ffff:a.b.c.d', () => {
    const bytes = encodeConnMessage(
      delta([{ clientIp: 'fd00:77::3', clientPort: 40000, vipPort: 6443 }], [{ ...ep(1), clientPort: 258 }]),
      secret,
    );
    const entries = bytes.subarray(36 + 1 + 63, bytes.length - 32);
    assert.equal(
      entries.toString('hex'),
      'fd000077000000000000000000000003' + '9c40' + '192b' + '00000000000000000000ffff0a010001' + '0102' + '192b',
    );
    // Any text form of an address goes as the same bytes and comes back canonical.
    const long = encodeConnMessage(
      delta([{ clientIp: 'FD00:0077:0:0:0:0:0:3', clientPort: 1, vipPort: 2 }], []),
      secret,
    );
    const back = decodeConnMessage(long, secret, 3);
    assert.equal(back.ok && back.message.kind === 'delta' && back.message.adds[0]?.clientIp, 'fd00:77::3');
    assert.throws(
      () => encodeConnMessage(delta([{ clientIp: 'fe80::1%eth0', clientPort: 1, vipPort: 2 }], []), secret),
      TypeError,
    );
  });

  it('refuse any flipped bit or truncation of a wide message, without throwing', () => {
    const bytes = encodeConnMessage(delta([ep6(1), ep(1)], [ep6(2)]), secret);
    for (let i = 0; i < bytes.length; i += 1) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] as number) ^ 0x04;
      assert.equal(decodeConnMessage(copy, secret, 3).ok, false, `byte ${i}`);
      assert.equal(decodeConnMessage(bytes.subarray(0, i), secret, 3).ok, false, `length ${i}`);
    }
  });

  it('vipd 0.2 reads the IPv4-only messages as before and drops the wide ones as malformed, without throwing', () => {
    const v4 = delta([ep(1), ep(2)], [ep(3)]);
    // This version's IPv4-only message is byte for byte 0.2's, both ways.
    assert.deepEqual(encodeConnMessage(v4, secret), wire02.encodeConnMessage(v4, secret));
    assert.deepEqual(wire02.decodeConnMessage(encodeConnMessage(v4, secret), secret, 3), { ok: true, message: v4 });
    assert.deepEqual(decodeConnMessage(wire02.encodeConnMessage(v4, secret), secret, 3), { ok: true, message: v4 });
    // A wide delta and snapshot chunk reach 0.2's decoder as its election runner hands them over: they
    // pass its dispatch and its HMAC, and are refused for their kind (counted as dropped, `malformed`).
    const wide = [
      encodeConnMessage(delta([ep6(1)], [ep(1)]), secret),
      encodeConnMessage(
        { ...delta([], []), kind: 'snapshot', snapshotId: 1, chunk: 0, chunks: 1, entries: [ep6(2)] },
        secret,
      ),
    ];
    for (const [i, bytes] of wide.entries()) {
      assert.equal(wire02.isConnMessage(bytes), true);
      assert.deepEqual(wire02.decodeConnMessage(bytes, secret, 3), {
        ok: false,
        reason: 'malformed',
        detail: `unknown kind ${i === 0 ? 3 : 4}`,
      });
    }
  });
});

describe('ConnSync between two members', () => {
  /** cp1 relays; cp2 receives through a lossy, reordering link. */
  function pair(loss: number, seed: number, deltaEveryMs = 100) {
    const rnd = mulberry32(seed);
    const inFlight: Buffer[] = [];
    const sender = new ConnSync({
      clusterId: 1,
      self: members[0]!,
      members,
      secret,
      epoch: 100,
      send: (b) => inFlight.push(b),
      deltaEveryMs,
    });
    const receiver = new ConnSync({
      clusterId: 1,
      self: members[1]!,
      members,
      secret,
      epoch: 200,
      send: () => undefined,
      deltaEveryMs: 100,
    });
    const deliver = () => {
      const batch = inFlight
        .splice(0)
        .filter(() => rnd() >= loss)
        .sort(() => rnd() - 0.5);
      for (const b of batch) assert.equal(receiver.receive(b, '10.0.0.1'), undefined);
    };
    return { sender, receiver, deliver, inFlight };
  }

  it('with no loss, the receiver knows every connection within a delta', () => {
    const { sender, receiver, deliver } = pair(0, 1);
    for (let i = 0; i < 1000; i += 1) sender.table.opened(ep(i));
    sender.flushDelta();
    deliver();
    assert.equal(receiver.peerEntries('cp1').length, 1000);
    for (let i = 0; i < 500; i += 1) sender.table.closed(ep(i));
    sender.flushDelta();
    deliver();
    assert.deepEqual(sorted(receiver.peerEntries('cp1')), sorted(sender.table.snapshot()));
  });

  it('a new connection is sent within a few ms, not at the next interval; closes wait for it', async () => {
    const { sender, receiver, deliver, inFlight } = pair(0, 4, 5000);
    sender.start();
    try {
      await new Promise((r) => setTimeout(r, 20));
      sender.opened(ep(1));
      sender.opened(ep(2));
      // Long before the 5 s interval: the opens went out together in one datagram.
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(inFlight.length, 1);
      deliver();
      assert.deepEqual(sorted(receiver.peerEntries('cp1')), sorted([ep(1), ep(2)]));
      sender.table.closed(ep(1));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(inFlight.length, 0, 'a close waits for the interval');
    } finally {
      sender.close();
    }
  });

  it('through 30 % loss and reordering, the next complete snapshot repairs what lost deltas missed', () => {
    for (const seed of [1, 2, 3]) {
      const { sender, receiver, deliver } = pair(0.3, seed);
      const rnd = mulberry32(seed + 99);
      for (let round = 0; round < 50; round += 1) {
        for (let i = 0; i < 40; i += 1) {
          const e = ep(Math.floor(rnd() * 3000));
          if (rnd() < 0.6) sender.table.opened(e);
          else sender.table.closed(e);
        }
        sender.flushDelta();
        deliver();
      }
      // Snapshots until one arrives whole (each chunk is lost with 30 %); the deltas carry on meanwhile.
      for (
        let i = 0;
        i < 200 && sorted(receiver.peerEntries('cp1')).join() !== sorted(sender.table.snapshot()).join();
        i += 1
      ) {
        sender.sendSnapshot();
        deliver();
      }
      assert.deepEqual(sorted(receiver.peerEntries('cp1')), sorted(sender.table.snapshot()), `seed ${seed}`);
    }
  });

  it('replays are refused; a new run of the sender replaces its table; takeAll forgets', () => {
    const { sender, receiver, deliver, inFlight } = pair(0, 4, 5000);
    sender.table.opened(ep(1));
    sender.flushDelta();
    const recorded = Buffer.from(inFlight[0] as Buffer);
    deliver();
    assert.equal(receiver.receive(recorded, '10.0.0.1'), 'replay');
    assert.equal(receiver.receive(recorded, '10.0.0.9'), 'unknown_sender');
    const restarted = new ConnSync({
      clusterId: 1,
      self: members[0]!,
      members,
      secret,
      epoch: 101,
      send: (b) => {
        assert.equal(receiver.receive(b, '10.0.0.1'), undefined);
      },
      deltaEveryMs: 100,
    });
    restarted.table.opened(ep(2));
    restarted.flushDelta();
    assert.deepEqual(sorted(receiver.peerEntries('cp1')), sorted([ep(2)]));
    assert.deepEqual(
      receiver.takeAll().map((p) => [p.peer, p.entries.length]),
      [['cp1', 1]],
    );
    assert.deepEqual(receiver.takeAll(), []);
  });

  it('IPv6 and IPv4 clients of a dual-stack pair: deltas per family, wide snapshots, the same table through loss', () => {
    const { sender, receiver, deliver, inFlight } = pair(0, 6);
    // One key per connection: the same port of an IPv4 and an IPv6 client, and two IPv6 clients whose
    // text differs in one group, are four connections.
    const same = [ep(1), { ...ep6(1), clientPort: ep(1).clientPort }, ep6(0x10), ep6(0x100)];
    for (const e of same) sender.table.opened(e);
    for (let i = 0; i < 300; i += 1) sender.table.opened(ep(1000 + i));
    for (let i = 0; i < 200; i += 1) sender.table.opened(ep6(1000 + i));
    assert.equal(sender.table.size, 504);
    sender.flushDelta();
    // IPv4: 301 in 2 narrow deltas of up to 160; IPv6: 203 in 4 wide ones of up to 64.
    assert.deepEqual(
      inFlight.map((b) => b[6]),
      [1, 1, 3, 3, 3, 3],
    );
    deliver();
    assert.deepEqual(sorted(receiver.peerEntries('cp1')), sorted(sender.table.snapshot()));
    assert.equal(receiver.peerEntries('cp1').length, 504);
    // The snapshot goes per family: the 301 IPv4 clients in 2 narrow chunks of up to 160, the 203
    // IPv6 ones in 4 wide chunks of up to 64 (not ceil(504 / 64) = 8 wide ones).
    sender.sendSnapshot();
    assert.deepEqual(
      inFlight.map((b) => b[6]),
      [2, 2, 4, 4, 4, 4],
    );
    const fresh = new ConnSync({
      clusterId: 1,
      self: members[1]!,
      members,
      secret,
      epoch: 300,
      send: () => undefined,
      deltaEveryMs: 100,
    });
    for (const b of inFlight) assert.equal(fresh.receive(b, members[0]!.address), undefined);
    assert.equal(fresh.peerEntries('cp1').length, 504, 'the chunks together are the whole table');
    inFlight.splice(0);

    // Through loss and reordering, both families: a complete snapshot repairs what lost deltas missed.
    for (const seed of [7, 8]) {
      const lossy = pair(0.3, seed);
      const rnd = mulberry32(seed + 99);
      for (let round = 0; round < 40; round += 1) {
        for (let i = 0; i < 40; i += 1) {
          const n = Math.floor(rnd() * 3000);
          const e = rnd() < 0.5 ? ep(n) : ep6(n);
          if (rnd() < 0.6) lossy.sender.table.opened(e);
          else lossy.sender.table.closed(e);
        }
        lossy.sender.flushDelta();
        lossy.deliver();
      }
      for (
        let i = 0;
        i < 400 && sorted(lossy.receiver.peerEntries('cp1')).join() !== sorted(lossy.sender.table.snapshot()).join();
        i += 1
      ) {
        lossy.sender.sendSnapshot();
        lossy.deliver();
      }
      const want = sorted(lossy.sender.table.snapshot());
      assert.ok(want.some((k) => k.includes('::')) && want.some((k) => !k.includes('::')), 'both families');
      assert.deepEqual(sorted(lossy.receiver.peerEntries('cp1')), want, `seed ${seed}`);
    }
  });

  it('a vipd 0.2 member still hears of the IPv4 clients of a dual-stack table, and nothing else', () => {
    const { sender, inFlight } = pair(0, 9);
    for (let i = 0; i < 3; i += 1) sender.table.opened(ep(i));
    for (let i = 0; i < 2; i += 1) sender.table.opened(ep6(i));
    sender.flushDelta();
    sender.sendSnapshot();
    const seen = inFlight.map((b) => wire02.decodeConnMessage(b, secret, 1));
    // The IPv4 delta is read; the IPv6 delta is dropped as malformed. Of the snapshot, 0.2 reads the
    // IPv4 chunk (1 of 2) and drops the wide one, so it never completes it: it keeps what deltas said.
    assert.deepEqual(
      seen.map((d) =>
        d.ok
          ? `${d.message.kind} ${d.message.kind === 'delta' ? d.message.adds.length : `${d.message.chunk + 1}/${d.message.chunks}`}`
          : d.reason,
      ),
      ['delta 3', 'malformed', 'snapshot 1/2', 'malformed'],
    );
  });

  it('an emptied table is announced once, then the member is silent', () => {
    const { sender, receiver, deliver, inFlight } = pair(0, 5);
    sender.table.opened(ep(1));
    sender.flushDelta();
    sender.table.closed(ep(1));
    sender.flushDelta();
    sender.sendSnapshot();
    deliver();
    assert.deepEqual(receiver.peerEntries('cp1'), []);
    sender.sendSnapshot();
    sender.flushDelta();
    assert.equal(inFlight.length, 0, 'nothing more to say');
  });
});

describe('WindowGuard', () => {
  it('accepts reordered messages within the window once; refuses repeats, old ones and earlier runs', () => {
    const g = new WindowGuard(4);
    assert.equal(g.accept('a', 1, 10), true);
    assert.equal(g.accept('a', 1, 8), true, 'reordered, within the window');
    assert.equal(g.accept('a', 1, 8), false, 'a repeat');
    assert.equal(g.accept('a', 1, 6), false, 'older than the window');
    assert.equal(g.accept('a', 0, 99), false, 'an earlier run');
    assert.equal(g.accept('a', 2, 1), true, 'a new run');
  });
});

describe('Takeover', () => {
  it("a new master resets the previous master's clients on the VIP, once; other connections are not shared", () => {
    const log = { info: () => undefined } as unknown as Logger;
    const toB: Buffer[] = [];
    const syncA = new ConnSync({
      clusterId: 1,
      self: members[0]!,
      members,
      secret,
      epoch: 1,
      send: (b) => toB.push(b),
      deltaEveryMs: 100,
    });
    const syncB = new ConnSync({
      clusterId: 1,
      self: members[1]!,
      members,
      secret,
      epoch: 2,
      send: () => undefined,
      deltaEveryMs: 100,
    });
    const started: ClientEndpoint[][] = [];
    let stops = 0;
    const tickler = {
      start: (t: readonly ClientEndpoint[]) => {
        started.push([...t]);
      },
      stop: () => {
        stops += 1;
      },
    };
    let reset = 0;
    const meters = {
      clientsReset: {
        inc: (n: number) => {
          reset += n;
        },
      },
    };
    const a = new Takeover({ sync: syncA, tickler, vips: ['10.0.0.100'], log, meters });
    const b = new Takeover({ sync: syncB, tickler, vips: ['10.0.0.100'], log, meters });
    for (let i = 0; i < 20; i += 1)
      a.observer.opened({
        localAddress: '10.0.0.100',
        localPort: 6443,
        remoteAddress: `10.0.5.${i}`,
        remotePort: 40000 + i,
      });
    a.observer.opened({ localAddress: '10.0.0.1', localPort: 6443, remoteAddress: '10.0.5.99', remotePort: 1 });
    a.observer.closed({ localAddress: '10.0.0.100', localPort: 6443, remoteAddress: '10.0.5.0', remotePort: 40000 });
    syncA.flushDelta();
    for (const m of toB) assert.equal(syncB.receive(m, '10.0.0.1'), undefined);
    b.onVipHeld(true);
    assert.equal(started.length, 1);
    assert.equal(started[0]!.length, 19, 'the 19 still open on the VIP, not the one on the node address');
    assert.equal(reset, 19);
    b.onVipHeld(false);
    assert.equal(stops, 1, 'losing the VIP stops what is left of the resets');
    b.onVipHeld(true);
    assert.equal(started.length, 1, 'reset once: the lists are forgotten after');
  });

  it('a dual-stack pair: the clients of either VIP are recorded, shared and reset; others are not', () => {
    const log = { info: () => undefined } as unknown as Logger;
    const toB: Buffer[] = [];
    const sync = (i: 0 | 1, send: (b: Buffer) => void) =>
      new ConnSync({ clusterId: 1, self: members[i]!, members, secret, epoch: 1 + i, send, deltaEveryMs: 100 });
    const syncA = sync(0, (b) => toB.push(b));
    const meters = { clientsReset: { inc: () => undefined } };
    const started: ClientEndpoint[][] = [];
    const tickler = { start: (t: readonly ClientEndpoint[]) => started.push([...t]), stop: () => undefined };
    // The config's IPv6 VIP in any text form; the balancer reports it canonical.
    const a = new Takeover({ sync: syncA, tickler, vips: ['10.0.0.100', 'FD00:0:0::100'], log, meters });
    const conn = (localAddress: string, remoteAddress: string, remotePort: number) =>
      a.observer.opened({ localAddress, localPort: 6443, remoteAddress, remotePort });
    conn('fd00::100', 'fd00::5', 40001); // an IPv6 client of the IPv6 VIP
    conn('10.0.0.100', '10.0.5.1', 40002); // an IPv4 client of the IPv4 VIP (the "::" listener says so)
    conn('::ffff:10.0.0.100', '::ffff:10.0.5.2', 40003); // the same in the mapped form
    conn('fd00::1', 'fd00::6', 40004); // the node's own IPv6 address: not the VIP
    conn('10.0.0.1', '10.0.5.3', 40005); // the node's own IPv4 address
    conn('fd00::100', 'fe80::1%eth0', 40006); // a zoned client: the wire cannot carry it (never seen)
    conn('fd00::100', '10.0.5.4', 40007); // a family that does not match the VIP's (never seen)
    assert.deepEqual(sorted(syncA.table.snapshot()), ['10.0.5.1:40002', '10.0.5.2:40003', 'fd00::5:40001']);
    a.observer.closed({ localAddress: '10.0.0.100', localPort: 6443, remoteAddress: '10.0.5.1', remotePort: 40002 });
    syncA.flushDelta();

    // A successor with the same pair resets both families; one with the IPv4 VIP only, the IPv4 client.
    for (const [vips, want] of [
      [
        ['10.0.0.100', 'fd00::100'],
        ['10.0.5.2:40003', 'fd00::5:40001'],
      ],
      [['10.0.0.100'], ['10.0.5.2:40003']],
    ] as const) {
      const syncB = sync(1, () => undefined);
      for (const m of toB) assert.equal(syncB.receive(m, '10.0.0.1'), undefined);
      new Takeover({ sync: syncB, tickler, vips, log, meters }).onVipHeld(true);
      assert.deepEqual(sorted(started.pop() ?? []), want);
    }
    syncA.close();
  });

  it("RawTickler: one raw socket per family among the clients; a family whose socket fails is logged, the other's go", async () => {
    const logged: { fields: Record<string, unknown>; msg: string }[] = [];
    const log = {
      info: (fields: Record<string, unknown>, msg: string) => logged.push({ fields, msg }),
      error: (fields: Record<string, unknown>, msg: string) => logged.push({ fields, msg }),
    } as unknown as Logger;
    const sent: string[] = [];
    const closed: number[] = [];
    const opened: number[] = [];
    const fake = (family: 4 | 6, fail: boolean) => {
      opened.push(family);
      if (fail) throw new Error('EPERM');
      return {
        family,
        closed: false,
        send: (packet: Buffer, dstIp: string) => {
          sent.push(`${family} ${packet.length} ${dstIp}`);
          return true;
        },
        close: () => {
          closed.push(family);
        },
      };
    };
    const targets = [
      { clientIp: '10.0.5.1', clientPort: 1, vipPort: 6443 },
      { clientIp: 'fd00::5', clientPort: 2, vipPort: 6443 },
    ];
    const run = async (vips: string[], failing: number | undefined) => {
      sent.length = 0;
      closed.length = 0;
      opened.length = 0;
      logged.length = 0;
      const t = new RawTickler({
        vips,
        log,
        ticklesSent: { inc: () => undefined },
        openSocket: (family) => fake(family, family === failing),
      });
      t.start(targets);
      t.stop();
      await new Promise((r) => setImmediate(r));
    };
    await run(['10.0.0.100', 'fd00::100'], undefined);
    // The first pass goes out within start(): four (seq, ack) passes make 8 packets, in list order.
    assert.deepEqual(sent.slice(0, 2), ['4 40 10.0.5.1', '6 60 fd00::5']);
    assert.deepEqual(
      [opened, closed.sort()],
      [
        [4, 6],
        [4, 6],
      ],
    );
    await run(['10.0.0.100', 'fd00::100'], 6);
    assert.deepEqual([...new Set(sent)], ['4 40 10.0.5.1']);
    assert.deepEqual(
      logged.filter((l) => l.fields.family !== undefined).map((l) => [l.fields.family, l.msg]),
      [[6, "cannot reset the previous master's clients: no raw socket"]],
    );
    // An IPv4 VIP alone: no IPv6 socket is opened, its clients are nobody's to reset.
    await run(['10.0.0.100'], undefined);
    assert.deepEqual([opened, [...new Set(sent)]], [[4], ['4 40 10.0.5.1']]);
  });
});
