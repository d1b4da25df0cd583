/**
 * Two members and a witness, the real daemons on namespaced hosts (test/helpers/netns-cluster.ts):
 * cp1 and cp2 run `vipd run`, cp3 `vipd witness` (peers[].role: witness, the same file shape on
 * every node). The cases of docs/kubeadm.md's two-node table, each read from the namespaces'
 * addresses (never the daemons' word):
 * - the master's node dies (its link cut first, then its vipd killed): the other member takes over;
 * - partitions {master} | {other, witness} and {master, witness} | {other}: the side with the
 *   witness holds, the other never does (no two holders at any time);
 * - the witness dies: the master keeps the VIP (2 of 3); then the master dies too: nobody holds;
 * - the witness on a second bridge behind a router namespace: routed heartbeats, the same takeover.
 * The times are printed as diagnostics (the closing note quotes them); the bounds asserted are generous.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClientLog } from '../src/lab/client-log';
import type { NsProcess } from '../src/lab/netns';
import { sleep } from '../src/lab/wait';
import { programCommand } from './helpers/agent-loop';
import { CLI } from './helpers/daemon';
import { Cluster, type NodeName } from './helpers/netns-cluster';

const HTTP_GET = join(__dirname, 'helpers', 'http-get.js');
/** The lab's client: a connect to VIP:6443 (the members' balancers) every 10 ms, outcomes as JSON lines. */
const CONNECT_CLIENT = join(__dirname, '..', 'src', 'lab', 'connect-client.js');
/** Drops every election datagram to and from this node: it is cut off from both others. */
const ISOLATE = [
  'table inet vipd_isolate {',
  '  chain in { type filter hook input priority 0; udp dport 7580 drop; }',
  '  chain out { type filter hook output priority 0; udp dport 7580 drop; }',
  '}',
  '',
].join('\n');
const CLEAR = 'delete table inet vipd_isolate\n';
const MEMBERS = ['cp1', 'cp2'] as const;

/** The node's switch port down (a dead machine sends nothing), then its daemon killed. */
async function nodeDies(c: Cluster, n: NodeName): Promise<void> {
  const h = c.host(n);
  await c.lab.ip(h.bridgeNs, 'link', 'set', h.bridgePort, 'down');
  await c.daemons.get(n)?.kill();
}
async function nodeBack(c: Cluster, n: NodeName): Promise<void> {
  const h = c.host(n);
  await c.lab.ip(h.bridgeNs, 'link', 'set', h.bridgePort, 'up');
  c.start(n);
}

/** From the kernels' events since `since`: when the VIP was next on exactly `who`, and the longest overlap. */
function moved(c: Cluster, since: number): { tookMs: number | undefined; overlapMs: number } {
  const gain = c.holderEvents.find((e) => e.at >= since && e.held);
  return {
    tookMs: gain === undefined ? undefined : Math.round(gain.at - since),
    overlapMs: c.holderStats(since).maxOverlapMs,
  };
}

const say = (line: string) => console.log(`# ${line}`);

for (const routed of [false, true]) {
  describe(`two members and a witness${routed ? ' on another segment, behind a router' : ''} (namespaces)`, {
    timeout: 300_000,
  }, () => {
    // The members balance VIP:6443 to stand-in apiservers on each of them (the witness runs none).
    const c = new Cluster('majority', { proxy: { enabled: true } }, { node: 'cp3', routed });
    const client = new ClientLog();
    let clientProc: NsProcess | undefined;
    /** The client's longest outage since `since` (wall-clock ms), once it has been steady for a while. */
    const outage = async (since: number): Promise<string> => {
      await sleep(2000);
      for (const e of clientProc?.events.splice(0) ?? []) client.add(JSON.stringify(e));
      const ms = client.longestOutage(since);
      return ms === undefined ? 'still out' : `${ms} ms`;
    };
    before(async () => {
      await c.build();
      c.watch();
      for (const n of MEMBERS) await c.startStandIn(n);
      for (const n of ['cp3', ...MEMBERS] as const) c.start(n);
      await c.one(20);
      clientProc = c.lab.spawnNode(c.host('client').ns, CONNECT_CLIENT, ['10.77.0.100', '6443', '10', '600']);
      await sleep(1000);
    });
    after(async () => {
      await clientProc?.stop();
      await c.destroy();
    });
    const master = async () => (await c.one(20)) as NodeName;
    const other = (n: NodeName): NodeName => (n === 'cp1' ? 'cp2' : 'cp1');

    it('the witness never holds the VIP, and a member names it in vipd status', async () => {
      assert.ok(!(await c.holders()).includes('cp3'));
      const { stdout } = await c.lab.exec(
        c.host('cp1').ns,
        ...programCommand(CLI, ['status', '--url', 'http://127.0.0.1:7581']),
      );
      assert.match(stdout, /^cp3 \(witness\) +10\.7[78]\.0\.\d+ +yes/m, stdout);
      const w = await c.lab.exec(c.host('cp3').ns, ...programCommand(HTTP_GET, ['http://127.0.0.1:7581/metrics']));
      assert.match(w.stdout, /^vipd_witness 1$/m);
      assert.match(w.stdout, /^vipd_election_acknowledging\{member="cp[12]"\} 1$/m, 'it acknowledges the master');
      const line = c.daemons
        .get('cp3')
        ?.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('acknowledging cp'));
      assert.ok(line !== undefined, 'the witness logs whom it acknowledges');
    });

    it("the master's node dies: the other member takes over with the witness's vote", async () => {
      const m = await master();
      const since = performance.now();
      const wall = Date.now();
      await nodeDies(c, m);
      const [next] = await c.until('the other member to hold the VIP', (h) => h.length === 1 && h[0] === other(m), 15);
      const r = moved(c, since);
      const out = await outage(wall);
      say(`${routed ? 'routed: ' : ''}node death of ${m}: ${next} holds it after ${r.tookMs} ms; client outage ${out}`);
      await nodeBack(c, m);
      await sleep(3000);
      assert.equal((await c.holders()).length, 1);
    });

    if (routed) return; // the partitions and the witness's death: once is enough

    it('partition {master} | {other, witness}: only the other member holds it', async () => {
      const m = await master();
      const since = performance.now();
      const wall = Date.now();
      c.nft(m, ISOLATE);
      try {
        await c.until('the other member alone to hold the VIP', (h) => h.length === 1 && h[0] === other(m), 15);
        await sleep(5000);
        assert.deepEqual(await c.holders(), [other(m)], 'and nobody else, 5 s on');
        const r = moved(c, since);
        const out = await outage(wall);
        say(
          `{${m}} | {${other(m)}, cp3}: ${other(m)} holds it after ${r.tookMs} ms; two holders for ` +
            `${Math.round(r.overlapMs)} ms; client outage ${out}`,
        );
        assert.ok(r.overlapMs < 1500, `two holders for at most the VIP's lifetime (${r.overlapMs} ms)`);
      } finally {
        c.nft(m, CLEAR);
      }
      await sleep(2000);
    });

    it('partition {master, witness} | {other}: the master keeps it, the other never takes it', async () => {
      const m = await master();
      const since = performance.now();
      const wall = Date.now();
      c.nft(other(m), ISOLATE);
      try {
        await sleep(8000);
        assert.deepEqual(await c.holders(), [m]);
        assert.equal(c.holderStats(since).gains, 0, 'the VIP never moved');
        say(
          `{${m}, cp3} | {${other(m)}}: ${m} kept it; ${other(m)} never took it; client outage ${await outage(wall)}`,
        );
      } finally {
        c.nft(other(m), CLEAR);
      }
      await sleep(2000);
    });

    it('the witness dies: the master keeps the VIP; then the master dies too: nobody holds it', async () => {
      const m = await master();
      let since = performance.now();
      const wall = Date.now();
      await nodeDies(c, 'cp3');
      await sleep(8000);
      assert.deepEqual(await c.holders(), [m], 'two of three: the master keeps it');
      assert.equal(c.holderStats(since).gains, 0);
      say(`witness dead: ${m} kept it for 8 s, no move; client outage ${await outage(wall)}`);
      since = performance.now();
      await nodeDies(c, m);
      await sleep(8000);
      assert.deepEqual(await c.holders(), [], 'one of three is no majority: nobody holds it (never two)');
      say(`witness and master ${m} dead: no holder, 8 s on`);
      await nodeBack(c, 'cp3');
      await c.until('a holder once the witness is back', (h) => h.length === 1 && h[0] === other(m), 20);
      await nodeBack(c, m);
    });
  });
}
