/**
 * Three real `vipd run --dry-run` daemons on loopback addresses 127.0.0.11-13 elect exactly one
 * master; SIGKILL it and another takes over; SIGTERM it and the named successor takes over without
 * waiting a dead interval. Timings are printed for the record; asserted bounds are generous.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { encodeHeartbeat } from '../src/vrrp/wire';
import { DaemonProcess, isTransition, tempDir } from './helpers/daemon';

const PORT = 17580 + (process.pid % 1000);
const names = ['lb1', 'lb2', 'lb3'];
const address = (i: number) => `127.0.0.${11 + i}`;

function writeConfig(dir: string, secretFile: string, node: string): string {
  const file = join(dir, `${node}.yaml`);
  writeFileSync(file, stringify({
    nodeName: node,
    peers: names.map((name, i) => ({ name, address: address(i) })),
    vip: { address: '10.99.0.100/24', interface: 'lo' },
    election: { port: PORT, interval: '100ms', deadAfter: 3, secretFile },
    proxy: { enabled: false },
    track: { apiserver: { enabled: false } },
    health: { listen: `127.0.0.1:${PORT + 1 + names.indexOf(node)}` },
  }));
  return file;
}

describe('three daemons on loopback (dry run)', () => {
  const tmp = tempDir();
  const daemons = new Map<string, DaemonProcess>();
  const start = (node: string) => {
    const d = new DaemonProcess(node, ['run', '--dry-run', '--config', writeConfig(tmp.dir, tmp.secretFile, node)]);
    daemons.set(node, d);
    return d;
  };
  const masters = () => [...daemons.values()].filter((d) => d.child.exitCode === null && d.child.signalCode === null && d.role() === 'MASTER');

  before(() => { for (const n of names) start(n); });
  after(async () => {
    await Promise.all([...daemons.values()].map((d) => d.kill()));
    tmp.cleanup();
  });

  it('elect exactly one master', async () => {
    await Promise.any([...daemons.values()].map((d) => d.waitFor(isTransition('MASTER'), 10_000, 'MASTER')));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(masters().length, 1, `masters: ${masters().map((d) => d.name)}`);
    assert.equal(masters()[0]!.name, 'lb3', 'equal priorities: the highest address');
  });

  it('SIGKILL of the master: another takes over', async () => {
    const master = masters()[0]!;
    const others = [...daemons.values()].filter((d) => d !== master);
    const waits = others.map((d) => d.waitForNext(isTransition('MASTER'), 10_000, 'MASTER'));
    const t0 = performance.now();
    master.signal('SIGKILL');
    const line = await Promise.any(waits);
    console.log(`# SIGKILL failover on loopback (interval 100ms, deadAfter 3): ${(line.at - t0).toFixed(0)} ms`);
    await master.exited;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(masters().length, 1);
  });

  it('the killed daemon restarts and joins as BACKUP without taking the VIP back', async () => {
    const d = start('lb3');
    await d.waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(masters().length, 1);
    assert.notEqual(masters()[0]!.name, 'lb3');
  });

  it('SIGTERM of the master: the named successor takes over at once and the daemon exits 0', async () => {
    const master = masters()[0]!;
    const stopping = master.waitForNext((l) => l.reason === 'stopping', 10_000, 'the stopping line');
    const others = [...daemons.values()].filter((d) => d !== master);
    const waits = others.map((d) => d.waitForNext(isTransition('MASTER'), 10_000, 'MASTER'));
    const t0 = performance.now();
    master.signal('SIGTERM');
    const resign = await stopping;
    const line = await Promise.any(waits);
    const took = line.at - t0;
    console.log(`# SIGTERM handover on loopback: ${took.toFixed(0)} ms from the signal`);
    assert.equal(line.reason, 'handover');
    assert.equal(resign.master, others.find((d) => d.lines.includes(line))!.name, 'the successor named in the resign took over');
    assert.ok(took < 300, `handover took ${took.toFixed(0)} ms: it must not wait a dead interval (300 ms)`);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
  });

  it('garbage, forged, truncated and replayed packets are dropped and counted, never a crash', async () => {
    const target = masters()[0]!;
    const idx = names.indexOf(target.name);
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, PORT, address(idx), () => r()));
    try {
      const forged = encodeHeartbeat({
        clusterId: 1, sender: 'lb1', epoch: Date.now(), seq: 1, role: 'MASTER', priority: 254, intervalMs: 100,
        quorate: true, resigning: false, master: 'lb1', vote: 'lb1',
      }, Buffer.from('not-the-right-secret-at-all'));
      for (let i = 0; i < 200; i += 1) {
        await send(Buffer.from(Array.from({ length: i % 120 }, () => Math.floor(Math.random() * 256))));
        await send(forged.subarray(0, i % forged.length));
      }
      await send(forged);
      // A correctly signed message from an address that is not the member's: unknown sender.
      const secret = Buffer.from('test-secret-0123456789abcdef');
      await send(encodeHeartbeat({
        clusterId: 1, sender: 'lb1', epoch: Date.now(), seq: 1, role: 'MASTER', priority: 254, intervalMs: 100,
        quorate: true, resigning: false, master: 'lb1', vote: 'lb1',
      }, secret));
      await target.waitFor((l) => l.reason === 'bad_mac', 5000, 'a bad_mac drop line');
      await target.waitFor((l) => l.reason === 'unknown_sender', 5000, 'an unknown_sender drop line');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(target.child.exitCode, null, 'still running');
      assert.equal(target.role(), 'MASTER', 'still master: nothing forged moved it');
      const dropLines = target.lines.filter((l) => l.msg === 'dropped a heartbeat');
      assert.ok(dropLines.length <= 10, `drops are logged at a limited rate (${dropLines.length} lines for 400+ packets)`);
    } finally {
      sock.close();
    }
  });
});
