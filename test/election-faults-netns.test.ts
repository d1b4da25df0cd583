/**
 * The faults that break VRRP-style elections, on the real daemon in namespaces (three nodes and a
 * client on one bridge, test/helpers/netns-cluster.ts), each judged by the kernels' own view of the
 * VIP (`ip monitor address` in every node), not by the daemons' logs:
 * - the master's outbound heartbeats lost (an egress rule), and its inbound ones: it releases,
 *   another takes over, never two holders, and it stays that way;
 * - the master's process stalled 3 s (SIGSTOP) then resumed: one failover, and the node that took
 *   over keeps the VIP; the stalled node's copy expired in its kernel meanwhile;
 * - the master SIGKILLed and not restarted: its VIP leaves its interface by itself (address lifetime);
 * - 30 % random heartbeat loss on every node: the VIP does not move;
 * - a garbage flood from a host that is not a peer: dropped in the kernel, the master keeps the VIP.
 * Bounds are generous: correctness, not speed (bench/failover.ts measures speed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../src/lab/netns';
import { sleep } from '../src/lab/wait';
import { programCommand } from './helpers/agent-loop';
import { type Cluster, type NodeName, useCluster } from './helpers/netns-cluster';

const HTTP_GET = join(__dirname, 'helpers', 'http-get.js');

/** Drops heartbeats (UDP to the election port) in one direction, optionally only a share of them. */
const dropHeartbeats = (hook: 'input' | 'output', percent?: number) =>
  [
    'table inet vipd_fault {',
    `  chain c { type filter hook ${hook} priority 0; udp dport 7580 ${percent === undefined ? '' : `numgen random mod 100 < ${percent} `}drop; }`,
    '}',
    '',
  ].join('\n');
const CLEAR = 'delete table inet vipd_fault\n';

/** Waits for a single holder and a second of calm, and returns it and the time calm began. */
async function settledHolder(c: Cluster): Promise<{ holder: NodeName; since: number }> {
  const holder = await c.one(15);
  await sleep(1000);
  assert.deepEqual(await c.holders(), [holder], 'still the same single holder');
  return { holder, since: performance.now() };
}

async function udpInErrors(c: Cluster, n: NodeName): Promise<number> {
  const { stdout } = await run('ip', ['netns', 'exec', c.host(n).ns, 'cat', '/proc/net/snmp']);
  const [names, values] = stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const i = names?.split(/\s+/).indexOf('InErrors') ?? -1;
  return Number(values?.split(/\s+/)[i]);
}

async function metric(c: Cluster, n: NodeName, name: string): Promise<number> {
  const { stdout } = await c.lab.exec(c.host(n).ns, ...programCommand(HTTP_GET, ['http://127.0.0.1:7581/metrics']));
  const line = stdout.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('election faults on namespaced hosts (the real daemon)', { timeout: 300_000 }, () => {
  const c = useCluster({ standIns: false }, 'majority');

  for (const hook of ['output', 'input'] as const) {
    const what = hook === 'output' ? 'outbound' : 'inbound';
    it(`the master's ${what} heartbeats are lost: it releases, another takes over, never two holders`, async () => {
      if (c.holderEvents.length === 0) c.watch();
      const { holder: old, since } = await settledHolder(c);
      c.nft(old, dropHeartbeats(hook));
      try {
        const [next] = await c.until('another node to hold the VIP alone', (h) => h.length === 1 && h[0] !== old);
        await sleep(8000);
        assert.deepEqual(await c.holders(), [next], 'it stays there for the rest of the fault');
        const stats = c.holderStats(since);
        console.log(
          `# ${what} loss at the master: ${stats.gains} takeover(s), longest overlap ${stats.maxOverlapMs.toFixed(0)} ms`,
        );
        assert.equal(stats.gains, 1, 'one takeover');
        // The master releases well before anyone may take over; the monitors' clocks are one
        // process apart, so allow a few ms of reading skew.
        assert.ok(stats.maxOverlapMs < 50, `two holders for ${stats.maxOverlapMs.toFixed(0)} ms`);
      } finally {
        c.nft(old, CLEAR);
      }
      await sleep(2000);
      assert.equal((await c.holders()).length, 1, 'one holder after the fault');
    });
  }

  it('the master stalled 3 s (SIGSTOP) and resumed: one failover, the new master keeps the VIP', async () => {
    if (c.holderEvents.length === 0) c.watch();
    const { holder: old, since } = await settledHolder(c);
    const d = c.daemons.get(old)!;
    d.signal('SIGSTOP');
    let resumed = false;
    try {
      const [next] = await c.until('another node to take over', (h) => h.some((n) => n !== old));
      await c.until("the stalled node's copy to expire in its kernel", (h) => !h.includes(old), 5);
      await sleep(Math.max(0, since + 3000 - performance.now()));
      d.signal('SIGCONT');
      resumed = true;
      await d.waitForNext(
        (l) => l.msg !== undefined && /did not run for a while/.test(String(l.msg)),
        5000,
        'the stall line',
      );
      await sleep(3000);
      assert.deepEqual(await c.holders(), [next], 'the node that took over keeps the VIP');
      const stats = c.holderStats(since);
      console.log(
        `# stalled master: ${stats.gains} takeover(s), stalled copy overlapped ${stats.maxOverlapMs.toFixed(0)} ms`,
      );
      assert.equal(stats.gains, 1, 'one failover, not two');
      assert.ok(
        stats.maxOverlapMs < 2500,
        `the stalled copy lasted ${stats.maxOverlapMs.toFixed(0)} ms (lifetime 1 s)`,
      );
    } finally {
      if (!resumed) d.signal('SIGCONT');
    }
  });

  it('the master SIGKILLed and not restarted: its VIP leaves the interface by itself', async () => {
    const { holder: old } = await settledHolder(c);
    const d = c.daemons.get(old)!;
    d.signal('SIGKILL');
    await d.exited;
    const t0 = performance.now();
    await c.until("the killed node's VIP to expire", (h) => !h.includes(old), 5);
    console.log(`# SIGKILLed master: its VIP was gone ${(performance.now() - t0).toFixed(0)} ms after the kill`);
    await c.until('one other holder', (h) => h.length === 1 && h[0] !== old);
    c.start(old);
    await sleep(2000);
    assert.equal((await c.holders()).length, 1);
  });

  it('30 % random heartbeat loss on every node for 20 s: the VIP does not move', async () => {
    if (c.holderEvents.length === 0) c.watch();
    const { holder, since } = await settledHolder(c);
    const nodes = ['cp1', 'cp2', 'cp3'] as const;
    for (const n of nodes) c.nft(n, dropHeartbeats('output', 30));
    try {
      await sleep(20_000);
    } finally {
      for (const n of nodes) c.nft(n, CLEAR);
    }
    const stats = c.holderStats(since);
    console.log(`# 30 % loss for 20 s: ${stats.gains} VIP addition(s)`);
    assert.deepEqual(await c.holders(), [holder]);
    assert.equal(stats.gains, 0, 'the VIP never left its holder');
  });

  it('a garbage flood from a host that is not a peer is dropped in the kernel; the master keeps the VIP', async () => {
    const { holder } = await settledHolder(c);
    const before = await udpInErrors(c, holder);
    const droppedBefore = await metric(c, holder, 'vipd_heartbeats_dropped_total{reason="unknown_sender"}');
    const flood = spawn(
      'ip',
      [
        'netns',
        'exec',
        c.host('client').ns,
        process.execPath,
        join(__dirname, 'helpers', 'udp-flood.js'),
        c.host(holder).ip,
        '7580',
        '5',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    flood.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
    });
    await new Promise((resolve) => flood.once('exit', resolve));
    const { sent } = JSON.parse(out) as { sent: number };
    const dropped = (await udpInErrors(c, holder)) - before;
    console.log(
      `# flood: ${sent} datagrams in 5 s (${Math.round(sent / 5)}/s), ${dropped} dropped by the socket filter`,
    );
    assert.ok(sent > 10_000, `the flood sent ${sent}`);
    assert.ok(dropped > sent * 0.5, `the kernel dropped ${dropped} of ${sent}`);
    assert.equal(
      await metric(c, holder, 'vipd_heartbeats_dropped_total{reason="unknown_sender"}'),
      droppedBefore,
      'none of it reached vipd',
    );
    assert.deepEqual(await c.holders(), [holder], 'the master kept the VIP');
  });
});
