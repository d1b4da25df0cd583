/**
 * Three real `vipd run` daemons on loopback addresses 127.0.0.11-13 elect exactly one master;
 * SIGKILL it and another takes over; SIGTERM it and the named successor takes over without waiting
 * a dead interval; a member restarted with `--dry-run` is an observer that is never elected, next
 * to a port already taken. Timings are printed for the record; asserted bounds are generous.
 *
 * The daemons really add and remove the VIP, so the suite runs in a network namespace of its own:
 * run from the outside, this file creates the namespace (loopback up, one veth interface per
 * daemon for its copy of the VIP), runs itself in it, and removes it, also on failure.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { clusterDigest, wireOrder } from '../src/vrrp/membership';
import { encodeHeartbeat } from '../src/vrrp/wire';
import { CLI, DaemonProcess, isTransition, tempDir } from './helpers/daemon';
import { sampleHeartbeat } from './helpers/heartbeat';

const INSIDE = process.env.VIPD_LOOPBACK_NS;
const PORT = 17580 + (process.pid % 1000);
const names = ['lb1', 'lb2', 'lb3'];
const address = (i: number) => `127.0.0.${11 + i}`;
const healthPort = (node: string) => PORT + 1 + names.indexOf(node);
const get = async (node: string, path: string) => {
  const res = await fetch(`http://127.0.0.1:${healthPort(node)}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
};
const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

const dummy = (node: string) => `vip-${node}`;

function writeConfig(
  dir: string,
  secretFile: string,
  node: string,
  election: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
): string {
  const file = join(dir, `${node}.yaml`);
  writeFileSync(
    file,
    stringify({
      nodeName: node,
      peers: names.map((name, i) => ({ name, address: address(i) })),
      vip: { address: '10.99.0.100/24', interface: dummy(node), garp: { refresh: '0s' } },
      election: {
        port: PORT,
        interval: '100ms',
        deadAfter: 3,
        secretFile,
        stateDir: join(dir, `state-${node}`),
        ...election,
      },
      proxy: { enabled: false },
      track: { apiserver: { enabled: false } },
      health: { listen: `127.0.0.1:${healthPort(node)}` },
      ...top,
    }),
  );
  return file;
}

if (INSIDE === undefined) {
  describe('three daemons on loopback, in a namespace of their own', () => {
    it('the suite, run inside the namespace', () => {
      const ns = `vipd-lo-${process.pid}`;
      const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      ip('netns', 'add', ns);
      try {
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        for (const n of names) {
          // A veth pair (this kernel may lack the dummy driver): the daemon's end carries its VIP.
          ip('-n', ns, 'link', 'add', dummy(n), 'type', 'veth', 'peer', 'name', `${dummy(n)}-p`);
          ip('-n', ns, 'link', 'set', `${dummy(n)}-p`, 'up');
          ip('-n', ns, 'link', 'set', dummy(n), 'up');
        }
        const r = spawnSync(
          'ip',
          ['netns', 'exec', ns, process.execPath, '--test', '--test-reporter=spec', __filename],
          {
            // Without the outer runner's NODE_TEST_CONTEXT: the inner run reports as a runner of its own.
            env: { ...process.env, NODE_TEST_CONTEXT: undefined, VIPD_LOOPBACK_NS: ns },
            encoding: 'utf8',
            timeout: 240_000,
          },
        );
        process.stdout.write(
          r.stdout
            .split('\n')
            .map((l) => `    ${l}`)
            .join('\n'),
        );
        assert.equal(r.status, 0, `the suite inside ${ns} failed:\n${r.stderr}`);
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
      }
    });
  });
} else
  describe('three daemons on loopback', () => {
    const tmp = tempDir();
    const daemons = new Map<string, DaemonProcess>();
    /** Every process started, a restarted node's earlier one too: after() kills them all. */
    const started: DaemonProcess[] = [];
    const start = (node: string, args: readonly string[] = [], config = writeConfig(tmp.dir, tmp.secretFile, node)) => {
      const d = new DaemonProcess(node, ['run', ...args, '--config', config]);
      daemons.set(node, d);
      started.push(d);
      return d;
    };
    /** Who has the VIP, read from the kernel: the dummy interfaces that carry it. */
    const holders = () =>
      names.filter((n) =>
        execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', dummy(n)], { encoding: 'utf8' }).includes(
          '10.99.0.100/24',
        ),
      );
    const masters = () =>
      [...daemons.values()].filter(
        (d) => d.child.exitCode === null && d.child.signalCode === null && d.role() === 'MASTER',
      );

    before(() => {
      for (const n of names) start(n);
    });
    after(async () => {
      await Promise.all(started.map((d) => d.kill()));
      tmp.cleanup();
    });

    it('elect exactly one master', async () => {
      await Promise.any([...daemons.values()].map((d) => d.waitFor(isTransition('MASTER'), 10_000, 'MASTER')));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(masters().length, 1, `masters: ${masters().map((d) => d.name)}`);
      assert.equal(masters()[0]!.name, 'lb3', 'equal priorities: the highest address');
      assert.deepEqual(holders(), ['lb3'], 'the VIP is on its interface, and only there');
    });

    it('the health endpoint: /healthz, /readyz, /metrics and /status on every daemon', async () => {
      const master = masters()[0]!.name;
      for (const n of names) {
        assert.equal((await get(n, '/healthz')).status, 200, n);
        const ready = await get(n, '/readyz');
        assert.equal(ready.status, 200, `${n}: ${ready.text}`);
        const m = (await get(n, '/metrics')).text;
        assert.equal(metric(m, 'vipd_master'), n === master ? 1 : 0, `${n} vipd_master`);
        assert.equal(metric(m, 'vipd_peers_alive'), 2, `${n} vipd_peers_alive`);
        assert.equal(metric(m, 'vipd_quorum'), 1);
        assert.ok((metric(m, 'vipd_heartbeats_received_total') ?? 0) > 0);
        assert.match(m, /vipd_election_state\{state="(MASTER|BACKUP)"\} 1/);
        const types = m.split('\n').filter((l) => l.startsWith('# TYPE '));
        assert.equal(new Set(types).size, types.length, `${n}: a metric family exposed twice`);
        const status = JSON.parse((await get(n, '/status')).text) as {
          node: string;
          master: string;
          peers: { name: string; alive: boolean }[];
          vip: { held: boolean };
        };
        assert.equal(status.node, n);
        assert.equal(status.master, master);
        assert.equal(status.vip.held, n === master);
        assert.deepEqual(
          status.peers.map((p) => [p.name, p.alive]),
          names.filter((x) => x !== n).map((x) => [x, true]),
        );
      }
      assert.equal((await get('lb1', '/nope')).status, 404);
      const cli = spawnSync(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${healthPort(master)}`], {
        encoding: 'utf8',
      });
      assert.equal(cli.status, 0, cli.stderr);
      assert.match(cli.stdout, new RegExp(`node ${master} .*state MASTER`));
      assert.match(cli.stdout, /lb1 +127\.0\.0\.11 +yes/);
      const down = spawnSync(process.execPath, [CLI, 'status', '--url', 'http://127.0.0.1:1'], { encoding: 'utf8' });
      assert.notEqual(down.status, 0);
      assert.match(down.stderr, /cannot reach/);
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
      // The survivors say whom they miss (a firewall dropping UDP is the likeliest install mistake).
      const missing = await others[0]!.waitForNext(
        (l) =>
          typeof l.msg === 'string' &&
          l.msg.startsWith('not hearing from') &&
          Array.isArray(l.peers) &&
          (l.peers as { name: string }[]).some((p) => p.name === master.name),
        10_000,
        'a "not hearing from" warning',
      );
      assert.equal(missing.level, 'warn');
      assert.match(String(missing.msg), new RegExp(`${master.name} \\(127\\.0\\.0\\.\\d+, silent for \\d+ s\\)`));
    });

    it('the killed daemon restarts and joins as BACKUP without taking the VIP back', async () => {
      const d = start('lb3', ['--log-level', 'trace']);
      await d.waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(masters().length, 1);
      assert.notEqual(masters()[0]!.name, 'lb3');
      // Restarted with --log-level trace: every heartbeat in and out is a line; at info, none is.
      const traced = (x: DaemonProcess, msg: string) => x.lines.filter((l) => l.msg === msg).length;
      assert.ok(traced(d, 'heartbeat sent') >= 5, `${traced(d, 'heartbeat sent')} "heartbeat sent" lines`);
      assert.ok(traced(d, 'heartbeat received') >= 5, `${traced(d, 'heartbeat received')} "heartbeat received" lines`);
      const other = daemons.get('lb1')!;
      assert.equal(traced(other, 'heartbeat sent') + traced(other, 'heartbeat received'), 0, 'none at info');
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
      const successor = others.find((d) => d.lines.includes(line))!;
      assert.equal(resign.master, successor.name, 'the successor named in the resign took over');
      assert.ok(
        successor.lines.some((l) => l.to === 'CANDIDATE' && l.reason === 'handover'),
        'it claimed as the named successor',
      );
      assert.ok(took < 300, `handover took ${took.toFixed(0)} ms: it must not wait a dead interval (300 ms)`);
      assert.deepEqual(await master.exited, { code: 0, signal: null });
    });

    it('garbage, forged, truncated and replayed packets are dropped and counted, never a crash', async () => {
      const target = masters()[0]!;
      const idx = names.indexOf(target.name);
      const peerIdx = (idx + 1) % names.length;
      // From a peer's address (another port): past the source check, so the HMAC and layout are tested.
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, address(peerIdx), r));
      const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, PORT, address(idx), () => r()));
      const members = names.map((name, i) => ({ name, address: address(i) }));
      const forgedBeat = (sender: string) =>
        sampleHeartbeat({
          sender,
          epoch: Date.now(),
          role: 'MASTER',
          priority: 254,
          term: 99,
          leader: sender,
          leaderTerm: 99,
          vote: sender,
          digest: clusterDigest({ clusterId: 1, members, intervalMs: 100, deadAfter: 3, maxDeadAfter: 30 }),
        });
      try {
        const forged = encodeHeartbeat(
          forgedBeat(names[peerIdx]!),
          Buffer.from('not-the-right-secret-at-all'),
          wireOrder(members),
        );
        for (let i = 0; i < 200; i += 1) {
          await send(Buffer.from(Array.from({ length: i % 120 }, () => Math.floor(Math.random() * 256))));
          await send(forged.subarray(0, i % forged.length));
        }
        await send(forged);
        // A correctly signed message naming a member whose address it does not come from: unknown sender.
        const secret = Buffer.from('test-secret-0123456789abcdef');
        const other = names.find((_n, i) => i !== idx && i !== peerIdx)!;
        await send(encodeHeartbeat(forgedBeat(other), secret, wireOrder(members)));
        await target.waitFor((l) => l.reason === 'bad_mac', 5000, 'a bad_mac drop line');
        await target.waitFor((l) => l.reason === 'unknown_sender', 5000, 'an unknown_sender drop line');
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(target.child.exitCode, null, 'still running');
        assert.equal(target.role(), 'MASTER', 'still master: nothing forged moved it');
        const m = (await get(target.name, '/metrics')).text;
        assert.ok((metric(m, 'vipd_heartbeats_dropped_total{reason="bad_mac"}') ?? 0) >= 1, 'bad MACs counted');
        assert.ok((metric(m, 'vipd_heartbeats_dropped_total{reason="malformed"}') ?? 0) >= 100, 'garbage counted');
        assert.ok(
          (metric(m, 'vipd_heartbeats_dropped_total{reason="unknown_sender"}') ?? 0) >= 1,
          'wrong source counted',
        );
        const dropLines = target.lines.filter((l) => l.msg === 'dropped a heartbeat');
        assert.ok(
          dropLines.length <= 10,
          `drops are logged at a limited rate (${dropLines.length} lines for 400+ packets)`,
        );
      } finally {
        sock.close();
      }
    });

    it('reload: SIGHUP applies a new priority in place; vipd reload refuses an invalid or restart-only change', async () => {
      const backup = [...daemons.values()].find((d) => d.child.exitCode === null && d.role() === 'BACKUP')!;
      const becomes = backup.waitForNext(isTransition('MASTER'), 10_000, 'MASTER after the reload');
      writeConfig(tmp.dir, tmp.secretFile, backup.name, { priority: 200 });
      backup.signal('SIGHUP');
      await backup.waitForNext((l) => l.msg === 'config reloaded', 5000, 'the reload line');
      await becomes;
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(
        masters().map((d) => d.name),
        [backup.name],
        'the higher priority preempted',
      );

      const url = `http://127.0.0.1:${healthPort(backup.name)}`;
      writeFileSync(join(tmp.dir, `${backup.name}.yaml`), 'peers: [oops\n');
      const bad = spawnSync(process.execPath, [CLI, 'reload', '--url', url], { encoding: 'utf8' });
      assert.equal(bad.status, 2, bad.stdout + bad.stderr);
      assert.match(bad.stderr, /not valid YAML/);
      writeConfig(tmp.dir, tmp.secretFile, backup.name, { priority: 200, port: PORT + 100 });
      const fixed = spawnSync(process.execPath, [CLI, 'reload', '--url', url], { encoding: 'utf8' });
      assert.equal(fixed.status, 2);
      assert.match(fixed.stderr, /election\.port/);
      writeConfig(tmp.dir, tmp.secretFile, backup.name, { priority: 150 });
      const good = spawnSync(process.execPath, [CLI, 'reload', '--url', url], { encoding: 'utf8' });
      assert.equal(good.status, 0, good.stderr);
      assert.equal(backup.role(), 'MASTER', 'still master, and running');
      assert.equal(backup.child.exitCode, null);
    });
    it('a member restarted with --dry-run is an observer: never elected, next to a port already taken', async () => {
      const master = masters()[0]!;
      const gone = names.find(
        (n) => daemons.get(n)!.child.exitCode !== null || daemons.get(n)!.child.signalCode !== null,
      )!;
      const other = names.find((n) => n !== gone && n !== master.name)!;
      // HAProxy (here a plain listener) already holds the balancer's port: the dry run must run beside it.
      const busy = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
      const busyPort = (busy.address() as { port: number }).port;
      try {
        const observer = start(
          gone,
          ['--dry-run'],
          writeConfig(
            tmp.dir,
            tmp.secretFile,
            gone,
            // A state directory of its own, empty: what the dry run writes there is its own doing.
            { priority: 254, stateDir: join(tmp.dir, 'state-observer') },
            {
              proxy: {
                frontends: [
                  {
                    name: 'apiserver',
                    bind: `127.0.0.1:${busyPort}`,
                    backends: [{ name: 'b', address: '127.0.0.1', port: 1 }],
                  },
                ],
              },
            },
          ),
        );
        await observer.waitFor(isTransition('BACKUP'), 10_000, 'BACKUP');
        await observer.waitFor(
          (l) => typeof l.msg === 'string' && l.msg.startsWith('dry run: proxy frontend not listening'),
          10_000,
          'the dry-run frontend line',
        );
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(
          masters().map((d) => d.name),
          [master.name],
          'priority 254 does not preempt: it is an observer',
        );
        assert.equal((await get(gone, '/readyz')).status, 200, 'ready without its listener');
        const status = JSON.parse((await get(gone, '/status')).text) as { observer: boolean; formed: boolean };
        assert.equal(status.observer, true);
        assert.equal(status.formed, true);
        assert.ok(
          existsSync(join(tmp.dir, 'state-observer', 'cluster-1.formed')),
          'a dry run records that the cluster has formed, as a real run does (README.md)',
        );
        const cli = spawnSync(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${healthPort(gone)}`], {
          encoding: 'utf8',
        });
        assert.match(cli.stdout, /observer \(dry run\): never elected/);
        // The master stops: the other member takes over, not the observer, and the observer's
        // acknowledgement keeps it a majority.
        const takes = daemons.get(other)!.waitForNext(isTransition('MASTER'), 10_000, 'MASTER');
        master.signal('SIGTERM');
        await takes;
        await new Promise((r) => setTimeout(r, 1000));
        assert.deepEqual(
          masters().map((d) => d.name),
          [other],
        );
        assert.deepEqual(holders(), [other]);
        assert.ok(!observer.lines.some((l) => l.to === 'MASTER' || l.to === 'CANDIDATE'), 'the observer never claimed');
      } finally {
        busy.close();
      }
    });

    it('every log line of every daemon has each key once (a log shipper keeps only one of two)', () => {
      const all = [...daemons.values()].flatMap((d) => d.duplicateKeyLines.map((l) => `${d.name}: ${l}`));
      assert.deepEqual(all, []);
      assert.ok(
        [...daemons.values()].every((d) => d.lines.length > 5),
        'the daemons logged',
      );
    });
  });
