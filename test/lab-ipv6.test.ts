/**
 * `vipd lab --ipv6` in short: the lab's drill (runLab with `ipv6`) on the IPv6 bed, two events that
 * must move the VIP (the master's node dies, a graceful stop). The bed comes up with one holder of
 * the IPv6 VIP, read from the kernels (an `ip monitor address` per node), the client reaches
 * [fd00:77::100]:6443 through vipd's balancer on [::]:6443, and each event moves the VIP to one
 * other node. Correctness, not speed: generous bounds. The watch is left out (over IPv6 a new
 * master resets no client, so it would only wait out the drill's 15 s). Everything it creates is
 * removed, and the test checks that no namespace is left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parse } from 'yaml';
import type { DrillRecord } from '../src/lab/drill';
import { type DrillNetwork, VIP6 } from '../src/lab/drill-bed';
import { runLab, vipdManager } from '../src/lab/lab';

const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');

const leftNamespaces = (prefix: string) =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(prefix));

it('vipd lab --ipv6: one holder of the IPv6 VIP, the client reaches [VIP]:6443, a node death and a graceful stop move it', {
  timeout: 90_000,
}, async () => {
  const lines: string[] = [];
  let record: DrillRecord | undefined;
  const outcomes = await runLab({
    verbose: false,
    ipv6: true,
    events: ['crash', 'graceful'],
    watch: false,
    out: (l) => lines.push(l),
    onRecord: (r) => {
      record = r;
    },
  });
  console.log(lines.map((l) => `# ${l}`).join('\n'));
  // The timeline page the lab leaves for a person: not needed here.
  const page = lines.map((l) => /drawn: (\S+\.html)$/.exec(l)?.[1]).find((p) => p !== undefined);
  if (page !== undefined && existsSync(page)) unlinkSync(page);
  assert.ok(
    lines.some((l) => l.includes(`VIP ${VIP6}/64`)),
    'the bed is the IPv6 one',
  );
  assert.ok(
    lines.some((l) => /VIP on cp[123] \(elected\)/.test(l)),
    'one holder of the IPv6 VIP after the start',
  );
  assert.equal(outcomes.length, 2);
  const probes = record?.probes ?? [];
  for (const o of outcomes) {
    // Connects to [VIP]:6443 that succeeded, before the event and after it.
    assert.ok(
      probes.some((p) => p.ok && p.t < o.at),
      `${o.event}: the client reached the VIP before`,
    );
    assert.ok(
      probes.some((p) => p.ok && p.t > o.at + (o.vipMovedMs ?? 0)),
      `${o.event}: and after`,
    );
    assert.notEqual(o.to, o.from, `${o.event}: the VIP moved`);
    assert.match(o.to, /^cp[123]$/, `${o.event}: one other holder (${o.to})`);
    assert.ok(o.vipMovedMs !== undefined && o.vipMovedMs < 10_000, `${o.event}: moved within 10 s`);
    assert.ok(o.outageMs !== undefined && o.outageMs < 10_000, `${o.event}: the client recovered within 10 s`);
    assert.ok(o.settled, `${o.event}: a single holder again within 15 s`);
  }
  assert.deepEqual(leftNamespaces('vipd-lab-'), [], 'the lab removed its namespaces');
});

it("the lab's vipd config on an IPv6 bed: IPv6 peers, the IPv6 VIP, the balancer on [::]:6443; vipd check takes it", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-lab6-'));
  try {
    const address = (n: string) => `fd00:77::${n.slice(2)}`;
    const net: DrillNetwork = {
      family: 6,
      address,
      vip: VIP6,
      vipCidr: `${VIP6}/64`,
      host: () => {
        throw new Error('not used');
      },
    };
    vipdManager({ verbose: false }, () => undefined).prepare(net, dir);
    const file = join(dir, 'cp1.yaml');
    const config = parse(readFileSync(file, 'utf8')) as {
      peers: { name: string; address: string }[];
      vip: { address: string };
      proxy?: { frontends?: { bind: string }[] };
    };
    assert.deepEqual(
      config.peers.map((p) => p.address),
      ['fd00:77::1', 'fd00:77::2', 'fd00:77::3'],
    );
    assert.equal(config.vip.address, 'fd00:77::100/64');
    assert.equal(config.proxy?.frontends?.[0]?.bind, '[::]:6443');
    // The file alone, as vipd reads it: exit 0 (warnings aside).
    execFileSync(process.execPath, [CLI, 'check', '--offline', '--config', file], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
