/**
 * A new cluster built the way kubeadm builds one, with the real daemon on namespaced hosts (three
 * nodes and a client on one bridge, test/helpers/netns-cluster.ts), every node with the same config
 * (`quorum: majority`, the member list in the same order) and nothing edited along the way:
 * - the first node listed, started alone, takes the VIP (kubeadm init needs it);
 * - a second node joining alone (the others not started yet) does not;
 * - the second and third join: the cluster forms, each node records it in its state directory, the
 *   VIP does not move;
 * - the first node cut off from the others releases the VIP, one of the others takes it; restarted
 *   while still cut off it remembers the cluster formed and never holds it alone;
 * - newcomers that hear each other but not the first node never take it;
 * - a node whose config lists the peers in another order (itself first): both it and the first
 *   node say so in their logs, /status and metrics, never hold the VIP at once, and the cluster
 *   forms with one holder.
 * Holders are read from each namespace's addresses, never from the daemons' word.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../src/lab/wait';
import { programCommand } from './helpers/agent-loop';
import type { LogLine } from './helpers/daemon';
import { Cluster, type NodeName } from './helpers/netns-cluster';

const HTTP_GET = join(__dirname, 'helpers', 'http-get.js');

/** Drops every election datagram to and from this node (both directions): it is cut off from its peers. */
const ISOLATE = [
  'table inet vipd_isolate {',
  '  chain in { type filter hook input priority 0; udp dport 7580 drop; }',
  '  chain out { type filter hook output priority 0; udp dport 7580 drop; }',
  '}',
  '',
].join('\n');
const CLEAR = 'delete table inet vipd_isolate\n';
const formedLine = (l: { msg?: unknown }) => typeof l.msg === 'string' && l.msg.startsWith('the cluster has formed');

describe('bootstrap: a new cluster, one node at a time (the real daemon in namespaces)', { timeout: 300_000 }, () => {
  const c = new Cluster('majority');
  before(() => c.build());
  after(() => c.destroy());
  const kill = async (n: NodeName) => {
    await c.daemons.get(n)?.kill();
  };
  const recorded = (n: NodeName) => existsSync(join(c.stateDir(n), 'cluster-1.formed'));

  it('a node that is not the first one, alone, does not take the VIP', async () => {
    const d = c.start('cp2');
    await d.waitFor((l) => l.to === 'BACKUP', 10_000, 'BACKUP');
    await sleep(5000);
    assert.deepEqual(await c.holders(), []);
    assert.equal(recorded('cp2'), false);
    await kill('cp2');
  });

  it('the first node alone takes the VIP (what kubeadm init waits for)', async () => {
    c.watch();
    const d = c.start('cp1');
    const [h] = await c.until('cp1 to hold the VIP', (x) => x.length === 1, 15);
    assert.equal(h, 'cp1');
    assert.equal(recorded('cp1'), false, 'alone, the cluster has not formed');
    assert.ok(!d.lines.some(formedLine));
  });

  it('the second node joins: the cluster forms and is recorded on both, the VIP stays', async () => {
    const since = performance.now();
    const d2 = c.start('cp2');
    await c.daemons.get('cp1')!.waitFor(formedLine, 10_000, 'the formed line on cp1');
    await d2.waitFor(formedLine, 10_000, 'the formed line on cp2');
    assert.ok(recorded('cp1') && recorded('cp2'));
    const record = JSON.parse(readFileSync(join(c.stateDir('cp2'), 'cluster-1.formed'), 'utf8')) as { via: string };
    assert.equal(record.via, 'cp1', 'cp2 learned it from the first node');
    const d3 = c.start('cp3');
    await d3.waitFor(formedLine, 10_000, 'the formed line on cp3');
    await sleep(2000);
    // On a failure, the transitions say why the VIP moved (a lapsed lease names its reason).
    const story = () =>
      [...c.daemons.values()]
        .flatMap((d) => d.lines.filter((l) => l.to !== undefined).map((l) => `${d.name} ${JSON.stringify(l)}`))
        .join('\n');
    assert.deepEqual(await c.holders(), ['cp1'], story());
    assert.equal(c.holderStats(since).gains, 0, `the VIP did not move while the cluster formed\n${story()}`);
  });

  it('the first node cut off: it releases, another takes over; restarted while cut off, it never holds alone', async () => {
    c.nft('cp1', ISOLATE);
    try {
      const [next] = await c.until('another node to hold the VIP alone', (h) => h.length === 1 && h[0] !== 'cp1', 15);
      await kill('cp1');
      const since = performance.now();
      c.start('cp1');
      await sleep(8000);
      assert.deepEqual(await c.holders(), [next], 'the restarted first node remembers the cluster formed');
      assert.equal(c.holderStats(since).gains, 0);
      assert.ok(
        c.daemons.get('cp1')!.lines.some((l) => l.to === 'BACKUP'),
        'it runs, as a backup',
      );
    } finally {
      c.nft('cp1', CLEAR);
    }
    await sleep(2000);
    assert.equal((await c.holders()).length, 1, 'one holder once it hears the others again');
  });

  it('every log line of every daemon has each key once', () => {
    const all = [...c.daemons.values()].flatMap((d) => d.duplicateKeyLines.map((l) => `${d.name}: ${l}`));
    assert.deepEqual(all, []);
  });
});

describe('bootstrap: newcomers cut off from the first node never take the VIP', { timeout: 300_000 }, () => {
  const c = new Cluster('majority');
  before(() => c.build());
  after(() => c.destroy());

  it('cp2 and cp3 hear each other but not cp1: only cp1 holds, and they never claim', async () => {
    c.watch();
    c.start('cp1');
    await c.until('cp1 to hold the VIP', (x) => x.length === 1 && x[0] === 'cp1', 15);
    c.nft('cp1', ISOLATE);
    try {
      const since = performance.now();
      c.start('cp2');
      c.start('cp3');
      await sleep(10_000);
      assert.deepEqual(await c.holders(), ['cp1']);
      assert.equal(c.holderStats(since).gains, 0);
      for (const n of ['cp2', 'cp3'] as const) {
        assert.ok(
          !c.daemons.get(n)!.lines.some((l) => l.to === 'CANDIDATE' || l.to === 'MASTER'),
          `${n} never claimed`,
        );
      }
    } finally {
      c.nft('cp1', CLEAR);
    }
    await c.daemons
      .get('cp2')!
      .waitFor(
        (l) => typeof l.msg === 'string' && l.msg.startsWith('the cluster has formed'),
        10_000,
        'cp2 learning that the cluster formed once cp1 is heard',
      );
    await sleep(2000);
    assert.equal((await c.holders()).length, 1);
  });
});

describe('bootstrap: a node whose config lists the peers in another order', { timeout: 300_000 }, () => {
  const c = new Cluster('majority');
  before(() => c.build());
  after(() => c.destroy());
  const disagreement = (peer: string) => (l: LogLine) =>
    l.peer === peer && typeof l.msg === 'string' && l.msg.startsWith('bootstrap member disputed');

  it('cp2 names itself first: both say so, never hold the VIP at once, and the cluster forms with one holder', async () => {
    c.writeConfig('cp2', ['cp2', 'cp1', 'cp3']);
    c.watch();
    const d1 = c.start('cp1');
    await c.until('cp1 to hold the VIP', (x) => x.length === 1 && x[0] === 'cp1', 15);
    const since = performance.now();
    const d2 = c.start('cp2');
    const [on1, on2] = await Promise.all([
      d1.waitFor(disagreement('cp2'), 10_000, "cp1's error naming cp2"),
      d2.waitFor(disagreement('cp1'), 10_000, "cp2's error naming cp1"),
    ]);
    assert.equal(on1.level, 'error');
    assert.equal(on1.says, 'self');
    assert.equal(on2.bootstrap, 'cp2');
    await d1.waitFor(formedLine, 15_000, 'the formed line on cp1');
    await c.until('one holder again', (x) => x.length === 1, 15);
    const { stdout } = await c.lab.exec(
      c.host('cp2').ns,
      ...programCommand(HTTP_GET, ['http://127.0.0.1:7581/status']),
    );
    const status = JSON.parse(stdout) as { bootstrapMember: string; bootstrapDisputedBy: string[] };
    assert.equal(status.bootstrapMember, 'cp2');
    assert.deepEqual(status.bootstrapDisputedBy, ['cp1']);
    const metrics = await c.lab.exec(c.host('cp1').ns, ...programCommand(HTTP_GET, ['http://127.0.0.1:7581/metrics']));
    assert.match(metrics.stdout, /^vipd_election_bootstrap_disagreements 1$/m);
    assert.equal(c.holderStats(since).maxOverlapMs, 0, 'never two holders');
  });
});
