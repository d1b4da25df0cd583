/**
 * NetlinkVipOwner, the packet socket and LinkWatch against a real kernel: every test builds its own
 * namespaces (src/lab/netns.ts: hosts on one bridge, 10.77.0.0/24), runs vipd's code inside
 * them through test/helpers/vip-agent.ts, and checks the result with `ip`. Needs root.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { Lab, LanHost, NsProcess } from '../src/lab/netns';
import { sleep, waitFor } from '../src/lab/wait';
import { buildGratuitousArp } from '../src/vip/arp';
import { programCommand } from './helpers/agent-loop';
import { withLab } from './helpers/with-lab';

const AGENT = path.join(__dirname, 'helpers', 'vip-agent.js');
const UDP_SEND = path.join(__dirname, 'helpers', 'udp-send.js');
const VIP = '10.77.0.100';
const FAKE_MAC = '02:00:00:00:00:99';
// No skip when not root: these tests must run (CI runs as root); without root they fail loudly.
const opts = { timeout: 120_000 };

interface VipOptions {
  address: string;
  interface: string;
  garp: { burst: number; burstInterval: number; refresh: number };
  conflictDetection: boolean;
}
interface Counters {
  garpSent: number;
  vipConflicts: number;
}

function vipOptions(garp: Partial<VipOptions['garp']> = {}, conflictDetection = true): VipOptions {
  return {
    address: `${VIP}/24`,
    interface: 'eth0',
    garp: { burst: 3, burstInterval: 100, refresh: 0, ...garp },
    conflictDetection,
  };
}

function startAgent(lab: Lab, host: LanHost, vip: VipOptions = vipOptions(), nodeFlags: string[] = []): NsProcess {
  return lab.spawnNode(host.ns, AGENT, [JSON.stringify(vip)], nodeFlags);
}

const counters = (agent: NsProcess) => agent.request<Counters>('metrics');

function host(hosts: Map<string, LanHost>, name: string): LanHost {
  const h = hosts.get(name);
  if (h === undefined) throw new Error(`no host ${name}`);
  return h;
}

/** Points `client`'s entry for the VIP at a MAC nobody has, as a cache left by the old master would. */
async function primeNeighbour(lab: Lab, client: LanHost): Promise<void> {
  await lab.ip(client.ns, 'neigh', 'replace', VIP, 'lladdr', FAKE_MAC, 'dev', client.ifname, 'nud', 'stale');
  assert.equal((await lab.neighbour(client.ns, client.ifname, VIP))?.lladdr, FAKE_MAC);
}

async function waitNeighbour(lab: Lab, client: LanHost, mac: string): Promise<void> {
  await waitFor(
    `${client.ns} to map ${VIP} to ${mac}`,
    async () => (await lab.neighbour(client.ns, client.ifname, VIP))?.lladdr === mac,
    { timeoutMs: 5000, everyMs: 100 },
  );
}

function conflictLogs(agent: NsProcess): Array<Record<string, unknown>> {
  return agent.logs.filter((l) => l.level === 'error' && String(l.msg).startsWith('VIP conflict'));
}

describe('NetlinkVipOwner in network namespaces', () => {
  it('adds the VIP on acquire and removes it on release, idempotently', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      const owner = startAgent(lab, a);
      await owner.request('prepare');
      assert.deepEqual(await lab.addresses(a.ns, 'eth0'), ['10.77.0.1/24']);

      await owner.request('acquire');
      assert.deepEqual((await lab.addresses(a.ns, 'eth0')).sort(), ['10.77.0.1/24', `${VIP}/24`]);
      assert.equal(await owner.request('held'), true);
      await owner.request('acquire');
      assert.equal((await lab.addresses(a.ns, 'eth0')).length, 2);

      await owner.request('release');
      assert.deepEqual(await lab.addresses(a.ns, 'eth0'), ['10.77.0.1/24']);
      assert.equal(await owner.request('held'), false);
      await owner.request('release');

      // Already present (EEXIST) still counts as acquired; close() takes it off.
      await lab.ip(a.ns, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
      await owner.request('acquire');
      assert.equal(await owner.request('held'), true);
      await owner.request('close');
      assert.deepEqual(await lab.addresses(a.ns, 'eth0'), ['10.77.0.1/24']);
      await owner.request('close');
    }),
  );

  it('prepare() removes a copy of the VIP left by a crashed run, whatever its prefix', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      await lab.ip(a.ns, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
      await lab.ip(a.ns, 'addr', 'add', `${VIP}/32`, 'dev', 'eth0');
      await lab.ip(a.ns, 'addr', 'add', '10.77.0.200/24', 'dev', 'eth0');
      const owner = startAgent(lab, a);
      await owner.request('prepare');
      assert.deepEqual((await lab.addresses(a.ns, 'eth0')).sort(), ['10.77.0.1/24', '10.77.0.200/24']);
      assert.equal(await owner.request('held'), false);
      assert.equal(owner.logs.filter((l) => l.msg === 'removed a leftover copy of the VIP').length, 2);
    }),
  );

  it("the takeover burst repoints a client's stale neighbour entry, then stops", opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c']);
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      await primeNeighbour(lab, c);
      const owner = startAgent(lab, a, vipOptions({ burst: 3, burstInterval: 100, refresh: 0 }));
      await owner.request('prepare');
      await owner.request('acquire');
      await waitNeighbour(lab, c, a.mac);
      // 3 rounds of one request and one reply, then silence (refresh is off).
      await waitFor('6 GARPs', async () => (await counters(owner)).garpSent === 6, { timeoutMs: 5000, everyMs: 100 });
      await sleep(600);
      assert.equal((await counters(owner)).garpSent, 6);
    }),
  );

  it('each GARP form alone overrides a fresh neighbour entry on Linux', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c']);
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      const sender = startAgent(lab, a);
      for (const form of ['request', 'reply'] as const) {
        // Just updated, so within the 1 s locktime: only a frame Linux sees as gratuitous overrides it.
        await primeNeighbour(lab, c);
        await sender.request('sendFrame', { hex: buildGratuitousArp(form, a.mac, VIP).toString('hex') });
        await waitFor(
          `the ${form} form to update ${c.ns}`,
          async () => (await lab.neighbour(c.ns, 'eth0', VIP))?.lladdr === a.mac,
          { timeoutMs: 800, everyMs: 100 },
        );
      }
    }),
  );

  it('refreshes while held and stops on release', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      const owner = startAgent(lab, a, vipOptions({ burst: 1, refresh: 150 }));
      await owner.request('prepare');
      await owner.request('acquire');
      await waitFor('refresh GARPs', async () => (await counters(owner)).garpSent >= 8, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      await owner.request('release');
      const after = (await counters(owner)).garpSent;
      await sleep(600);
      assert.equal((await counters(owner)).garpSent, after);
    }),
  );

  it('counts, logs and answers a second owner claiming the VIP', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'b', 'c']);
      const a = host(hosts, 'a');
      const b = host(hosts, 'b');
      const c = host(hosts, 'c');
      const ownerA = startAgent(lab, a, vipOptions({ burst: 1 }));
      await ownerA.request('prepare');
      await ownerA.request('acquire');

      // Ordinary ARP traffic for the VIP (c resolves it; a's kernel answers) is not a conflict.
      await lab.exec(c.ns, ...programCommand(UDP_SEND, [VIP, '9']));
      await waitNeighbour(lab, c, a.mac);
      await sleep(300);
      assert.equal((await counters(ownerA)).vipConflicts, 0);
      const sentBefore = (await counters(ownerA)).garpSent;

      const ownerB = startAgent(lab, b, vipOptions({ burst: 1 }));
      await ownerB.request('prepare');
      await ownerB.request('acquire');
      await waitFor('a to count the conflict', async () => (await counters(ownerA)).vipConflicts >= 1, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      await waitFor('a to re-announce', async () => (await counters(ownerA)).garpSent > sentBefore, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      const [line] = conflictLogs(ownerA);
      assert.equal(line?.theirMac, b.mac);
      assert.equal(line?.ourMac, a.mac);
      // And b, a holder too, hears a's answer.
      await waitFor('b to count the conflict', async () => (await counters(ownerB)).vipConflicts >= 1, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
    }),
  );

  it('answers a flood of conflicting frames with at most one burst per second and one log line', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c']);
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      const owner = startAgent(lab, a, vipOptions({ burst: 1 }));
      await owner.request('prepare');
      await owner.request('acquire');
      await waitFor('the takeover GARPs', async () => (await counters(owner)).garpSent === 2, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      const claimant = startAgent(lab, c);
      const frame = buildGratuitousArp('reply', c.mac, VIP).toString('hex');
      const started = performance.now();
      for (let i = 0; i < 10; i++) await claimant.request('sendFrame', { hex: frame });
      const elapsed = performance.now() - started;
      await waitFor('10 conflicts', async () => (await counters(owner)).vipConflicts === 10, {
        timeoutMs: 10_000,
        everyMs: 100,
      });
      const bursts = ((await counters(owner)).garpSent - 2) / 2;
      assert.ok(
        bursts >= 1 && bursts <= Math.floor(elapsed / 1000) + 1,
        `${bursts} bursts for 10 frames in ${Math.round(elapsed)}ms`,
      );
      assert.equal(conflictLogs(owner).length, 1);

      // Without conflict detection the same frames are ignored.
      await owner.request('close');
      const quiet = startAgent(lab, a, vipOptions({ burst: 1 }, false));
      await quiet.request('prepare');
      await quiet.request('acquire');
      await claimant.request('sendFrame', { hex: frame });
      await sleep(300);
      assert.equal((await counters(quiet)).vipConflicts, 0);
    }),
  );
});

describe('LinkWatch in a network namespace', () => {
  it('reports the initial state, then admin down/up and carrier loss from the peer', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      const agent = startAgent(lab, a);
      assert.equal(await agent.request('watch', { interface: 'eth0' }), 'up');
      const states = () => agent.events.filter((e) => e.event === 'link').map((e) => e.state);
      const expectStates = async (expected: string[]) =>
        waitFor(`link states ${expected.join(',')}`, () => states().length >= expected.length, {
          timeoutMs: 5000,
          everyMs: 50,
        }).then(() => assert.deepEqual(states(), expected));

      await expectStates(['up']);
      await lab.ip(a.ns, 'link', 'set', 'eth0', 'down');
      await expectStates(['up', 'down']);
      await lab.ip(a.ns, 'link', 'set', 'eth0', 'up');
      await expectStates(['up', 'down', 'up']);
      // The peer end going down takes the carrier (IFF_RUNNING) while eth0 stays admin-up.
      await lab.ip(a.bridgeNs, 'link', 'set', a.bridgePort, 'down');
      await expectStates(['up', 'down', 'up', 'down']);
      await lab.ip(a.bridgeNs, 'link', 'set', a.bridgePort, 'up');
      await expectStates(['up', 'down', 'up', 'down', 'up']);
      await agent.request('unwatch');
    }),
  );
});

describe('PacketSocket native addon', () => {
  it('closes the fd of a socket that is garbage collected without close()', opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      const agent = startAgent(lab, a, vipOptions(), ['--expose-gc']);
      const { before, opened, after } = await agent.request<{ before: number; opened: number; after: number }>(
        'gcProbe',
        { interface: 'eth0', count: 20 },
      );
      assert.equal(opened - before, 20);
      assert.equal(after, before);
    }),
  );
});
