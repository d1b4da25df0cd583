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
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HEAL, ISOLATE } from '../src/lab/drill';
import type { NsProcess } from '../src/lab/netns';
import { sleep } from '../src/lab/wait';
import { isTransition } from './helpers/daemon';
import { NODES, type NodeName, useCluster, VIP } from './helpers/netns-cluster';

const TCP_CLIENT = join(__dirname, 'helpers', 'tcp-client.js');

describe('the VIP on namespaced hosts (quorum: majority)', { timeout: 180_000 }, () => {
  // A 3 s lifetime: a SIGKILLed master's copy must still be there when it restarts (with 1 s, a busy
  // machine's restart could come after the kernel expired it, and nothing would be left to remove).
  const c = useCluster({ standIns: false }, 'majority', {
    vip: { address: `${VIP}/24`, interface: 'eth0', garp: { refresh: '0s' }, lifetime: '3s' },
  });

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
    const d = c.start(old);
    await c.clientSees(next);
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
      const [next] = await c.until(
        'the majority to take over and the isolated node to release',
        (h) => h.length === 1 && h[0] !== old,
      );
      await c.clientSees(next as NodeName);
      await c.daemons.get(old)!.waitFor((l) => l.reason === 'lease lapsed', 5000, 'the lease-lapsed line');
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
    assert.ok(
      !(await c.lab.addresses(c.host(old).ns, 'eth0')).includes(`${VIP}/24`),
      'the faulted node released the VIP',
    );
    const back = d.waitForNext(isTransition('BACKUP'), 10_000, 'BACKUP after link up');
    await c.lab.ip(c.host(old).ns, 'link', 'set', 'eth0', 'up');
    await back;
    await sleep(1000);
    assert.deepEqual(await c.holders(), next, 'equal priorities: no preemption after the link returns');
  });
});

describe('the VIP on namespaced hosts (quorum: none, keepalived-like)', { timeout: 120_000 }, () => {
  const c = useCluster({ standIns: false }, 'none');

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
  const c = useCluster({ standIns: true }, 'majority', {
    track: {
      apiserver: {
        enabled: true,
        port: 9443,
        interval: '300ms',
        timeout: '200ms',
        fall: 2,
        rise: 2,
        mode: 'weight',
        weight: 50,
      },
    },
    proxy: {
      enabled: true,
      drainTimeout: '2s',
      frontends: [{ name: 'apiserver', bind: '0.0.0.0:6443', healthCheck: { interval: '500ms', timeout: '300ms' } }],
    },
  });

  it("the master's apiserver turns unhealthy: its priority drops and the VIP moves; recovery does not pull it back", async () => {
    const old = await c.one();
    await sleep(1500);
    await c.clientResolves();
    const d = c.daemons.get(old)!;
    const dropped = d.waitForNext(
      (l) => l.reason === 'priority dropped',
      10_000,
      'the handover for a dropped priority',
    );
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

describe('graceful stop end to end, through the balancer', { timeout: 120_000 }, () => {
  const c = useCluster({ standIns: true }, 'majority', {
    proxy: {
      enabled: true,
      drainTimeout: '2s',
      frontends: [{ name: 'apiserver', bind: '0.0.0.0:6443', healthCheck: { interval: '500ms', timeout: '300ms' } }],
    },
  });

  /** A client in the client namespace: one connection to ip:6443 (tcp-client.ts), its events in order. */
  const client = (ip: string, command: string) =>
    c.lab.spawnNode(c.host('client').ns, TCP_CLIENT, [ip, '6443', '--send', command]);
  const event = (proc: NsProcess, name: string, what: string, timeoutMs: number) =>
    proc.event((e) => e.event === name, what, timeoutMs).then((e) => ({ at: e.at as number }));

  it('SIGTERM of the master: the VIP goes to the successor, its connections close at once (to reconnect there), exit 0', async () => {
    const old = await c.one();
    await sleep(1500);
    const long = client(VIP, 'ECHO');
    await event(long, 'open', 'the long connection to open', 5000);
    const d = c.daemons.get(old)!;
    const t0 = Date.now();
    d.signal('SIGTERM');
    const [next] = await c.until('the successor to hold the VIP', (h) => h.length === 1 && h[0] !== old);
    // New connections go to the successor's balancer while the old one drains.
    const fresh = client(VIP, 'WHO');
    await event(fresh, 'open', 'a new connection through the VIP', 5000);
    const exit = await d.exited;
    const took = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took < 2000, `exited after ${took} ms: no drain wait for connections that came through the VIP`);
    const closed = await event(long, 'closed', 'the long connection to be closed', 5000);
    assert.ok(
      closed.at - t0 < 2000,
      `the client learned of the close ${closed.at - t0} ms after the signal, not at a keepalive timeout`,
    );
    assert.ok(next !== old);
    long.kill();
    fresh.kill();
  });

  it('SIGTERM of a backup: connections to its own address drain until drainTimeout, then exit 0', async () => {
    // Three members again, so the two that stay keep their quorum.
    for (const n of NODES) {
      if (c.daemons.get(n)?.child.exitCode !== null) await c.start(n).waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
    }
    const master = await c.one();
    const backup = NODES.find((n) => n !== master && c.daemons.get(n)?.child.exitCode === null)!;
    const conn = client(c.host(backup).ip, 'ECHO');
    await event(conn, 'open', 'the connection to the backup to open', 5000);
    const d = c.daemons.get(backup)!;
    const t0 = Date.now();
    d.signal('SIGTERM');
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    const took = Date.now() - t0;
    assert.ok(took >= 1800 && took < 8000, `exited after ${took} ms: after draining (2 s)`);
    const closed = await event(conn, 'closed', 'the drained connection to close', 5000);
    assert.ok(closed.at - t0 >= 1800, 'kept open while draining');
    assert.deepEqual(await c.holders(), [master], 'the master was not disturbed');
    conn.kill();
  });
});
