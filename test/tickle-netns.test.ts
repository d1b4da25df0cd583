/**
 * Tickle ACKs against real kernels: a master dies the way a node dies, the new master takes the VIP
 * and tickles the dead master's clients, and every idle connection fails at once with ECONNRESET.
 * Hosts a (the old master), b (the new one) and c (the clients) of a lab (src/lab/netns.ts: one
 * bridge, 10.77.0.0/24) run test/helpers/tickle-agent.ts. The raw socket's own checks run in this
 * process, sending to loopback only. Needs root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { VipdError } from '../src/errors';
import type { Lab, LanHost, NsProcess } from '../src/lab/netns';
import { sleep, waitFor } from '../src/lab/wait';
import { loadPacketBinding } from '../src/native/addon';
import { openRawIpv4Socket, openRawIpv6Socket } from '../src/native/raw-socket';
import { buildTickleAck } from '../src/takeover/tickle';
import type { TickleReport } from '../src/takeover/tickle-sender';
import { programCommand } from './helpers/agent-loop';
import type { GroupSummary } from './helpers/tickle-agent';
import { withLab } from './helpers/with-lab';

const AGENT = path.join(__dirname, 'helpers', 'tickle-agent.js');
const RAW_OPEN = path.join(__dirname, 'helpers', 'raw-open.js');
const RAW_FINALIZER = path.join(__dirname, 'helpers', 'raw-finalizer.js');
const VIP = '10.77.0.100';
const PORT = 6443;
// No skip when not root: these tests must run (CI runs as root); without root they fail loudly.
const opts = { timeout: 180_000 };

interface TickleResult {
  startedAt: number;
  report: TickleReport;
  maxLoopLagMs: number;
}

interface Bed {
  a: LanHost;
  b: LanHost;
  c: LanHost;
  agentA: NsProcess;
  agentB: NsProcess;
  agentC: NsProcess;
  /** Local ports of each group of c's connections to VIP:6443. */
  ports: Record<string, number[]>;
}

function host(hosts: Map<string, LanHost>, name: string): LanHost {
  const h = hosts.get(name);
  if (h === undefined) throw new Error(`no host ${name}`);
  return h;
}

/**
 * a holds the VIP and serves VIP:6443; b serves *:6443 too (the new master's proxy is listening
 * before it takes the VIP); c opens `groups` of idle connections to VIP:6443, all established on a.
 * `prepareClient` runs before any of them (a firewall on c).
 */
async function bed(
  lab: Lab,
  groups: Record<string, number>,
  prepareClient: (lab: Lab, c: LanHost) => Promise<void> = async () => undefined,
): Promise<Bed> {
  const hosts = await lab.lan(['a', 'b', 'c']);
  const [a, b, c] = ['a', 'b', 'c'].map((name) => host(hosts, name)) as [LanHost, LanHost, LanHost];
  await prepareClient(lab, c);
  await lab.ip(a.ns, 'addr', 'add', `${VIP}/24`, 'dev', a.ifname);
  const [agentA, agentB, agentC] = [a, b, c].map((h) => lab.spawnNode(h.ns, AGENT)) as [
    NsProcess,
    NsProcess,
    NsProcess,
  ];
  await agentA.request('listen', { address: VIP, port: PORT });
  await agentB.request('listen', { address: '0.0.0.0', port: PORT });
  const ports: Record<string, number[]> = {};
  for (const [group, count] of Object.entries(groups)) {
    ports[group] = await agentC.request<number[]>(
      'connect',
      { group, address: VIP, port: PORT, count, concurrency: 200 },
      60_000,
    );
  }
  const total = Object.values(groups).reduce((sum, n) => sum + n, 0);
  // Established on c is not yet accepted on a: wait for the server's side of every connection.
  await waitFor(`a to accept ${total} connections`, async () => (await agentA.request<number>('accepted')) >= total, {
    timeoutMs: 10_000,
    everyMs: 100,
  });
  return { a, b, c, agentA, agentB, agentC, ports };
}

/**
 * a dies as a node dies: its port on the bridge goes down first, so not one FIN or RST escapes; then
 * b adds the VIP and announces it with a gratuitous ARP, as vipd's VipOwner does on takeover.
 */
async function failOver(lab: Lab, { a, b, agentB }: Bed): Promise<void> {
  await lab.ip(a.bridgeNs, 'link', 'set', a.bridgePort, 'down');
  await lab.ip(b.ns, 'addr', 'add', `${VIP}/24`, 'dev', b.ifname);
  await agentB.request('garp', { interface: b.ifname, mac: b.mac, ip: VIP });
}

const summary = (agent: NsProcess, group: string, since?: number) =>
  agent.request<GroupSummary>('connections', { group, ...(since === undefined ? {} : { since }) });

function tickle(
  agent: NsProcess,
  clients: Array<{ ip: string; ports: number[] }>,
  extra: Record<string, unknown> = {},
): Promise<TickleResult> {
  return agent.request<TickleResult>('tickle', { vip: VIP, vipPort: PORT, clients, ...extra }, 60_000);
}

/** Counters of a namespace's /proc/net/snmp and /proc/net/netstat, as "Tcp:OutRsts", "TcpExt:TCPACKSkippedSeq". */
async function netCounters(lab: Lab, ns: string): Promise<Map<string, number>> {
  const text = (await lab.exec(ns, 'cat', '/proc/net/snmp', '/proc/net/netstat')).stdout;
  const lines = text.split('\n').filter((l) => l.includes(':'));
  const counters = new Map<string, number>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [names, values] = [lines[i], lines[i + 1]].map((l) => (l ?? '').trim().split(/\s+/));
    const prefix = names?.[0] ?? '';
    names?.slice(1).forEach((name, j) => {
      counters.set(`${prefix}${name}`, Number(values?.[j + 1]));
    });
  }
  return counters;
}

function delta(before: Map<string, number>, after: Map<string, number>, name: string): number {
  const value = (after.get(name) ?? NaN) - (before.get(name) ?? NaN);
  if (!Number.isFinite(value)) throw new Error(`no counter ${name}`);
  return value;
}

describe('RawIpv4Socket', () => {
  const countFds = () => readdirSync('/proc/self/fd').length;

  /** A loopback port where nothing listens, for a packet that must go somewhere harmless. */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('sends on loopback, closes idempotently, refuses sends after close, and leaks no fd', async () => {
    const before = countFds();
    const socket = openRawIpv4Socket();
    assert.equal(countFds(), before + 1);
    // A bare ACK to a closed port: the kernel answers with a RST to 127.0.0.1:1, where nothing listens.
    const packet = buildTickleAck({ srcIp: '127.0.0.1', srcPort: 1, dstIp: '127.0.0.1', dstPort: await closedPort() });
    assert.equal(socket.send(packet, '127.0.0.1'), true);
    assert.throws(() => socket.send(packet, 'localhost'), TypeError);
    socket.close();
    socket.close();
    assert.equal(socket.closed, true);
    assert.equal(countFds(), before);
    assert.throws(
      () => socket.send(packet, '127.0.0.1'),
      (err: unknown) => err instanceof VipdError && err.code === 'VIPD_NATIVE' && /closed/.test(err.message),
    );
    assert.throws(() => openRawIpv4Socket({ sendBufferBytes: -1 }), RangeError);
  });

  it('the addon checks its arguments and its receiver, and the kernel the packet', () => {
    const addon = loadPacketBinding();
    const raw = new addon.RawIpv4Socket(1 << 20);
    try {
      const send = (...args: unknown[]) => (raw.send as (...a: unknown[]) => boolean)(...args);
      assert.throws(() => send('not a buffer', '127.0.0.1'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(40), '127.0.0.256'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(40)), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(19), '127.0.0.1'), { code: 'ERR_OUT_OF_RANGE' });
      // A header claiming 60 bytes in a 40-byte packet: raw_send_hdrinc() refuses it.
      const badIhl = buildTickleAck({ srcIp: '127.0.0.1', srcPort: 1, dstIp: '127.0.0.1', dstPort: 1 });
      badIhl[0] = 0x4f;
      assert.throws(() => send(badIhl, '127.0.0.1'), { code: 'EINVAL' });
      assert.throws(() => new (addon.RawIpv4Socket as unknown as new (n: unknown) => unknown)('big'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
      // A method of one class called on the other's object (or a plain one): V8 checks the receiver
      // against the class before the addon runs, so no method ever unwraps the wrong struct.
      const packetSend = (addon.PacketSocket.prototype as { send: (frame: Buffer) => number }).send;
      assert.throws(() => packetSend.call(raw, Buffer.alloc(60)), { name: 'TypeError', message: /Illegal invocation/ });
      assert.throws(() => raw.send.call({}, Buffer.alloc(40), '127.0.0.1'), { name: 'TypeError' });
    } finally {
      raw.close();
    }
  });

  it('without CAP_NET_RAW the open fails with EPERM and says which capability is missing', () => {
    const drop = ['--inh-caps=-net_raw', '--bounding-set=-net_raw'];
    const run = spawnSync('setpriv', [...drop, ...programCommand(RAW_OPEN)], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^VIPD_NATIVE cannot open a raw IPv4 socket: EPERM; vipd needs CAP_NET_RAW/);
  });

  it('the finalizer closes the fd of a socket dropped without close()', () => {
    const [cmd, ...args] = programCommand(RAW_FINALIZER, [], ['--expose-gc']);
    const run = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
    assert.equal(run.status, 0, run.stderr);
    const { before, opened, after } = JSON.parse(run.stdout) as { before: number; opened: number; after: number };
    assert.deepEqual([opened - before, after], [50, before]);
  });

  it("a packet the kernel refuses is counted by errno: no route, a firewall's drop", opts, () =>
    withLab(async (lab) => {
      const b = host(await lab.lan(['b']), 'b');
      await lab.exec(b.ns, 'nft', 'add', 'table', 'inet', 'fw');
      await lab.exec(b.ns, 'nft', 'add', 'chain', 'inet', 'fw', 'output', '{ type filter hook output priority 0; }');
      await lab.exec(b.ns, 'nft', 'add', 'rule', 'inet', 'fw', 'output', 'ip', 'daddr', '10.77.0.99', 'drop');
      const agent = lab.spawnNode(b.ns, AGENT);
      // No route to 192.0.2.1 (TEST-NET-1) in b: the lab has only its /24. Both targets get 4 passes.
      const result = await tickle(
        agent,
        [
          { ip: '192.0.2.1', ports: [1, 2] },
          { ip: '10.77.0.99', ports: [1] },
        ],
        { roundsAtMs: [0] },
      );
      assert.deepEqual([result.report.packetsSent, result.report.failuresByCode], [0, { ENETUNREACH: 8, EPERM: 4 }]);
    }),
  );
});

describe('RawIpv6Socket', () => {
  const countFds = () => readdirSync('/proc/self/fd').length;

  async function closedPort6(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('sends on loopback, closes idempotently, refuses sends after close, and leaks no fd', async () => {
    const before = countFds();
    const socket = openRawIpv6Socket();
    assert.equal([countFds(), socket.family].join(), [before + 1, 6].join());
    const packet = buildTickleAck({ srcIp: '::1', srcPort: 1, dstIp: '::1', dstPort: await closedPort6() });
    assert.equal(socket.send(packet, '::1'), true);
    assert.throws(() => socket.send(packet, '127.0.0.1'), TypeError);
    assert.throws(() => socket.send(packet, 'fe80::1%lo'), TypeError);
    socket.close();
    socket.close();
    assert.equal(socket.closed, true);
    assert.equal(countFds(), before);
    assert.throws(
      () => socket.send(packet, '::1'),
      (err: unknown) =>
        err instanceof VipdError && err.code === 'VIPD_NATIVE' && /IPv6 socket that is closed/.test(err.message),
    );
    assert.throws(() => openRawIpv6Socket({ sendBufferBytes: 2 ** 30 }), RangeError);
  });

  it('the addon checks its arguments and its receiver', () => {
    const addon = loadPacketBinding();
    const raw = new addon.RawIpv6Socket(1 << 20);
    const raw4 = new addon.RawIpv4Socket();
    try {
      const send = (...args: unknown[]) => (raw.send as (...a: unknown[]) => boolean)(...args);
      assert.throws(() => send('not a buffer', '::1'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(60), '127.0.0.1'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(60), `${'0:'.repeat(60)}1`), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(60)), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => send(Buffer.alloc(39), '::1'), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => send(Buffer.alloc(40 + 65536), '::1'), { code: 'ERR_OUT_OF_RANGE' });
      // The IPv4 class takes no IPv6 destination, and neither class's method runs on the other's object.
      assert.throws(() => raw4.send(Buffer.alloc(40), '::1'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => raw4.send.call(raw, Buffer.alloc(40), '127.0.0.1'), {
        name: 'TypeError',
        message: /Illegal invocation/,
      });
      assert.throws(() => raw.send.call(raw4, Buffer.alloc(60), '::1'), {
        name: 'TypeError',
        message: /Illegal invocation/,
      });
      assert.throws(() => new (addon.RawIpv6Socket as unknown as new (n: unknown) => unknown)(-1), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    } finally {
      raw.close();
      raw4.close();
    }
  });

  it('without CAP_NET_RAW the open fails with EPERM and says which capability is missing', () => {
    const drop = ['--inh-caps=-net_raw', '--bounding-set=-net_raw'];
    const run = spawnSync('setpriv', [...drop, ...programCommand(RAW_OPEN, ['6'])], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^VIPD_NATIVE cannot open a raw IPv6 socket: EPERM; vipd needs CAP_NET_RAW/);
  });

  it('the finalizer closes the fd of a socket dropped without close()', () => {
    const [cmd, ...args] = programCommand(RAW_FINALIZER, ['6'], ['--expose-gc']);
    const run = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
    assert.equal(run.status, 0, run.stderr);
    const { before, opened, after } = JSON.parse(run.stdout) as { before: number; opened: number; after: number };
    assert.deepEqual([opened - before, after], [50, before]);
  });
});

describe('tickle ACKs on takeover, between namespaces', () => {
  it('reset every tickled idle connection of the dead master within 2 s; the untickled stay open', opts, () =>
    withLab(async (lab) => {
      const N = 50;
      const state = await bed(lab, { tickled: N, control: N });
      const { c, agentB, agentC, ports } = state;
      await failOver(lab, state);
      const cBefore = await netCounters(lab, c.ns);

      const result = await tickle(agentB, [{ ip: c.ip, ports: ports.tickled ?? [] }]);
      // The sender resolves after its last round (+1500 ms), inside the 2 s.
      const elapsed = Date.now() - result.startedAt;
      const tickled = await summary(agentC, 'tickled', result.startedAt);
      assert.deepEqual([tickled.errors, tickled.open], [{ ECONNRESET: N }, 0]);
      const lastResetMs = (tickled.lastErrorAt ?? Infinity) - result.startedAt;
      assert.ok(lastResetMs < 2000, `the last reset came ${lastResetMs} ms after the start`);
      const { report } = result;
      assert.deepEqual(report, {
        targets: N,
        passes: 4,
        rounds: 3,
        packetsSent: 3 * 4 * N,
        sendFailures: 0,
        failuresByCode: {},
        backoffs: 0,
        firstPassMs: report.firstPassMs,
        firstRoundMs: report.firstRoundMs,
        durationMs: report.durationMs,
        stopped: false,
      });
      console.log(
        `tickle ${N}: first pass sent in ${report.firstPassMs?.toFixed(1)} ms; resets after ` +
          `${tickled.errorDelaysMs[0]}..${tickled.errorDelaysMs[N - 1]} ms; all rounds ` +
          `${report.durationMs.toFixed(0)} ms`,
      );

      // The control: the same takeover, the same wait, no tickle: nothing tells these they are dead.
      if (elapsed < 2000) await sleep(2000 - elapsed);
      const control = await summary(agentC, 'control');
      assert.deepEqual([control.open, control.errors, control.closedClean], [N, {}, 0]);

      // The tickles passed c's TCP checksum check (veth leaves it to the receiver, so this is a real check).
      const cAfter = await netCounters(lab, c.ns);
      assert.equal(delta(cBefore, cAfter, 'Tcp:InCsumErrors'), 0);
      // The clients reconnect through the new master.
      assert.equal(await agentB.request<number>('accepted'), 0);
      await agentC.request('connect', { group: 'again', address: VIP, port: PORT, count: 5 });
      assert.equal(await agentC.request<number>('echo', { group: 'again' }), 5);
      assert.equal(await agentB.request<number>('accepted'), 5);
    }),
  );

  it(
    'reach a client whose firewall drops conntrack-INVALID packets: one of the four (seq, ack) pairs passes',
    opts,
    () =>
      withLab(async (lab) => {
        const N = 50;
        const state = await bed(lab, { four: N, one: N }, async (labIn, c) => {
          await labIn.exec(c.ns, 'nft', 'add', 'table', 'inet', 'fw');
          await labIn.exec(
            c.ns,
            'nft',
            'add',
            'chain',
            'inet',
            'fw',
            'input',
            '{ type filter hook input priority 0; }',
          );
          await labIn.exec(
            c.ns,
            'nft',
            'add',
            'rule',
            'inet',
            'fw',
            'input',
            'ct',
            'state',
            'invalid',
            'counter',
            'drop',
          );
        });
        const { c, agentB, agentC, ports } = state;
        await failOver(lab, state);
        // One round each, so that no repeat hides what a single pass misses.
        await tickle(agentB, [{ ip: c.ip, ports: ports.four ?? [] }], { roundsAtMs: [0] });
        await tickle(agentB, [{ ip: c.ip, ports: ports.one ?? [] }], { roundsAtMs: [0], seqAck: [[0, 0]] });
        await sleep(200);
        const four = await summary(agentC, 'four');
        const one = await summary(agentC, 'one');
        const dropped = /counter packets (\d+)/.exec((await lab.exec(c.ns, 'nft', 'list', 'ruleset')).stdout)?.[1];
        console.log(
          `ct state invalid drop on the client: all four pairs reset ${four.errors.ECONNRESET ?? 0} ` +
            `of ${N}, (0, 0) alone ${one.errors.ECONNRESET ?? 0} of ${N}; the firewall dropped ${String(dropped)}`,
        );
        assert.deepEqual([four.errors, four.open], [{ ECONNRESET: N }, 0]);
        // Each connection lets (0, 0) through with a chance of 1/4: that all 50 do is 2^-100, none (3/4)^50 < 1e-6.
        assert.ok(one.open > 0 && one.open < N, `(0, 0) alone left ${one.open} of ${N} open`);
      }),
  );

  it('are not held up by a client that never answers ARP: the raw socket has room for its neighbour queue', opts, () =>
    withLab(async (lab) => {
      const N = 50;
      const state = await bed(lab, { control: N, tickled: N });
      const { c, agentB, agentC, ports } = state;
      await failOver(lab, state);
      // 2,000 connections of a client that is gone (no host has 10.77.0.222) come first in the list:
      // their packets wait in b's neighbour queue for an ARP answer that never comes (for 3 s).
      const gone = { ip: '10.77.0.222', ports: Array.from({ length: 2000 }, (_, i) => 30_000 + i) };
      // The control first, while that neighbour is still being resolved: the kernel's default send
      // buffer fills with the queued packets, every later send fails with EAGAIN, and the round is
      // given up (one round, which ends well before the ARP fails).
      const stalled = await tickle(agentB, [gone, { ip: c.ip, ports: ports.control ?? [] }], {
        roundsAtMs: [0],
        sendBufferBytes: 0,
      });
      const result = await tickle(agentB, [gone, { ip: c.ip, ports: ports.tickled ?? [] }], { roundsAtMs: [0] });
      await sleep(200);
      const control = await summary(agentC, 'control');
      const tickled = await summary(agentC, 'tickled', result.startedAt);
      console.log(
        'behind 2,000 targets that never resolve: with the default send buffer ' +
          `${control.errors.ECONNRESET ?? 0} of ${N} reset (${stalled.report.backoffs} pauses, ` +
          `${stalled.report.sendFailures} packets given up); with 4 MiB ${tickled.errors.ECONNRESET ?? 0} of ${N}, ` +
          `the last ${tickled.errorDelaysMs[N - 1]} ms after the start`,
      );
      assert.deepEqual([control.open, control.errors], [N, {}]);
      assert.ok((stalled.report.failuresByCode.EAGAIN ?? 0) > 0);
      assert.deepEqual([tickled.errors, tickled.open], [{ ECONNRESET: N }, 0]);
      assert.deepEqual([result.report.sendFailures, result.report.backoffs], [0, 0]);
    }),
  );

  it('are harmless to live connections, closed ports and absent hosts, and answered once per 500 ms', opts, () =>
    withLab(async (lab) => {
      // No takeover: a, alive and holding the VIP, tickles its own live clients, ports on c where
      // nothing listens, and an address no host has.
      const N = 20;
      const { a, c, agentA, agentC, ports } = await bed(lab, { live: N });
      const [aBefore, cBefore] = await Promise.all([netCounters(lab, a.ns), netCounters(lab, c.ns)]);
      const closed = Array.from({ length: N }, (_, i) => 100 + i);
      // Rounds 100 ms apart fall under c's rate limit; the one 600 ms later does not.
      const result = await tickle(
        agentA,
        [
          { ip: c.ip, ports: ports.live ?? [] },
          { ip: c.ip, ports: closed },
          { ip: '10.77.0.222', ports: [40000, 40001] },
        ],
        { roundsAtMs: [0, 100, 700] },
      );
      const [aAfter, cAfter] = await Promise.all([netCounters(lab, a.ns), netCounters(lab, c.ns)]);
      const sends = 3 * 4 * (2 * N + 2);
      assert.deepEqual(
        [result.report.packetsSent, result.report.sendFailures, result.report.stopped],
        [sends, 0, false],
      );

      const live = await summary(agentC, 'live');
      assert.deepEqual([live.open, live.errors], [N, {}]);
      assert.equal(await agentC.request<number>('echo', { group: 'live' }), N, 'every live connection still echoes');
      assert.equal(await agentA.request<number>('accepted'), N, 'nobody had to reconnect');

      // c answered each live socket's first tickle of rounds 0 and 2 with an ACK, which a's socket took as
      // a duplicate, and skipped the other 10 of its 12 (a chance of ~1e-3 per run that (0, 0) or (2^31, 2^31)
      // falls in some socket's window would move one count here). Each closed port drew a RST, which a ignored.
      const d = (ns: 'a' | 'c', name: string) =>
        ns === 'a' ? delta(aBefore, aAfter, name) : delta(cBefore, cAfter, name);
      assert.equal(d('c', 'TcpExt:TCPACKSkippedSeq'), 10 * N);
      assert.equal(d('c', 'Tcp:OutSegs') - d('c', 'Tcp:OutRsts'), 2 * N);
      assert.equal(d('c', 'Tcp:OutRsts'), 3 * 4 * N);
      assert.equal(d('a', 'Tcp:OutRsts'), 0);
    }),
  );

  it('measures 5,000 tickles: send time, loop stall, time until every client socket has failed', opts, () =>
    withLab(async (lab) => {
      const N = 5000;
      const state = await bed(lab, { watches: N });
      const { b, c, agentB, agentC, ports } = state;
      await failOver(lab, state);
      const [bBefore, cBefore] = await Promise.all([netCounters(lab, b.ns), netCounters(lab, c.ns)]);

      const result = await tickle(agentB, [{ ip: c.ip, ports: ports.watches ?? [] }]);
      let watches = await summary(agentC, 'watches', result.startedAt);
      for (let i = 0; i < 30 && watches.open > 0; i++) {
        await sleep(100);
        watches = await summary(agentC, 'watches', result.startedAt);
      }
      const [bAfter, cAfter] = await Promise.all([netCounters(lab, b.ns), netCounters(lab, c.ns)]);
      const { report } = result;
      const delays = watches.errorDelaysMs;
      const at = (q: number) => delays[Math.min(delays.length - 1, Math.floor(q * delays.length))];
      const byRound = [
        [-Infinity, 600],
        [600, 1500],
        [1500, Infinity],
      ].map(([from = 0, to = 0]) => delays.filter((ms) => ms >= from && ms < to).length);
      console.log(
        [
          `tickle ${N}: first pass sent in ${report.firstPassMs?.toFixed(0)} ms, first round (4 passes) in ` +
            `${report.firstRoundMs?.toFixed(0)} ms, ${report.packetsSent} packets in ` +
            `${report.durationMs.toFixed(0)} ms ` +
            `(3 rounds), ${report.backoffs} backoffs, ${report.sendFailures} failures; ` +
            `longest event-loop stall ${result.maxLoopLagMs} ms`,
          `  resets: ${JSON.stringify(watches.errors)}, ${at(0)} / ${at(0.5)} / ${at(0.99)} / ${at(1)} ms after the ` +
            `start (first / median / p99 / last); in rounds 0 / 1 / 2: ${byRound.join(' / ')}`,
          `  c: TCPACKSkippedSeq +${delta(cBefore, cAfter, 'TcpExt:TCPACKSkippedSeq')}, ` +
            `OutRsts +${delta(cBefore, cAfter, 'Tcp:OutRsts')}; b: InSegs +${delta(bBefore, bAfter, 'Tcp:InSegs')}, ` +
            `OutRsts +${delta(bBefore, bAfter, 'Tcp:OutRsts')}`,
        ].join('\n'),
      );
      assert.deepEqual([watches.errors, watches.open], [{ ECONNRESET: N }, 0]);
      assert.equal(report.packetsSent + report.sendFailures, 3 * 4 * N);
    }),
  );
});

describe('tickle ACKs on takeover of an IPv6 VIP, between namespaces', () => {
  const VIP6 = 'fd00:77::64';

  /**
   * The IPv6 bed: a, b and c also have fd00:77::<n>/64; a holds `vips` (nodad) and serves each on
   * 6443, b serves [::]:6443 (dual-stack); c opens idle connections to the VIP of each group.
   */
  async function bed6(lab: Lab, vips: readonly string[], groups: Record<string, { vip: string; count: number }>) {
    const hosts = await lab.lan(['a', 'b', 'c'], { ipv6: 'fd00:77::' });
    const [a, b, c] = ['a', 'b', 'c'].map((name) => host(hosts, name)) as [LanHost, LanHost, LanHost];
    for (const vip of vips) await addVip(lab, a, vip);
    const [agentA, agentB, agentC] = [a, b, c].map((h) => lab.spawnNode(h.ns, AGENT)) as [
      NsProcess,
      NsProcess,
      NsProcess,
    ];
    for (const vip of vips) await agentA.request('listen', { address: vip, port: PORT });
    await agentB.request('listen', { address: '::', port: PORT });
    const ports: Record<string, number[]> = {};
    for (const [group, { vip, count }] of Object.entries(groups)) {
      ports[group] = await agentC.request<number[]>('connect', { group, address: vip, port: PORT, count }, 60_000);
    }
    const total = Object.values(groups).reduce((sum, g) => sum + g.count, 0);
    await waitFor(`a to accept ${total} connections`, async () => (await agentA.request<number>('accepted')) >= total, {
      timeoutMs: 10_000,
      everyMs: 100,
    });
    return { a, b, c, agentA, agentB, agentC, ports };
  }

  const addVip = (lab: Lab, h: LanHost, vip: string) =>
    net.isIPv6(vip)
      ? lab.ip(h.ns, 'addr', 'add', `${vip}/64`, 'dev', h.ifname, 'nodad')
      : lab.ip(h.ns, 'addr', 'add', `${vip}/24`, 'dev', h.ifname);

  /** a dies as a node dies (its bridge port down); b adds the VIPs and announces each (NA or GARP). */
  async function failOver6(
    lab: Lab,
    vips: readonly string[],
    { a, b, agentB }: { a: LanHost; b: LanHost; agentB: NsProcess },
  ) {
    await lab.ip(a.bridgeNs, 'link', 'set', a.bridgePort, 'down');
    for (const vip of vips) {
      await addVip(lab, b, vip);
      await agentB.request(net.isIPv6(vip) ? 'una' : 'garp', { interface: b.ifname, mac: b.mac, ip: vip });
    }
  }

  it('reset every tickled idle IPv6 connection of the dead master within 2 s; the untickled stay open', opts, () =>
    withLab(async (lab) => {
      const N = 50;
      const state = await bed6(lab, [VIP6], { tickled: { vip: VIP6, count: N }, control: { vip: VIP6, count: N } });
      const { c, agentB, agentC, ports } = state;
      assert.ok(c.ip6 !== undefined);
      await failOver6(lab, [VIP6], state);
      const cBefore = await netCounters(lab, c.ns);

      const result = await agentB.request<TickleResult>(
        'tickle',
        { vip: VIP6, vipPort: PORT, clients: [{ ip: c.ip6, ports: ports.tickled ?? [] }] },
        60_000,
      );
      const elapsed = Date.now() - result.startedAt;
      const tickled = await summary(agentC, 'tickled', result.startedAt);
      assert.deepEqual([tickled.errors, tickled.open], [{ ECONNRESET: N }, 0]);
      const lastResetMs = (tickled.lastErrorAt ?? Infinity) - result.startedAt;
      assert.ok(lastResetMs < 2000, `the last reset came ${lastResetMs} ms after the start`);
      assert.deepEqual(
        [result.report.packetsSent, result.report.sendFailures, result.report.rounds],
        [3 * 4 * N, 0, 3],
      );
      console.log(
        `tickle ${N} over IPv6: first pass sent in ${result.report.firstPassMs?.toFixed(1)} ms; resets after ` +
          `${tickled.errorDelaysMs[0]}..${tickled.errorDelaysMs[N - 1]} ms`,
      );

      if (elapsed < 2000) await sleep(2000 - elapsed);
      const control = await summary(agentC, 'control');
      assert.deepEqual([control.open, control.errors, control.closedClean], [N, {}, 0]);
      // The IPv6 tickles passed c's TCP checksum check (the TCP counters are both families').
      assert.equal(delta(cBefore, await netCounters(lab, c.ns), 'Tcp:InCsumErrors'), 0);
      // The clients reconnect through the new master.
      assert.equal(await agentB.request<number>('accepted'), 0);
      await agentC.request('connect', { group: 'again', address: VIP6, port: PORT, count: 5 });
      assert.equal(await agentC.request<number>('echo', { group: 'again' }), 5);
      assert.equal(await agentB.request<number>('accepted'), 5);
    }),
  );

  it('a dual-stack pair: one sender resets the IPv4 and the IPv6 clients, each from its VIP', opts, () =>
    withLab(async (lab) => {
      const N = 30;
      const vips = [VIP, VIP6];
      const state = await bed6(lab, vips, {
        v4: { vip: VIP, count: N },
        v6: { vip: VIP6, count: N },
        control4: { vip: VIP, count: 10 },
        control6: { vip: VIP6, count: 10 },
      });
      const { c, agentB, agentC, ports } = state;
      await failOver6(lab, vips, state);
      const result = await agentB.request<TickleResult>(
        'tickle',
        {
          vip: vips,
          vipPort: PORT,
          clients: [
            { ip: c.ip, ports: ports.v4 ?? [] },
            { ip: c.ip6, ports: ports.v6 ?? [] },
          ],
        },
        60_000,
      );
      await sleep(200);
      const [v4, v6, control4, control6] = await Promise.all([
        summary(agentC, 'v4'),
        summary(agentC, 'v6'),
        summary(agentC, 'control4'),
        summary(agentC, 'control6'),
      ]);
      assert.deepEqual([v4.errors, v4.open, v6.errors, v6.open], [{ ECONNRESET: N }, 0, { ECONNRESET: N }, 0]);
      assert.deepEqual([control4.open, control6.open], [10, 10]);
      assert.deepEqual([result.report.targets, result.report.sendFailures], [2 * N, 0]);
    }),
  );
});
