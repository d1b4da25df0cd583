/**
 * IPv6-only and dual-stack clusters with the real daemon in namespaces (three nodes and a client
 * on one bridge with fd00:77::/64, test/helpers/netns-cluster.ts): the election runs over IPv6
 * heartbeats; the holder has the IPv6 VIP (and, dual stack, the IPv4 one with it); a dead node's
 * VIP moves, both families together, and the client's neighbour cache follows the unsolicited
 * Neighbor Advertisements (read from the client's namespace, the client sending nothing meanwhile);
 * a partition and a graceful stop leave one holder. Holders are read from each namespace's
 * addresses, never from the daemons' word. The client's idle connections through the dead master's
 * balancer, to the IPv6 VIP (and the IPv4 one), are reset by the new master's tickle ACKs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sleep, waitFor } from '../src/lab/wait';
import { programCommand } from './helpers/agent-loop';
import { Cluster, NODES, type NodeName, type Stack, VIP, VIP6 } from './helpers/netns-cluster';
import type { GroupSummary } from './helpers/tickle-agent';

const ISOLATE = [
  'table inet vipd_isolate {',
  '  chain in { type filter hook input priority 0; udp dport 7580 drop; }',
  '  chain out { type filter hook output priority 0; udp dport 7580 drop; }',
  '}',
  '',
].join('\n');
const CLEAR = 'delete table inet vipd_isolate\n';
const say = (line: string) => console.log(`# ${line}`);
const HTTP_GET = join(__dirname, 'helpers', 'http-get.js');
const TICKLE_AGENT = join(__dirname, 'helpers', 'tickle-agent.js');
/** Idle connections per VIP through the master's balancer when its node dies. */
const IDLE = 5;

for (const stack of ['ipv6', 'dual'] as const satisfies readonly Stack[]) {
  describe(`${stack === 'ipv6' ? 'IPv6-only' : 'dual-stack'} cluster (the real daemon in namespaces)`, {
    timeout: 300_000,
  }, () => {
    // The balancer on [::]:6443 (IPv4 clients too), the backends every peer's IPv6 address on :9443.
    const proxy = { enabled: true, frontends: [{ name: 'apiserver', bind: '[::]:6443', backendPort: 9443 }] };
    const c = new Cluster('majority', { proxy }, undefined, stack);
    before(async () => {
      await c.build();
      c.watch();
      for (const n of NODES) await c.startStandIn(n);
      for (const n of NODES) c.start(n);
    });

    /** /whoami of an apiserver, through the VIP's balancer, from the client's namespace. */
    async function whoami(vip: string): Promise<string> {
      const url = `https://${vip.includes(':') ? `[${vip}]` : vip}:6443/whoami`;
      const r = await c.lab.exec(c.host('client').ns, ...programCommand(HTTP_GET, [url, '--insecure']));
      return r.stdout;
    }

    /** Requests through the VIP reach apiservers, round robin over more than one. */
    async function servedThrough(vip: string): Promise<void> {
      const seen = new Set<string>();
      await waitFor(
        `requests through ${vip}:6443 to reach two apiservers`,
        async () => {
          seen.add(await whoami(vip).catch(() => ''));
          return [...seen].filter((s) => s !== '').length >= 2 ? true : undefined;
        },
        { timeoutMs: 15_000, everyMs: 200 },
      );
      assert.ok(
        [...seen].every((s) => s === '' || NODES.includes(s as NodeName)),
        [...seen].join(','),
      );
    }
    after(() => c.destroy());

    /** The holder of the IPv6 VIP, checked to hold the IPv4 one too (dual stack) and to be the only one. */
    /**
     * The one holder, of both VIPs (dual stack). Each family's copy on a node that just died or was
     * cut off lingers until the kernel expires it (its lifetime, 1 s, plus the kernel's timer slack,
     * which differs between the families), so each is waited for.
     */
    async function holder(): Promise<NodeName> {
      const [h] = await c.until('exactly one holder of the VIP', (x) => x.length === 1, 15);
      for (const vip of stack === 'dual' ? [VIP6, VIP] : [VIP6]) {
        await c.until(`${vip} on ${h} alone`, (x) => x.length === 1 && x[0] === h, 5, vip);
      }
      return h as NodeName;
    }

    async function clientLearns(): Promise<void> {
      await c.clientResolves(VIP6);
      if (stack === 'dual') await c.clientResolves(VIP);
    }

    it('elects one holder over IPv6 heartbeats; the client resolves the VIP to it', async () => {
      const h = await holder();
      await clientLearns();
      await c.clientSees(h, VIP6);
      if (stack === 'dual') await c.clientSees(h, VIP);
      const d = c.daemons.get(h);
      const added = d?.lines.filter((l) => l.msg === 'VIP added').map((l) => l.vip);
      assert.deepEqual(added?.sort(), (stack === 'dual' ? [`${VIP}/24`, `${VIP6}/64`] : [`${VIP6}/64`]).sort());
    });

    it('the balancer serves the IPv6 VIP (and the IPv4 one, dual stack) from IPv6 apiservers', async () => {
      await holder();
      await servedThrough(VIP6);
      if (stack === 'dual') await servedThrough(VIP);
    });

    it("the master's node dies: another holds both VIPs, the client's cache follows the NAs, its idle connections are reset", async (t) => {
      const m = await holder();
      // Idle connections through the master's balancer, to each VIP: the new master must reset them.
      const agent = c.lab.spawnNode(c.host('client').ns, TICKLE_AGENT);
      const vips = stack === 'dual' ? [VIP6, VIP] : [VIP6];
      for (const vip of vips) await agent.request('connect', { group: vip, address: vip, port: 6443, count: IDLE });
      // The master tells its peers of a new connection within a few ms: half a second of margin.
      await sleep(500);
      const since = performance.now();
      const h = c.host(m);
      await c.lab.ip(h.bridgeNs, 'link', 'set', h.bridgePort, 'down');
      await c.daemons.get(m)?.kill();
      // The node comes back whatever this test finds, so the next ones start from three.
      t.after(async () => {
        await agent.stop();
        const d = c.daemons.get(m)?.child;
        if (d !== undefined && d.exitCode === null && d.signalCode === null) return; // restarted below
        await c.lab.ip(h.bridgeNs, 'link', 'set', h.bridgePort, 'up');
        c.start(m);
        await sleep(3000);
      });
      const [next] = await c.until('another node to hold the VIP', (x) => x.length === 1 && x[0] !== m, 15);
      const gain = c.holderEvents.find((e) => e.at >= since && e.held);
      const took = gain === undefined ? undefined : Math.round(gain.at - since);
      const n = await holder();
      assert.equal(n, next);
      // No traffic from the client: only the new holder's advertisements can repoint its entry.
      await c.clientSees(n, VIP6);
      if (stack === 'dual') await c.clientSees(n, VIP);
      // (The dead node keeps its copy until the kernel expires it, harmlessly: nobody reaches it.)
      say(`${stack}: node death of ${m}: ${n} holds it after ${took} ms; client cache repointed`);
      // Without the reset these would sit open until the client's own timeouts (none here: forever).
      const reset = async () => Promise.all(vips.map((group) => agent.request<GroupSummary>('connections', { group })));
      await waitFor(
        'the idle connections through the dead master to be reset',
        async () => ((await reset()).every((g) => g.open === 0) ? true : undefined),
        { timeoutMs: 5000, everyMs: 100 },
      ).catch(() => undefined);
      const groups = await reset();
      say(
        `${stack}: idle connections after the node death: ${vips.map((v, i) => `${v} ${JSON.stringify(groups[i]?.errors)}`).join(', ')}`,
      );
      assert.deepEqual(
        groups.map((g) => [g.errors, g.open]),
        vips.map(() => [{ ECONNRESET: IDLE }, 0]),
      );
      await servedThrough(VIP6);
      await c.lab.ip(h.bridgeNs, 'link', 'set', h.bridgePort, 'up');
      c.start(m);
      await sleep(3000);
      assert.equal((await c.holders()).length, 1);
    });

    it('the master cut off from its peers releases; another holds; never two holders', async () => {
      const m = await holder();
      const since = performance.now();
      c.nft(m, ISOLATE);
      try {
        await c.until('another node to hold the VIP alone', (x) => x.length === 1 && x[0] !== m, 15);
        await holder();
        await sleep(2000);
        assert.equal((await c.holders()).length, 1);
      } finally {
        c.nft(m, CLEAR);
      }
      say(`${stack}: {${m}} cut off: longest overlap ${Math.round(c.holderStats(since).maxOverlapMs)} ms`);
      assert.equal(c.holderStats(since).maxOverlapMs, 0);
    });

    it('a graceful stop hands both VIPs over', async () => {
      const m = await holder();
      const d = c.daemons.get(m);
      d?.signal('SIGTERM');
      await c.until('another node to hold the VIP', (x) => x.length === 1 && x[0] !== m, 15);
      await holder();
      c.start(m);
      await sleep(2000);
      assert.equal((await c.holders()).length, 1);
    });
  });
}
