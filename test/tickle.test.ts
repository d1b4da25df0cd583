/**
 * The takeover's tickle ACK byte for byte (src/takeover/tickle.ts), and the sender's batches, rounds,
 * pauses and cancel (src/takeover/tickle-sender.ts) with a fake socket and a virtual clock.
 * test/tickle-netns.test.ts sends real ones between namespaces.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VipdError } from '../src/errors';
import { buildTickleAck, TICKLE_PACKET_BYTES, TICKLE6_PACKET_BYTES } from '../src/takeover/tickle';
import {
  type TickleReport,
  type TickleScheduler,
  TickleSender,
  type TickleSenderOptions,
  type TickleTarget,
} from '../src/takeover/tickle-sender';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/**
 * 10.77.0.100:6443 -> 10.77.0.3:40000, seq 0, ack 0, summed by hand (a carry out of 16 bits is added back):
 *   IP:  4500 + 0028 + 0000 + 4000 + 4006 + 0000 + 0a4d + 0064 + 0a4d + 0003 = da2f; ~ = 25d0
 *   TCP: pseudo-header 0a4d + 0064 + 0a4d + 0003 + 0006 (protocol) + 0014 (length) = 151b;
 *        + 192b = 2e46; + 9c40 = ca86; + 5010 = 1_1a96 -> 1a97; + ffff = 1_1a96 -> 1a97; ~ = e568
 */
const TICKLE = hex(`
  45 00 0028 0000 4000 40 06 25d0 0a4d0064 0a4d0003
  192b 9c40 00000000 00000000 50 10 ffff e568 0000`);

/** One's-complement sum of 16-bit words, folded: written apart from the code under test on purpose. */
function onesSum(...parts: Buffer[]): number {
  const bytes = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i] ?? 0) * 256 + (bytes[i + 1] ?? 0);
    if (sum > 0xffff) sum -= 0xffff;
  }
  return sum;
}

/** True when both checksums of a 40-byte packet verify: the sum over a header and its checksum is 0xffff. */
function checksumsVerify(packet: Buffer): boolean {
  const pseudo = Buffer.concat([packet.subarray(12, 20), hex('0006 0014')]);
  return onesSum(packet.subarray(0, 20)) === 0xffff && onesSum(pseudo, packet.subarray(20)) === 0xffff;
}

describe('buildTickleAck', () => {
  it('builds a bare ACK from the VIP to the client byte for byte', () => {
    const packet = buildTickleAck({ srcIp: '10.77.0.100', srcPort: 6443, dstIp: '10.77.0.3', dstPort: 40000 });
    assert.equal(packet.length, TICKLE_PACKET_BYTES);
    assert.deepEqual(packet, TICKLE);
    assert.ok(checksumsVerify(TICKLE), 'the hand-made packet verifies with the independent sum');
  });

  it('puts seq and ack where they belong, in the TCP checksum only', () => {
    const packet = buildTickleAck({
      srcIp: '10.77.0.100',
      srcPort: 6443,
      dstIp: '10.77.0.3',
      dstPort: 40000,
      seq: 0x8000_0000,
      ack: 0x0102_0304,
    });
    // The sum above plus the new words: 1a97 + 8000 + 0000 + 0102 + 0304 = 9e9d; ~ = 6162
    assert.deepEqual(
      packet,
      hex(`
      45 00 0028 0000 4000 40 06 25d0 0a4d0064 0a4d0003
      192b 9c40 80000000 01020304 50 10 ffff 6162 0000`),
    );
  });

  it('handles the edges: ports 1 and 65535, all-ones and all-zero addresses, seq and ack 2^32 - 1', () => {
    const packet = buildTickleAck({
      srcIp: '255.255.255.255',
      srcPort: 65535,
      dstIp: '0.0.0.0',
      dstPort: 1,
      seq: 0xffff_ffff,
      ack: 0xffff_ffff,
    });
    // IP: c52e + ffff + ffff, each carry folded back in = c52e; ~ = 3ad1
    assert.deepEqual(
      packet,
      hex(`
      45 00 0028 0000 4000 40 06 3ad1 ffffffff 00000000
      ffff 0001 ffffffff ffffffff 50 10 ffff afd4 0000`),
    );
    assert.ok(checksumsVerify(packet));
  });

  it('writes a TCP checksum of 0000 as it is: TCP has no "no checksum" value, unlike UDP', () => {
    // 151b + 192b + 81a9 + 5010 = ffff; + ffff folds to ffff; ~ = 0000
    const packet = buildTickleAck({ srcIp: '10.77.0.100', srcPort: 6443, dstIp: '10.77.0.3', dstPort: 33193 });
    assert.equal(packet.readUInt16BE(36), 0);
    assert.ok(checksumsVerify(packet));
  });

  it('fills in checksums that verify for many inputs (a fixed pseudo-random walk)', () => {
    let x = 12345;
    const next = (mod: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % mod;
    };
    for (let i = 0; i < 2000; i++) {
      const ip = () => [next(256), next(256), next(256), next(256)].join('.');
      const fields = {
        srcIp: ip(),
        srcPort: 1 + next(65535),
        dstIp: ip(),
        dstPort: 1 + next(65535),
        seq: next(2 ** 31) * 2 + next(2),
        ack: next(2 ** 31) * 2 + next(2),
      };
      const packet = buildTickleAck(fields);
      assert.ok(checksumsVerify(packet), JSON.stringify(fields));
      assert.equal(packet.readUInt32BE(24), fields.seq);
      assert.equal(packet.readUInt32BE(28), fields.ack);
      assert.equal(packet.subarray(12, 16).join('.'), fields.srcIp);
    }
  });

  it('rejects bad input with the field named', () => {
    const ok = { srcIp: '10.77.0.100', srcPort: 6443, dstIp: '10.77.0.3', dstPort: 40000 };
    const bad = (fields: Record<string, unknown>) => () => buildTickleAck({ ...ok, ...fields } as typeof ok);
    for (const ip of ['10.0.0.256', '10.0.0', '::1', ' 10.0.0.1', '010.0.0.1', 'localhost', 167772161, undefined]) {
      assert.throws(bad({ dstIp: ip }), { name: 'TypeError', message: /^dstIp must be an IPv4 address/ });
    }
    assert.throws(bad({ srcIp: '1.2.3.4.5' }), { name: 'TypeError', message: /^srcIp / });
    for (const port of [0, 65536, -1, 1.5, Number.NaN]) {
      assert.throws(bad({ srcPort: port }), {
        name: 'RangeError',
        message: /^srcPort must be a TCP port from 1 to 65535/,
      });
    }
    assert.throws(bad({ dstPort: '6443' }), { name: 'TypeError', message: /^dstPort must be a number/ });
    for (const seq of [-1, 2 ** 32, 0.5]) assert.throws(bad({ seq }), { name: 'RangeError', message: /^seq / });
    assert.throws(bad({ ack: 2 ** 32 }), { name: 'RangeError', message: /^ack / });
  });
});

/**
 * [fd00:77::64]:6443 -> [fd00:77::3]:40000, seq 0, ack 0, summed by hand. No IP checksum in IPv6; TCP's
 * pseudo-header (RFC 8200 §8.1) is source, destination, the length as 32 bits and 0000 0006:
 *   fd00 + 0077 + 0064 = fddb; fd00 + 0077 + 0003 = fd7a; fddb + fd7a = 1_fb55 -> fb56; + 0014 = fb6a;
 *   + 0006 = fb70; + 192b = 1_149b -> 149c; + 9c40 = b0dc; + 5010 = 1_00ec -> 00ed; + ffff = 1_00ec
 *   -> 00ed; ~ = ff12
 */
const TICKLE6 = hex(`
  6000 0000 0014 06 40 fd000077000000000000000000000064 fd000077000000000000000000000003
  192b 9c40 00000000 00000000 50 10 ffff ff12 0000`);

/** True when the TCP checksum of a 60-byte IPv6 tickle verifies, summed over RFC 8200's pseudo-header. */
function checksum6Verifies(packet: Buffer): boolean {
  const pseudo = Buffer.concat([packet.subarray(8, 40), hex('00000014 00000006')]);
  return onesSum(pseudo, packet.subarray(40)) === 0xffff;
}

describe('buildTickleAck (IPv6)', () => {
  const fields = { srcIp: 'fd00:77::64', srcPort: 6443, dstIp: 'fd00:77::3', dstPort: 40000 };

  it('builds a bare ACK from the IPv6 VIP to the client byte for byte', () => {
    const packet = buildTickleAck(fields);
    assert.equal(packet.length, TICKLE6_PACKET_BYTES);
    assert.deepEqual(packet, TICKLE6);
    assert.ok(checksum6Verifies(TICKLE6), 'the hand-made packet verifies with the independent sum');
    // Any text form of the same addresses gives the same bytes.
    assert.deepEqual(buildTickleAck({ ...fields, srcIp: 'FD00:0077:0:0:0:0:0:0064', dstIp: 'fd00:77:0::3' }), TICKLE6);
  });

  it('puts seq and ack where they belong, in the TCP checksum only', () => {
    // The sum above plus the new words: 00ed + 8000 + 0000 + 0102 + 0304 = 84f3; ~ = 7b0c
    assert.deepEqual(
      buildTickleAck({ ...fields, seq: 0x8000_0000, ack: 0x0102_0304 }),
      hex(`
      6000 0000 0014 06 40 fd000077000000000000000000000064 fd000077000000000000000000000003
      192b 9c40 80000000 01020304 50 10 ffff 7b0c 0000`),
    );
  });

  it('handles the edges: all-ones and all-zero addresses, ports 65535 and 1, seq and ack 2^32 - 1', () => {
    const packet = buildTickleAck({
      srcIp: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      srcPort: 65535,
      dstIp: '::',
      dstPort: 1,
      seq: 0xffff_ffff,
      ack: 0xffff_ffff,
    });
    // Eight ffff words of the source fold to ffff; + 0014 + 0006 = 1_0019 -> 001a; + ffff (port) -> 001a;
    // + 0001 = 001b; + 4 x ffff -> 001b; + 5010 = 502b; + ffff -> 502b; ~ = afd4
    assert.deepEqual(
      packet,
      hex(`
      6000 0000 0014 06 40 ffffffffffffffffffffffffffffffff 00000000000000000000000000000000
      ffff 0001 ffffffff ffffffff 50 10 ffff afd4 0000`),
    );
    assert.ok(checksum6Verifies(packet));
  });

  it('writes a TCP checksum of 0000 as it is', () => {
    // Without the client port the sum is 00ed - 9c40 = 64ac (one's complement); 64ac + 9b53 = ffff; ~ = 0000
    const packet = buildTickleAck({ ...fields, dstPort: 0x9b53 });
    assert.equal(packet.readUInt16BE(56), 0);
    assert.ok(checksum6Verifies(packet));
  });

  it('fills in checksums that verify for many inputs (a fixed pseudo-random walk)', () => {
    let x = 54321;
    const next = (mod: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % mod;
    };
    // Not 0000:0000:0000:0000:0000:ffff: an IPv4-mapped address is refused (the client is IPv4).
    const ip = () =>
      Array.from({ length: 8 }, (_, i) => (i === 0 ? 0xfd00 + next(256) : next(65536)).toString(16)).join(':');
    for (let i = 0; i < 2000; i++) {
      const f = {
        srcIp: ip(),
        srcPort: 1 + next(65535),
        dstIp: ip(),
        dstPort: 1 + next(65535),
        seq: next(2 ** 31) * 2 + next(2),
        ack: next(2 ** 31) * 2 + next(2),
      };
      const packet = buildTickleAck(f);
      assert.ok(checksum6Verifies(packet), JSON.stringify(f));
      assert.equal(packet.readUInt32BE(44), f.seq);
      assert.equal(packet.readUInt32BE(48), f.ack);
      assert.equal(packet.readUInt16BE(40), f.srcPort);
      assert.equal(packet.readUInt16BE(42), f.dstPort);
    }
  });

  it('rejects a client of the other family, an IPv4-mapped or zoned address, naming the field', () => {
    const bad = (f: Record<string, unknown>) => () => buildTickleAck({ ...fields, ...f } as typeof fields);
    for (const ip of ['10.77.0.3', '::ffff:10.77.0.3', 'fe80::1%eth0', 'fd00::1::2', 'localhost', undefined]) {
      assert.throws(bad({ dstIp: ip }), { name: 'TypeError', message: /^dstIp must be an IPv6 address/ });
    }
    // An IPv4 VIP takes IPv4 clients only.
    assert.throws(bad({ srcIp: '10.77.0.100' }), { name: 'TypeError', message: /^dstIp must be an IPv4 address/ });
    for (const ip of ['::ffff:10.77.0.100', 'fd00::1%eth0', 'fd00:::1', 42]) {
      assert.throws(bad({ srcIp: ip }), { name: 'TypeError', message: /^srcIp must be an IP/ });
    }
    assert.throws(bad({ dstPort: 0 }), { name: 'RangeError', message: /^dstPort must be a TCP port/ });
    assert.throws(bad({ seq: 2 ** 32 }), { name: 'RangeError', message: /^seq / });
  });
});

/** A virtual clock: tasks run only when the test says so, in time order (ties in the order scheduled). */
class FakeScheduler implements TickleScheduler {
  time = 0;
  /** Every delay asked for, in order. */
  readonly delays: number[] = [];
  private readonly tasks = new Map<number, { at: number; fn: () => void }>();
  private nextId = 0;

  now(): number {
    return this.time;
  }

  schedule(fn: () => void, ms: number): () => void {
    const id = this.nextId++;
    this.tasks.set(id, { at: this.time + ms, fn });
    this.delays.push(ms);
    return () => this.tasks.delete(id);
  }

  get pending(): number {
    return this.tasks.size;
  }

  /** Runs the earliest task, moving the clock to it; false when there is none. */
  runNext(): boolean {
    let first: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.tasks) if (first === undefined || entry[1].at < first[1].at) first = entry;
    if (first === undefined) return false;
    this.tasks.delete(first[0]);
    this.time = Math.max(this.time, first[1].at);
    first[1].fn();
    return true;
  }

  /** Runs everything, up to `limit` tasks. */
  runAll(limit = 100_000): void {
    for (let i = 0; i < limit; i++) if (!this.runNext()) return;
    throw new Error(`more than ${limit} tasks: a loop that never ends?`);
  }
}

interface Sent {
  dstIp: string;
  srcIp: string;
  clientPort: number;
  vipPort: number;
  seq: number;
  ack: number;
  at: number;
}

type Behaviour = (attempt: number, dstIp: string) => boolean;

/**
 * Records what it sends, read back from the bytes. `behave(attempt)` decides each attempt: true sends,
 * false is a full socket, a throw is the kernel's refusal.
 */
class FakeSocket {
  readonly sent: Sent[] = [];
  attempts = 0;

  constructor(
    private readonly clock: { now(): number },
    private readonly behave: Behaviour = () => true,
  ) {}

  send(packet: Buffer, dstIp: string): boolean {
    const ok = this.behave(this.attempts++, dstIp);
    if (ok) {
      this.sent.push({
        dstIp,
        srcIp: packet.subarray(12, 16).join('.'),
        vipPort: packet.readUInt16BE(20),
        clientPort: packet.readUInt16BE(22),
        seq: packet.readUInt32BE(24),
        ack: packet.readUInt32BE(28),
        at: this.clock.now(),
      });
    }
    return ok;
  }
}

const VIP = '10.77.0.100';
const HALF = 0x8000_0000;
/** One pass per round: for the tests whose subject is not the passes. */
const ONE_PASS = { seqAck: [[0, 0]] } as const;

function targets(count: number, clientIp = '10.77.0.3'): TickleTarget[] {
  return Array.from({ length: count }, (_, i) => ({ clientIp, clientPort: 10_000 + i, vipPort: 6443 }));
}

function sender(socket: FakeSocket, clock: FakeScheduler, options: Partial<TickleSenderOptions> = {}): TickleSender {
  return new TickleSender({ socket, vip: VIP, targets: targets(3), scheduler: clock, ...options });
}

/** The report, which `done` must already hold: only microtasks run in between, no timer. */
async function settled(s: TickleSender): Promise<TickleReport> {
  let report: TickleReport | undefined;
  void s.done.then((r) => {
    report = r;
  });
  for (let i = 0; i < 3 && report === undefined; i++) await null;
  assert.ok(report !== undefined, 'done has not resolved');
  return report;
}

describe('TickleSender', () => {
  it('sends one tickle per target, in order, in batches with a yield between them', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock);
    const list = [...targets(1000), ...targets(201, '10.77.0.9')];
    const s = sender(socket, clock, { ...ONE_PASS, targets: list, batchSize: 500, roundsAtMs: [0] });
    void s.start();
    assert.equal(socket.sent.length, 500, 'the first batch goes within start()');
    assert.deepEqual([clock.pending, clock.delays], [1, [0]], 'then one yield (setImmediate), no timer');
    clock.runNext();
    assert.equal(socket.sent.length, 1000);
    clock.runNext();
    assert.equal(socket.sent.length, 1201);
    assert.equal(clock.pending, 0);
    assert.deepEqual(
      socket.sent.map((p) => [p.dstIp, p.clientPort]),
      list.map((t) => [t.clientIp, t.clientPort]),
    );
    assert.ok(socket.sent.every((p) => p.srcIp === VIP && p.vipPort === 6443 && p.seq === 0 && p.ack === 0));
    assert.deepEqual(await settled(s), {
      targets: 1201,
      passes: 1,
      rounds: 1,
      packetsSent: 1201,
      sendFailures: 0,
      failuresByCode: {},
      backoffs: 0,
      firstPassMs: 0,
      firstRoundMs: 0,
      durationMs: 0,
      stopped: false,
    });
  });

  it('ends a batch early when it has used its time budget, after one packet at least', async () => {
    const clock = new FakeScheduler();
    // Each send takes 4 ms: a 10 ms budget is used up after 3 packets.
    const socket = new FakeSocket(clock, () => {
      clock.time += 4;
      return true;
    });
    const s = sender(socket, clock, { ...ONE_PASS, targets: targets(7), roundsAtMs: [0], batchBudgetMs: 10 });
    void s.start();
    assert.deepEqual([socket.sent.length, clock.pending], [3, 1]);
    clock.runNext();
    assert.equal(socket.sent.length, 6);
    clock.runNext();
    assert.equal(socket.sent.length, 7);
    const slow = new FakeSocket(clock, () => {
      clock.time += 50;
      return true;
    });
    void sender(slow, clock, { ...ONE_PASS, roundsAtMs: [0], batchBudgetMs: 10 }).start();
    assert.equal(slow.sent.length, 1, 'a packet slower than the budget still goes, one per batch');
    clock.runAll();
    assert.equal(slow.sent.length, 3);
  });

  it('by default makes four passes per round, (0, 0) first, and rounds at 0, +600 and +1500 ms', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock);
    const s = sender(socket, clock, { targets: targets(2) });
    void s.start();
    clock.runAll();
    const round = (at: number) =>
      [
        [0, 0],
        [HALF, HALF],
        [0, HALF],
        [HALF, 0],
      ].flatMap(([seq, ack]) => [
        [at, 10_000, seq, ack],
        [at, 10_001, seq, ack],
      ]);
    assert.deepEqual(
      socket.sent.map((p) => [p.at, p.clientPort, p.seq, p.ack]),
      [...round(0), ...round(600), ...round(1500)],
    );
    assert.deepEqual(await settled(s), {
      targets: 2,
      passes: 4,
      rounds: 3,
      packetsSent: 24,
      sendFailures: 0,
      failuresByCode: {},
      backoffs: 0,
      firstPassMs: 0,
      firstRoundMs: 0,
      durationMs: 1500,
      stopped: false,
    });
  });

  it("a round that overruns its slot delays the next, spaced from the late one's start", async () => {
    const clock = new FakeScheduler();
    // Each send takes 200 ms of the virtual clock: a round of 3 targets x 2 passes lasts 1200 ms.
    const socket = new FakeSocket(clock, () => {
      clock.time += 200;
      return true;
    });
    const s = sender(socket, clock, {
      seqAck: [
        [0, 0],
        [HALF, HALF],
      ],
      batchSize: 1,
      roundsAtMs: [0, 600, 2500],
    });
    void s.start();
    clock.runAll();
    const starts = socket.sent.filter((p) => p.clientPort === 10_000 && p.seq === 0).map((p) => p.at - 200);
    // Round 1 was due at 600 and starts when round 0 ends (1200); round 2 at 1200 + 1900 = 3100.
    assert.deepEqual(starts, [0, 1200, 3100]);
    const report = await settled(s);
    assert.deepEqual([report.rounds, report.firstPassMs, report.firstRoundMs, report.durationMs], [3, 600, 1200, 4300]);
  });

  it('a full socket pauses the sender for backoffMs, then the same packet goes again', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock, (attempt) => attempt !== 2 && attempt !== 3);
    const s = sender(socket, clock, { ...ONE_PASS, targets: targets(5), roundsAtMs: [0], backoffMs: 7 });
    void s.start();
    assert.deepEqual([socket.sent.length, clock.delays], [2, [7]]);
    clock.runAll();
    assert.deepEqual(
      socket.sent.map((p) => [p.clientPort, p.at]),
      [
        [10_000, 0],
        [10_001, 0],
        [10_002, 14],
        [10_003, 14],
        [10_004, 14],
      ],
      'no packet skipped, none twice',
    );
    const report = await settled(s);
    assert.deepEqual([report.packetsSent, report.backoffs, report.sendFailures], [5, 2, 0]);
  });

  it('gives the rest of a round up after maxBackoffsPerRound pauses, counts it, and still runs the next', async () => {
    const clock = new FakeScheduler();
    // Full from the second packet until 100 ms, fine afterwards.
    const socket = new FakeSocket(clock, (attempt) => attempt === 0 || clock.time >= 100);
    const s = sender(socket, clock, {
      seqAck: [
        [0, 0],
        [HALF, HALF],
      ],
      targets: targets(10),
      roundsAtMs: [0, 600],
      maxBackoffsPerRound: 3,
    });
    void s.start();
    clock.runAll();
    assert.deepEqual(
      socket.sent.map((p) => p.at),
      [0, ...Array<number>(20).fill(600)],
    );
    const report = await settled(s);
    assert.deepEqual(
      [report.rounds, report.packetsSent, report.sendFailures, report.failuresByCode, report.backoffs],
      [2, 21, 19, { EAGAIN: 19 }, 4],
      'both passes of the rest of round 0 were given up',
    );
    assert.equal(report.firstPassMs, undefined, 'the first pass never ended');
  });

  it('counts a refused packet by its errno and sends the others', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock, (_, dstIp) => {
      // What RawIpv4Socket throws: the addon's errno error as the cause.
      const cause = Object.assign(new Error('sendto: Network is unreachable'), { code: 'ENETUNREACH' });
      if (dstIp === '10.9.9.9') throw new VipdError('VIPD_NATIVE', 'raw IPv4 send failed: ENETUNREACH', { cause });
      return true;
    });
    const list = [...targets(2), { clientIp: '10.9.9.9', clientPort: 1, vipPort: 6443 }, ...targets(2, '10.77.0.4')];
    const s = sender(socket, clock, { ...ONE_PASS, targets: list, roundsAtMs: [0, 600] });
    void s.start();
    clock.runAll();
    const report = await settled(s);
    assert.deepEqual([report.packetsSent, report.sendFailures, report.failuresByCode], [8, 2, { ENETUNREACH: 2 }]);
    assert.ok(!socket.sent.some((p) => p.dstIp === '10.9.9.9'));
  });

  it('stop() cancels the rest of a round and clears its timer; it is idempotent', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock);
    const s = sender(socket, clock, { targets: targets(1200), batchSize: 500 });
    void s.start();
    assert.equal(clock.pending, 1);
    s.stop();
    s.stop();
    assert.equal(clock.pending, 0, 'no batch left scheduled');
    clock.runAll();
    clock.time += 10_000;
    assert.equal(socket.sent.length, 500);
    const report = await settled(s);
    assert.deepEqual(
      [report.stopped, report.rounds, report.packetsSent, report.firstPassMs, report.firstRoundMs],
      [true, 0, 500, undefined, undefined],
    );
    assert.equal(await s.start(), report, 'start() after stop() sends nothing and returns the same report');
    assert.equal(socket.sent.length, 500);
  });

  it('stop() between rounds and during a pause clears the pending timer too', async () => {
    for (const when of ['between rounds', 'during a pause'] as const) {
      const clock = new FakeScheduler();
      const socket = new FakeSocket(clock, (attempt) => when === 'between rounds' || attempt !== 1);
      const s = sender(socket, clock);
      void s.start();
      assert.equal(clock.pending, 1, when);
      assert.equal(clock.delays[0], when === 'between rounds' ? 600 : 5);
      s.stop();
      assert.equal(clock.pending, 0, when);
      assert.equal((await settled(s)).stopped, true);
    }
  });

  it('stop() before start() sends nothing; an empty list ends at once', async () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock);
    const early = sender(socket, clock);
    early.stop();
    void early.start();
    assert.deepEqual([socket.attempts, clock.pending], [0, 0]);
    assert.deepEqual((await settled(early)).stopped, true);

    const empty = sender(socket, clock, { targets: [] });
    void empty.start();
    assert.deepEqual(await settled(empty), {
      targets: 0,
      passes: 4,
      rounds: 0,
      packetsSent: 0,
      sendFailures: 0,
      failuresByCode: {},
      backoffs: 0,
      firstPassMs: undefined,
      firstRoundMs: undefined,
      durationMs: 0,
      stopped: false,
    });
    assert.equal(clock.pending, 0);
  });

  it('rejects bad targets and options, naming the field', () => {
    const clock = new FakeScheduler();
    const socket = new FakeSocket(clock);
    const make = (options: Partial<TickleSenderOptions>) => () => sender(socket, clock, options);
    const withTarget = (t: Record<string, unknown>) =>
      make({ targets: [...targets(3), { clientIp: '10.77.0.3', clientPort: 1, vipPort: 6443, ...t } as TickleTarget] });
    assert.throws(withTarget({ clientPort: 0 }), {
      name: 'RangeError',
      message: /^targets\[3\]\.clientPort must be a TCP port/,
    });
    assert.throws(withTarget({ vipPort: 70_000 }), { name: 'RangeError', message: /^targets\[3\]\.vipPort / });
    assert.throws(withTarget({ clientIp: 'fe80::1' }), {
      name: 'TypeError',
      message: /^targets\[3\]\.clientIp must be an IPv4/,
    });
    assert.throws(make({ vip: '10.77.0.300' }), { name: 'TypeError', message: /^vip must be an IPv4/ });
    for (const roundsAtMs of [[], [0, 600, 600], [600, 0], [-1], [0, Number.POSITIVE_INFINITY]]) {
      assert.throws(make({ roundsAtMs }), { name: 'RangeError', message: /^roundsAtMs must be increasing/ });
    }
    assert.throws(make({ seqAck: [] }), { name: 'RangeError', message: /^seqAck needs/ });
    assert.throws(
      make({
        seqAck: [
          [0, 0],
          [0, 2 ** 32],
        ],
      }),
      { name: 'RangeError', message: /^seqAck\[1\]\.ack / },
    );
    assert.throws(make({ batchSize: 0 }), { name: 'RangeError', message: /^batchSize/ });
    assert.throws(make({ batchBudgetMs: 0 }), { name: 'RangeError', message: /^batchBudgetMs/ });
    assert.throws(make({ backoffMs: -1 }), { name: 'RangeError', message: /^backoffMs/ });
    assert.throws(make({ maxBackoffsPerRound: 1.5 }), { name: 'RangeError', message: /^maxBackoffsPerRound/ });
  });

  it('a dual-stack pair: each client is tickled from the VIP of its family, in one schedule', async () => {
    const clock = new FakeScheduler();
    const sent: { dstIp: string; bytes: number; src: string; dstPort: number }[] = [];
    const socket = {
      send(packet: Buffer, dstIp: string): boolean {
        const v6 = packet[0] === 0x60;
        sent.push({
          dstIp,
          bytes: packet.length,
          src: v6 ? packet.subarray(8, 24).toString('hex') : packet.subarray(12, 16).join('.'),
          dstPort: packet.readUInt16BE(v6 ? 42 : 22),
        });
        return true;
      },
    };
    const VIP6 = 'fd00:77::64';
    const list: TickleTarget[] = [
      { clientIp: '10.77.0.3', clientPort: 1000, vipPort: 6443 },
      { clientIp: 'fd00:77::3', clientPort: 1001, vipPort: 6443 },
      { clientIp: '10.77.0.4', clientPort: 1002, vipPort: 6443 },
    ];
    const s = new TickleSender({
      ...ONE_PASS,
      socket,
      vip: [VIP6, VIP],
      targets: list,
      scheduler: clock,
      roundsAtMs: [0],
    });
    void s.start();
    clock.runAll();
    assert.deepEqual(sent, [
      { dstIp: '10.77.0.3', bytes: 40, src: VIP, dstPort: 1000 },
      { dstIp: 'fd00:77::3', bytes: 60, src: 'fd000077000000000000000000000064', dstPort: 1001 },
      { dstIp: '10.77.0.4', bytes: 40, src: VIP, dstPort: 1002 },
    ]);
    assert.equal((await s.done).packetsSent, 3);
    // One IPv6 VIP alone tickles IPv6 clients.
    sent.length = 0;
    const only6 = new TickleSender({
      ...ONE_PASS,
      socket,
      vip: VIP6,
      targets: [list[1]!],
      scheduler: clock,
      roundsAtMs: [0],
    });
    void only6.start();
    clock.runAll();
    assert.deepEqual(
      sent.map((p) => [p.dstIp, p.bytes]),
      [['fd00:77::3', 60]],
    );
  });

  it('refuses a client of a family it has no VIP of, and two VIPs of one family', () => {
    const socket = { send: () => true };
    const make = (vip: string | string[], clientIp: string) => () =>
      new TickleSender({ socket, vip, targets: [{ clientIp, clientPort: 1, vipPort: 6443 }] });
    assert.throws(make(VIP, 'fd00:77::3'), { name: 'TypeError', message: /^targets\[0\]\.clientIp must be an IPv4/ });
    assert.throws(make('fd00:77::64', '10.77.0.3'), {
      name: 'TypeError',
      message: /^targets\[0\]\.clientIp must be an IPv6/,
    });
    assert.throws(make(['fd00:77::64', VIP], '::ffff:10.77.0.3'), { name: 'TypeError', message: /IPv4-mapped/ });
    assert.throws(make([VIP, '10.77.0.101'], '10.77.0.3'), {
      name: 'TypeError',
      message: /^vip\[1\]: a second IPv4 VIP/,
    });
    assert.throws(make(['fd00::1', 'fd00::2'], 'fd00::3'), {
      name: 'TypeError',
      message: /^vip\[1\]: a second IPv6 VIP/,
    });
    assert.throws(make([], '10.77.0.3'), { name: 'TypeError', message: /^vip: at least one/ });
    assert.throws(make(['fd00::1%eth0'], 'fd00::3'), { name: 'TypeError', message: /^vip\[0\] must be an IPv6/ });
    assert.doesNotThrow(make(['fd00:77::64', VIP], 'fd00:77::3'));
  });

  it('with real timers: other callbacks run between batches, and stop() leaves no timer behind', async () => {
    const timersAndImmediates = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
    const before = timersAndImmediates();
    const socket = new FakeSocket({ now: () => performance.now() });
    const s = new TickleSender({
      ...ONE_PASS,
      socket,
      vip: VIP,
      targets: targets(20_000),
      batchSize: 500,
      roundsAtMs: [0, 50],
      // Not the subject here: a cold JIT must not end the first batch early.
      batchBudgetMs: 10_000,
    });
    void s.start();
    // Queued after the sender's yield: it runs once the second batch is out, long before the round ends.
    const seenByImmediate = await new Promise<number>((resolve) => setImmediate(() => resolve(socket.sent.length)));
    assert.equal(seenByImmediate, 1000);
    const report = await s.done;
    assert.deepEqual([report.rounds, report.packetsSent], [2, 40_000]);
    const secondRound = socket.sent[20_000]?.at ?? 0;
    assert.ok(secondRound - (socket.sent[0]?.at ?? 0) >= 49, 'the second round waited for its slot');
    assert.equal(timersAndImmediates(), before);

    const stopped = new TickleSender({ socket, vip: VIP, targets: targets(2000), batchSize: 500 });
    void stopped.start();
    assert.equal(timersAndImmediates(), before + 1);
    stopped.stop();
    assert.equal(timersAndImmediates(), before, 'the pending immediate was cleared');
    assert.equal((await stopped.done).stopped, true);
  });
});
