/**
 * The real daemon on real (namespaced) hosts: three control-plane nodes and a client on one bridge,
 * each node running `vipd run` inside its namespace. Checks, by reading each namespace's addresses
 * and the client's neighbour table (not the daemons' own word):
 * - exactly one node holds the VIP at steady state;
 * - after each failover the client's neighbour entry for the VIP shows the new master's MAC
 *   without the client asking (gratuitous ARP worked);
 * - SIGKILL: a backup takes over; the killed node, restarted, removes its stale VIP before joining;
 * - SIGTERM: the named successor takes over;
 * - partition {master} | {others} with quorum: the isolated node releases, the majority elects, on
 *   heal one holder; without quorum (keepalived-like) both hold it until the heal, then one;
 * - link down on the master: FAULT and release; link up: it rejoins as BACKUP.
 * Bounds are generous (correctness, not speed: the lab and bench/ measure speed).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { HEAL, ISOLATE } from '../src/lab/drill';
import { Lab, sleep, waitFor, type LanHost } from '../src/lab/netns';
import { DaemonProcess, isTransition, tempDir } from './helpers/daemon';

const VIP = '10.77.0.100';
const STAND_IN = join(__dirname, '..', 'src', 'lab', 'stand-in-apiserver.js');
const NODES = ['cp1', 'cp2', 'cp3'] as const;
type NodeName = (typeof NODES)[number];

class Cluster {
  readonly lab = new Lab();
  readonly tmp = tempDir();
  hosts = new Map<string, LanHost>();
  readonly daemons = new Map<NodeName, DaemonProcess>();

  readonly standIns = new Map<NodeName, ChildProcess>();

  constructor(private readonly quorum: 'majority' | 'none', private readonly extra: Record<string, unknown> = {}) {}

  host(n: string): LanHost { return this.hosts.get(n) as LanHost; }

  async build(): Promise<void> {
    this.hosts = await this.lab.lan([...NODES, 'client']);
    for (const n of NODES) {
      writeFileSync(join(this.tmp.dir, `${n}.yaml`), stringify({
        nodeName: n,
        peers: NODES.map((p) => ({ name: p, address: this.host(p).ip })),
        vip: { address: `${VIP}/24`, interface: 'eth0', garp: { refresh: '0s' } },
        election: { secretFile: this.tmp.secretFile, quorum: this.quorum },
        proxy: { enabled: false },
        track: { apiserver: { enabled: false } },
        ...this.extra,
      }));
    }
  }

  start(n: NodeName): DaemonProcess {
    const d = new DaemonProcess(n, ['run', '--config', join(this.tmp.dir, `${n}.yaml`)], { prefix: ['ip', 'netns', 'exec', this.host(n).ns] });
    this.daemons.set(n, d);
    return d;
  }

  /** Who has the VIP on eth0, read from each namespace. */
  async holders(): Promise<NodeName[]> {
    const out: NodeName[] = [];
    for (const n of NODES) {
      if ((await this.lab.addresses(this.host(n).ns, 'eth0')).includes(`${VIP}/24`)) out.push(n);
    }
    return out;
  }

  /** Waits until exactly the holders `pred` accepts, and returns them. */
  async until(what: string, pred: (h: NodeName[]) => boolean, seconds = 10): Promise<NodeName[]> {
    return waitFor(what, async () => { const h = await this.holders(); return pred(h) ? h : undefined; }, { tries: seconds * 10, everyMs: 100 });
  }

  async one(seconds = 10): Promise<NodeName> {
    const [h] = await this.until('exactly one VIP holder', (x) => x.length === 1, seconds);
    return h as NodeName;
  }

  /** The client talks to the VIP once, so it has a neighbour entry for it to be updated. */
  async clientResolves(): Promise<void> {
    // A TCP connect to a closed port: the client resolves the VIP's MAC, the holder answers RST.
    await this.lab.exec(this.host('client').ns, process.execPath, '-e',
      `const s = require('net').connect(9, '${VIP}'); s.on('error', () => {}); s.on('close', () => process.exit(0)); setTimeout(() => process.exit(0), 1000);`);
  }

  async clientSees(n: NodeName): Promise<void> {
    const mac = this.host(n).mac;
    await waitFor(`the client's neighbour entry for the VIP to show ${n}'s MAC ${mac}`, async () => {
      const e = await this.lab.neighbour(this.host('client').ns, 'eth0', VIP);
      return e?.lladdr === mac ? e : undefined;
    }, { tries: 50, everyMs: 100 });
  }

  nft(n: NodeName, rules: string): void {
    execFileSync('ip', ['netns', 'exec', this.host(n).ns, 'nft', '-f', '-'], { input: rules });
  }

  /** The stand-in apiserver on the node's :9443 (HTTPS /readyz; SIGUSR1 makes it answer 503). */
  async startStandIn(n: NodeName): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', this.host(n).ns, process.execPath, STAND_IN, '--host', '0.0.0.0', '--port', '9443', '--name', n], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.standIns.set(n, child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${n}: the stand-in apiserver did not start`)), 15_000);
      child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
    });
  }

  async destroy(): Promise<void> {
    for (const c of this.standIns.values()) c.kill('SIGKILL');
    await Promise.all([...this.daemons.values()].map((d) => d.kill()));
    await this.lab.destroy();
    this.tmp.cleanup();
  }
}


describe('the VIP on namespaced hosts (quorum: majority)', { timeout: 180_000 }, () => {
  const c = new Cluster('majority');
  before(async () => {
    await c.build();
    for (const n of NODES) c.start(n);
  });
  after(() => c.destroy());

  it('exactly one node holds the VIP at steady state', async () => {
    const h = await c.one();
    await sleep(1500);
    assert.deepEqual(await c.holders(), [h], 'still exactly one, and the same');
    await c.clientResolves();
    await c.clientSees(h);
  });

  it('SIGKILL: a backup takes over and the client learns its MAC from GARP; the restarted node removes its stale VIP', async () => {
    const old = await c.one();
    await c.clientResolves();
    c.daemons.get(old)!.signal('SIGKILL');
    await c.daemons.get(old)!.exited;
    // SIGKILL cannot clean up: the VIP stays on the dead daemon's interface (a hung node).
    const both = await c.until('a new holder besides the stale copy', (h) => h.length === 2 && h.includes(old));
    const next = both.find((n) => n !== old)!;
    await c.clientSees(next);
    const d = c.start(old);
    await d.waitFor((l) => l.msg === 'removed a leftover copy of the VIP', 10_000, 'the stale VIP removal');
    await d.waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
    assert.deepEqual(await c.until('one holder again', (h) => h.length === 1), [next]);
    await sleep(1000);
    assert.deepEqual(await c.holders(), [next], 'the restarted node did not take it back');
  });

  it('SIGTERM: the named successor takes over', async () => {
    const old = await c.one();
    await c.clientResolves();
    const d = c.daemons.get(old)!;
    const resign = d.waitForNext((l) => l.reason === 'stopping', 10_000, 'the resign');
    d.signal('SIGTERM');
    const successor = (await resign).master as NodeName;
    assert.ok(NODES.includes(successor) && successor !== old, `named ${String(successor)}`);
    assert.deepEqual(await c.until('the successor holds it', (h) => h.length === 1 && h[0] === successor), [successor]);
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    await c.clientSees(successor);
    c.start(old);
    await c.daemons.get(old)!.waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
  });

  it('partition {master} | {others}: the isolated node releases, the majority elects; on heal one holder', async () => {
    const old = await c.one();
    await c.clientResolves();
    c.nft(old, ISOLATE);
    try {
      const [next] = await c.until('the majority to take over and the isolated node to release', (h) => h.length === 1 && h[0] !== old);
      await c.clientSees(next as NodeName);
      await c.daemons.get(old)!.waitFor((l) => l.reason === 'lost quorum', 5000, 'the quorum loss line');
    } finally {
      c.nft(old, HEAL);
    }
    await sleep(1500);
    assert.equal((await c.holders()).length, 1, 'one holder after the heal');
  });

  it('link down on the master: FAULT and release; link up: it rejoins as BACKUP', async () => {
    const old = await c.one();
    const d = c.daemons.get(old)!;
    const fault = d.waitForNext(isTransition('FAULT'), 10_000, 'FAULT');
    await c.lab.ip(c.host(old).ns, 'link', 'set', 'eth0', 'down');
    await fault;
    const next = await c.until('another node to take over', (h) => h.length === 1 && h[0] !== old);
    assert.ok(!(await c.lab.addresses(c.host(old).ns, 'eth0')).includes(`${VIP}/24`), 'the faulted node released the VIP');
    const back = d.waitForNext(isTransition('BACKUP'), 10_000, 'BACKUP after link up');
    await c.lab.ip(c.host(old).ns, 'link', 'set', 'eth0', 'up');
    await back;
    await sleep(1000);
    assert.deepEqual(await c.holders(), next, 'equal priorities: no preemption after the link returns');
  });
});

describe('the VIP on namespaced hosts (quorum: none, keepalived-like)', { timeout: 120_000 }, () => {
  const c = new Cluster('none');
  before(async () => {
    await c.build();
    for (const n of NODES) c.start(n);
  });
  after(() => c.destroy());

  it('partition {master} | {others}: both sides hold the VIP (split brain) until the heal, then one', async () => {
    const old = await c.one();
    c.nft(old, ISOLATE);
    try {
      const both = await c.until('a second holder on the majority side', (h) => h.length === 2 && h.includes(old));
      assert.equal(both.length, 2, 'without quorum the isolated node keeps the VIP: the split brain quorum prevents');
    } finally {
      c.nft(old, HEAL);
    }
    await c.until('one holder after the heal', (h) => h.length === 1);
  });
});

describe('the local apiserver steers the election (track.apiserver)', { timeout: 120_000 }, () => {
  const c = new Cluster('majority', {
    track: { apiserver: { enabled: true, port: 9443, interval: '300ms', timeout: '200ms', fall: 2, rise: 2, mode: 'weight', weight: 50 } },
  });
  before(async () => {
    await c.build();
    for (const n of NODES) await c.startStandIn(n);
    for (const n of NODES) c.start(n);
  });
  after(() => c.destroy());

  it("the master's apiserver turns unhealthy: its priority drops and the VIP moves; recovery does not pull it back", async () => {
    const old = await c.one();
    await sleep(1500);
    await c.clientResolves();
    const d = c.daemons.get(old)!;
    const dropped = d.waitForNext((l) => l.reason === 'priority dropped', 10_000, 'the handover for a dropped priority');
    c.standIns.get(old)!.kill('SIGUSR1');
    const line = await dropped;
    assert.equal(line.priority, 50, 'priority 100 less the weight 50');
    const [next] = await c.until('another node to hold the VIP', (h) => h.length === 1 && h[0] !== old);
    await c.clientSees(next as NodeName);
    c.standIns.get(old)!.kill('SIGUSR2');
    await d.waitForNext((l) => l.msg === 'apiserver check: ok', 10_000, 'the recovery');
    await sleep(1000);
    assert.deepEqual(await c.holders(), [next], 'equal priorities again: no preemption back');
  });
});
