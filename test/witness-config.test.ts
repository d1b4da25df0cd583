/**
 * A witness in the config (peers[].role): what the file alone decides (not the first peer, quorum
 * auto is majority with one, warnings for a witness that cannot help), what it changes for the
 * members (default backends, the member-list digest, who gets connection lists), and the host
 * checks of a witness's own machine (no VIP interface to find there). And the CLI: `vipd witness`
 * refuses a member's entry (exit 2 naming the field).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Config, FileConfig } from '../src/config/config';
import { type HostView, hostChecks } from '../src/config/host';
import { parseConfigText } from '../src/config/load';
import { configWarnings } from '../src/config/warnings';
import { ConfigError } from '../src/errors';
import { proxySettings } from '../src/proxy/settings';
import { clusterDigest } from '../src/vrrp/membership';
import { electionSettings } from '../src/vrrp/settings';
import { CLI, tempDir } from './helpers/daemon';

const text = (peers: string, extra = '', node = 'cp1') => `
nodeName: ${node}
peers:
${peers}
vip: { address: 10.0.0.100/24, interface: eth0 }
election:
  secretFile: /not/read
${extra}`;
const TWO_AND_WITNESS = [
  '  - { name: cp1, address: 10.0.0.11 }',
  '  - { name: cp2, address: 10.0.0.12 }',
  '  - { name: w, address: 192.168.50.5, role: witness }',
].join('\n');
const parse = (t: string) => parseConfigText(t, 't.yaml', { readSecret: false, env: {} }).config;
/** As the daemon has it (the interface resolved on its host). */
const running = (c: FileConfig): Config => ({ ...c, interfaceFrom: 'vip.interface' }) as Config;

describe('a witness in the config', () => {
  it('two members and a witness: quorum auto is majority; the balancer relays to the members only', () => {
    const c = parse(text(TWO_AND_WITNESS));
    assert.equal(c.election.quorum, 'majority');
    assert.deepEqual(
      proxySettings(c).frontends[0]?.backends.map((b) => b.name),
      ['cp1', 'cp2'],
    );
    assert.deepEqual(configWarnings(c, { checkSecretFile: false }), [], 'nothing to warn about');
    const one = parse(
      text(['  - { name: cp1, address: 10.0.0.11 }', '  - { name: w, address: 10.0.0.9, role: witness }'].join('\n')),
    );
    assert.equal(one.election.quorum, 'majority', 'auto with a witness is majority even with two peers');
  });

  it('the first peer cannot be a witness (it bootstraps a new cluster alone): exit 2 naming peers[0].role', () => {
    const first = ['  - { name: w, address: 10.0.0.9, role: witness }', '  - { name: cp1, address: 10.0.0.11 }'];
    assert.throws(
      () => parse(text([...first, '  - { name: cp2, address: 10.0.0.12 }'].join('\n'))),
      (err: unknown) =>
        err instanceof ConfigError && err.problems.some((p) => p.startsWith('peers[0].role: got "witness"')),
    );
    assert.throws(
      () => parse(text(TWO_AND_WITNESS.replace('role: witness', 'role: judge'))),
      (err: unknown) =>
        err instanceof ConfigError && err.problems.some((p) => /peers\.2\.role|peers\[2\]\.role/.test(p)),
    );
  });

  it('warns when a witness cannot help: quorum none, or a single member', () => {
    const none = parse(text(TWO_AND_WITNESS, '  quorum: none'));
    assert.ok(
      configWarnings(none, { checkSecretFile: false }).some((w) =>
        w.startsWith('election.quorum: none with a witness (w)'),
      ),
    );
    const single = parse(
      text(['  - { name: cp1, address: 10.0.0.11 }', '  - { name: w, address: 10.0.0.9, role: witness }'].join('\n')),
    );
    assert.ok(
      configWarnings(single, { checkSecretFile: false }).some((w) => w.startsWith('peers: one member and a witness')),
    );
  });

  it("the member-list digest covers the roles, and is vipd 0.2's when nobody is a witness", () => {
    const shape = { clusterId: 1, intervalMs: 100, deadAfter: 3, maxDeadAfter: 30 };
    const plain = [
      { name: 'cp1', address: '10.0.0.11' },
      { name: 'cp2', address: '10.0.0.12' },
      { name: 'w', address: '10.0.0.9' },
    ];
    const marked = plain.map((m) => (m.name === 'w' ? { ...m, witness: true } : m));
    assert.notEqual(clusterDigest({ ...shape, members: marked }), clusterDigest({ ...shape, members: plain }));
    const c = parse(text(TWO_AND_WITNESS));
    const s = electionSettings(running(c), { formed: true, observer: false });
    assert.deepEqual(
      s.members.map((m) => [m.name, m.witness === true]),
      [
        ['cp1', false],
        ['cp2', false],
        ['w', true],
      ],
    );
    assert.equal(s.observer, false, 'a member is no observer');
    const onWitness = electionSettings(running(parse(text(TWO_AND_WITNESS, '', 'w'))), {
      formed: false,
      observer: false,
    });
    assert.equal(onWitness.observer, true, 'the witness runs as an observer');
  });

  it("a witness's host: its own address and the state directory, no VIP interface to find", () => {
    const witnessHost: HostView = {
      interfaces: [
        { name: 'ens3', loopback: false, addresses: [{ address: '192.168.50.5', prefixLength: 24 }] },
        { name: 'lo', loopback: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
      ],
      stateDirError: () => undefined,
    };
    const c = parse(text(TWO_AND_WITNESS, '', 'w'));
    assert.deepEqual(hostChecks(c, witnessHost).problems, [], 'eth0 and the VIP subnet are not asked for');
    const elsewhere: HostView = {
      ...witnessHost,
      interfaces: [{ name: 'ens3', loopback: false, addresses: [{ address: '192.168.50.6', prefixLength: 24 }] }],
    };
    assert.match(
      hostChecks(c, elsewhere).problems[0] ?? '',
      /^peers\[2\]\.address: got "192\.168\.50\.5" for this node \(w, a witness/,
    );
  });

  it('vipd witness on a member refuses (exit 2 naming its role); check --offline accepts the file', () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'vipd.yaml');
      writeFileSync(file, text(TWO_AND_WITNESS).replace('/not/read', tmp.secretFile));
      const r = spawnSync(process.execPath, [CLI, 'witness', '--config', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /peers\[0\]\.role: this node \(cp1\) is a member, not a witness/);
      const ok = spawnSync(process.execPath, [CLI, 'check', '--offline', '--config', file], { encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /role: witness/);
    } finally {
      tmp.cleanup();
    }
  });
});
