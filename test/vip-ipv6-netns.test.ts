/**
 * NetlinkVipOwner with an IPv6 VIP against a real kernel (test/helpers/vip-agent.ts in namespaces of
 * a lab segment with fd00:77::/64): the VIP is added without duplicate address detection (never
 * tentative) and with the kernel lifetime, announced with unsolicited Neighbor Advertisements that
 * repoint a client's neighbour cache, and watched for another host claiming it. Needs root.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { Lab, LanHost, NsProcess } from '../src/lab/netns';
import { sleep, waitFor } from '../src/lab/wait';
import { buildUnsolicitedNa } from '../src/vip/ndisc';
import { programCommand } from './helpers/agent-loop';
import { withLab } from './helpers/with-lab';

const AGENT = path.join(__dirname, 'helpers', 'vip-agent.js');
const TCP_CLIENT = path.join(__dirname, 'helpers', 'tcp-client.js');
const PREFIX = 'fd00:77::';
const VIP6 = 'fd00:77::100';
const FAKE_MAC = '02:00:00:00:00:99';
const opts = { timeout: 120_000 };

interface Counters {
  garpSent: number;
  naSent: number;
  vipConflicts: number;
}

function startAgent(lab: Lab, h: LanHost, garp: Record<string, number> = {}, lifetime?: number): NsProcess {
  const vip = {
    address: `${VIP6}/64`,
    interface: 'eth0',
    garp: { burst: 3, burstInterval: 100, refresh: 0, ...garp },
    conflictDetection: true,
    ...(lifetime === undefined ? {} : { lifetime }),
  };
  return lab.spawnNode(h.ns, AGENT, [JSON.stringify(vip)]);
}

const counters = (agent: NsProcess) => agent.request<Counters>('metrics');

function host(hosts: Map<string, LanHost>, name: string): LanHost {
  const h = hosts.get(name);
  if (h === undefined) throw new Error(`no host ${name}`);
  return h;
}

/** The VIP's entry in `ip -j -6 addr`, flags included, or undefined. */
async function vipEntry(lab: Lab, ns: string): Promise<Record<string, unknown> | undefined> {
  const links = JSON.parse((await lab.ip(ns, '-j', '-6', 'addr', 'show', 'dev', 'eth0')).stdout) as Array<{
    addr_info?: Array<Record<string, unknown>>;
  }>;
  return links.flatMap((l) => l.addr_info ?? []).find((a) => a.local === VIP6);
}

async function waitNeighbour(lab: Lab, client: LanHost, mac: string): Promise<void> {
  await waitFor(
    `${client.ns} to map ${VIP6} to ${mac}`,
    async () => (await lab.neighbour(client.ns, client.ifname, VIP6))?.lladdr === mac,
    { timeoutMs: 5000, everyMs: 100 },
  );
}

describe('NetlinkVipOwner with an IPv6 VIP in network namespaces', () => {
  it('adds the VIP usable at once (nodad, never tentative) with its lifetime, and removes it', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a'], { ipv6: PREFIX }), 'a');
      const owner = startAgent(lab, a, {}, 3000);
      await owner.request('prepare');
      assert.equal(await vipEntry(lab, a.ns), undefined);
      await owner.request('acquire');
      const entry = await vipEntry(lab, a.ns);
      assert.ok(entry !== undefined, 'the VIP is on eth0');
      assert.equal(entry.prefixlen, 64);
      assert.equal(entry.tentative, undefined, `not tentative: ${JSON.stringify(entry)}`);
      assert.equal(entry.nodad, true, `added nodad: ${JSON.stringify(entry)}`);
      assert.ok(Number(entry.valid_life_time) <= 3, `a finite lifetime: ${JSON.stringify(entry)}`);
      // Deprecated, so never the source of this node's own connections (etcd, the kubelet, the
      // balancer's connects): the node's address stays the source while the VIP is held.
      assert.equal(entry.preferred_life_time, 0, `deprecated: ${JSON.stringify(entry)}`);
      const route = JSON.parse((await lab.ip(a.ns, '-j', '-6', 'route', 'get', `${PREFIX}2`)).stdout) as Array<{
        prefsrc?: string;
      }>;
      assert.equal(route[0]?.prefsrc, a.ip6, 'the source for a peer is the node address, not the VIP');
      // Usable: a socket can bind it right away (a tentative address gives EADDRNOTAVAIL).
      await lab.exec(a.ns, 'python3', '-c', `import socket; s=socket.socket(socket.AF_INET6); s.bind(('${VIP6}', 0))`);
      await owner.request('release');
      assert.equal(await vipEntry(lab, a.ns), undefined);
      assert.equal(await owner.request('held'), false);
    }),
  );

  it('the lifetime runs out by itself when nobody renews it (a stalled holder loses the VIP)', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a'], { ipv6: PREFIX }), 'a');
      const owner = startAgent(lab, a, {}, 1000);
      await owner.request('prepare');
      await owner.request('acquire');
      assert.ok((await vipEntry(lab, a.ns)) !== undefined);
      await waitFor('the kernel to expire the VIP', async () => (await vipEntry(lab, a.ns)) === undefined, {
        timeoutMs: 5000,
        everyMs: 100,
      });
    }),
  );

  it("the takeover burst of Neighbor Advertisements repoints a client's cached entry, then stops", opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c'], { ipv6: PREFIX });
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      // The client's cache still points at a MAC nobody has, as one left by the old holder would.
      await lab.ip(c.ns, 'neigh', 'replace', VIP6, 'lladdr', FAKE_MAC, 'dev', 'eth0', 'nud', 'reachable');
      assert.equal((await lab.neighbour(c.ns, 'eth0', VIP6))?.lladdr, FAKE_MAC);
      const owner = startAgent(lab, a, { burst: 3, burstInterval: 100, refresh: 0 });
      await owner.request('prepare');
      await owner.request('acquire');
      await waitNeighbour(lab, c, a.mac);
      await waitFor('3 NAs', async () => (await counters(owner)).naSent === 3, { timeoutMs: 5000, everyMs: 100 });
      await sleep(600);
      const after = await counters(owner);
      assert.equal(after.naSent, 3);
      assert.equal(after.garpSent, 0, 'no ARP for an IPv6 VIP');
    }),
  );

  it('one NA alone overrides a REACHABLE entry (the Override flag), as the kernel checks the checksum', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c'], { ipv6: PREFIX });
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      const sender = startAgent(lab, a);
      await lab.ip(c.ns, 'neigh', 'replace', VIP6, 'lladdr', FAKE_MAC, 'dev', 'eth0', 'nud', 'reachable');
      // A frame with a wrong checksum changes nothing: the kernel verifies what buildUnsolicitedNa computes.
      const broken = buildUnsolicitedNa(a.mac, VIP6);
      broken[57] = (broken[57] ?? 0) ^ 0xff;
      await sender.request('sendFrame', { hex: broken.toString('hex') });
      await sleep(500);
      assert.equal((await lab.neighbour(c.ns, 'eth0', VIP6))?.lladdr, FAKE_MAC, 'a bad checksum is dropped');
      await sender.request('sendFrame', { hex: buildUnsolicitedNa(a.mac, VIP6).toString('hex') });
      await waitFor(
        'one NA to update the entry',
        async () => (await lab.neighbour(c.ns, 'eth0', VIP6))?.lladdr === a.mac,
        {
          timeoutMs: 800,
          everyMs: 100,
        },
      );
    }),
  );

  it('counts, logs and answers another host claiming the VIP; ordinary resolution is no conflict', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'b', 'c'], { ipv6: PREFIX });
      const a = host(hosts, 'a');
      const b = host(hosts, 'b');
      const c = host(hosts, 'c');
      const ownerA = startAgent(lab, a, { burst: 1 });
      await ownerA.request('prepare');
      await ownerA.request('acquire');
      // c resolves the VIP (a solicitation, a's kernel answers solicited): not a conflict.
      await lab.ip(c.ns, 'neigh', 'flush', 'dev', 'eth0');
      await lab.exec(c.ns, ...programCommand(TCP_CLIENT, [VIP6, '9', '--for-ms', '1000']));
      await waitNeighbour(lab, c, a.mac);
      await sleep(300);
      assert.equal((await counters(ownerA)).vipConflicts, 0);
      const sentBefore = (await counters(ownerA)).naSent;

      // b claims it with an NA of its own.
      const claimer = startAgent(lab, b);
      await claimer.request('sendFrame', { hex: buildUnsolicitedNa(b.mac, VIP6).toString('hex') });
      await waitFor('a to count the conflict', async () => (await counters(ownerA)).vipConflicts >= 1, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      await waitFor('a to re-announce', async () => (await counters(ownerA)).naSent > sentBefore, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      const line = ownerA.logs.find((l) => l.level === 'error' && String(l.msg).startsWith('VIP conflict'));
      assert.equal(line?.theirMac, b.mac);
      assert.equal(line?.ourMac, a.mac);
      assert.equal(line?.op, 'neighbor-advertisement');
      // And the client ends up at a again.
      await waitNeighbour(lab, c, a.mac);
    }),
  );
});
