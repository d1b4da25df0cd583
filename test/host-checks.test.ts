/**
 * The host-side checks (src/config/host.ts): each against an interface table the test gives, the
 * loader resolving vip.interface from it, and the real CLI running them in `vipd check` and
 * `vipd run` alike, and skipping them with `vipd check --offline`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type HostView, hostChecks, readHost } from '../src/config/host';
import { loadConfigFile, parseConfigText, resolveOnHost } from '../src/config/load';
import { probeStateDir } from '../src/config/state-dir';
import { ConfigError } from '../src/errors';
import { generateCert } from '../src/lab/stand-in-apiserver';
import { CLI, tempDir } from './helpers/daemon';

const config = (extra = '', vip = '{ address: 10.0.0.100/24, interface: eth0 }') => `
nodeName: cp1
peers:
  - { name: cp1, address: 10.0.0.11 }
  - { name: cp2, address: 10.0.0.12 }
  - { name: cp3, address: 10.0.0.13 }
vip: ${vip}
election:
  secretFile: /not/read
${extra}`;

/** cp1's host: eth0 carries its address, eth1 is down (no address visible), lo is loopback. */
const HOST: HostView = {
  interfaces: [
    { name: 'eth0', loopback: false, addresses: [{ address: '10.0.0.11', prefixLength: 24 }] },
    { name: 'eth1', loopback: false, addresses: undefined },
    { name: 'lo', loopback: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  ],
  stateDirError: () => undefined,
};

const withAddress = (address: string, prefixLength = 24): HostView => ({
  ...HOST,
  interfaces: HOST.interfaces.map((i) => (i.name === 'eth0' ? { ...i, addresses: [{ address, prefixLength }] } : i)),
});

function findings(text: string, host: HostView = HOST) {
  return hostChecks(parseConfigText(text, 't.yaml', { readSecret: false, env: {} }).config, host);
}

const field = (lines: readonly string[], name: string) => lines.find((l) => l.startsWith(`${name}: `));

describe('host checks against an injected interface table', () => {
  it('a node whose interface and address are there: nothing to say', () => {
    assert.deepEqual(findings(config()), { interface: 'eth0', problems: [], warnings: [] });
  });

  it('vip.interface that does not exist is an error listing the interfaces there are', () => {
    const f = findings(config('', '{ address: 10.0.0.100/24, interface: eth9 }'));
    assert.match(
      field(f.problems, 'vip.interface') ?? '',
      /got "eth9", which is not an interface of this host \(it has: eth0, eth1, lo\)/,
    );
  });

  it("this node's peer address not on this host is an error naming peers[i].address", () => {
    const f = findings(config(), withAddress('10.0.0.21'));
    assert.match(
      field(f.problems, 'peers[0].address') ?? '',
      new RegExp(
        'got "10\\.0\\.0\\.11" for this node \\(cp1; the election binds it\\), which is not an address ' +
          'of this host \\(its addresses: 10\\.0\\.0\\.21 on eth0, 127\\.0\\.0\\.1 on lo; eth1 shows none',
      ),
    );
  });

  it('on a VIP interface that is down (no address visible), the address is a warning: cannot confirm', () => {
    const f = findings(config('', '{ address: 10.0.0.100/24, interface: eth1 }'), withAddress('10.0.0.21'));
    assert.deepEqual(f.problems, []);
    assert.match(field(f.warnings, 'peers[0].address') ?? '', /cannot confirm .* eth1 is down/);
  });

  it("vip.interface unset: the interface that carries this node's address; none carrying it is an error", () => {
    const unset = config('', '{ address: 10.0.0.100/24 }');
    assert.deepEqual(findings(unset), { interface: 'eth0', problems: [], warnings: [] });
    const nowhere = findings(unset, withAddress('10.0.0.21'));
    assert.equal(nowhere.interface, undefined);
    assert.match(
      field(nowhere.problems, 'vip.interface') ?? '',
      /not set, and no interface of this host carries this node's address "10\.0\.0\.11" \(peers\[0\]\.address, cp1\)/,
    );
    // A loopback interface owns its whole subnet: 127.0.0.11 is on lo although lo shows 127.0.0.1.
    const loopback = unset.replace(/10\.0\.0\.1(\d)\b/g, '127.0.0.1$1');
    assert.equal(findings(loopback).interface, 'lo');
  });

  it("a frontend or health.listen on a specific address must be one of this host's", () => {
    const bind = (frontend: string, listen = '127.0.0.1:7581') =>
      findings(
        config(
          `proxy:\n  frontends:\n    - { name: api, bind: "${frontend}" }\n` + `health: { listen: "${listen}" }\n`,
        ),
      );
    assert.deepEqual(bind('10.0.0.11:6443').problems, [], "this node's own address");
    assert.deepEqual(bind('127.0.0.5:6443').problems, [], 'loopback');
    const foreign = bind('10.0.0.12:6443', '10.0.0.99:7581');
    const notHere = /which is not an address of this host/;
    assert.match(field(foreign.problems, 'proxy.frontends[0].bind') ?? '', /got "10\.0\.0\.12:6443"/);
    assert.match(field(foreign.problems, 'proxy.frontends[0].bind') ?? '', notHere);
    assert.match(field(foreign.problems, 'health.listen') ?? '', /got "10\.0\.0\.99:7581"/);
    assert.match(field(foreign.problems, 'health.listen') ?? '', notHere);
    const disabled = findings(
      config('proxy:\n  enabled: false\n  frontends:\n    - { name: api, bind: "10.0.0.12:6443" }\n'),
    );
    assert.deepEqual(disabled.problems, [], 'a disabled balancer binds nothing');
  });

  it("a VIP outside the interface's subnets is a warning; inside, or on a loopback interface, nothing", () => {
    const outside = findings(config('', '{ address: 10.1.0.100/24, interface: eth0 }'));
    assert.deepEqual(outside.problems, []);
    assert.match(
      field(outside.warnings, 'vip.address') ?? '',
      /"10\.1\.0\.100\/24" is outside the subnets of eth0 \(10\.0\.0\.11\/24\): .* not by ARP/,
    );
    assert.deepEqual(findings(config(), withAddress('10.0.0.11', 16)).warnings, [], 'a /24 VIP inside a /16');
    const onLo = config('', '{ address: 10.1.0.100/24, interface: lo }').replace(/10\.0\.0\.1(\d)\b/g, '127.0.0.1$1');
    assert.deepEqual(findings(onLo).warnings, []);
  });

  it('CA files: missing, or without a certificate when the checks verify, are errors naming caFile', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const ca = (caFile: string, verify = true) =>
        findings(
          config(
            `proxy:\n  frontends:\n    - name: api\n` +
              `      bind: "0.0.0.0:6443"\n      healthCheck: { tls: { verify: ${verify}, caFile: ${caFile} } }\n`,
          ),
        );
      const name = 'proxy.frontends[0].healthCheck.tls.caFile';
      assert.match(field(ca(join(dir, 'none.crt')).problems, name) ?? '', /cannot read ".*none\.crt": ENOENT/);
      writeFileSync(join(dir, 'der.crt'), Buffer.from([0x30, 0x82, 0x01, 0x0a]));
      assert.match(field(ca(join(dir, 'der.crt')).problems, name) ?? '', /holds no PEM certificate/);
      assert.deepEqual(ca(join(dir, 'der.crt'), false).problems, [], 'not verified: not used (a warning says so)');
      writeFileSync(join(dir, 'ca.crt'), (await generateCert(['127.0.0.1'])).cert);
      assert.deepEqual(ca(join(dir, 'ca.crt')).problems, []);
    } finally {
      cleanup();
    }
  });

  it('election.stateDir that cannot be created and written is an error naming it, with the reason', () => {
    const asked: string[] = [];
    const notADir = Object.assign(new Error('x'), { code: 'ENOTDIR' });
    const f = findings(config('  stateDir: /etc/vipd.yaml/state\n'), {
      ...HOST,
      stateDirError: (dir) => {
        asked.push(dir);
        return notADir;
      },
    });
    assert.deepEqual(asked, ['/etc/vipd.yaml/state']);
    assert.deepEqual(f.problems, [
      'election.stateDir: "/etc/vipd.yaml/state" is not a writable directory (ENOTDIR): vipd records there ' +
        'that the cluster has formed (in the static pod, a hostPath volume)',
    ]);
  });

  it('probeStateDir: what the daemon would meet creating the directory, leaving nothing behind', () => {
    const { dir, cleanup } = tempDir();
    try {
      const code = (path: string) => (probeStateDir(path) as NodeJS.ErrnoException | undefined)?.code;
      const file = join(dir, 'x.yaml');
      writeFileSync(file, '');
      assert.equal(code(join(file, 'sub')), 'ENOTDIR', 'under a regular file');
      assert.equal(code(file), 'ENOTDIR', 'a regular file');
      // procfs refuses new entries with ENOENT (Node's recursive mkdir would retry for ever).
      assert.equal(code('/proc/vipd-test/state'), 'ENOENT', 'where nothing can be created');
      const fresh = join(dir, 'a', 'b', 'state');
      assert.equal(probeStateDir(fresh), undefined);
      assert.ok(!existsSync(join(dir, 'a')), 'the directories it made are gone again');
      mkdirSync(fresh, { recursive: true });
      assert.equal(probeStateDir(fresh), undefined, 'an existing writable directory');
      assert.ok(existsSync(fresh), 'and it stays');
    } finally {
      cleanup();
    }
  });

  it('the loader: vip.interface filled in from the host, host problems and the secret reported at once', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = join(dir, 'v.yaml');
      writeFileSync(file, config('', '{ address: 10.0.0.100/24 }').replace('/not/read', secretFile));
      const { config: resolved, secret } = loadConfigFile(file, { host: HOST, env: {} });
      assert.deepEqual([resolved.vip.interface, resolved.interfaceFrom], ['eth0', 'peer address']);
      assert.equal(secret.length, 28);
      const file2 = parseConfigText(
        config('', '{ address: 10.0.0.100/24, interface: eth9 }').replace('/not/read', join(dir, 'missing')),
        't',
        { readSecret: false, env: {} },
      ).config;
      assert.throws(
        () => resolveOnHost(file2, withAddress('10.0.0.21')),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.deepEqual(
            e.problems.map((p) => p.split(':')[0]),
            ['vip.interface', 'peers[0].address', 'election.secretFile'],
          );
          return true;
        },
      );
    } finally {
      cleanup();
    }
  });

  it("readHost: this machine's table, lo as loopback with 127.0.0.1/8 and (IPv6 on) ::1/128", () => {
    const lo = readHost().interfaces.find((i) => i.name === 'lo');
    const ipv6 = networkInterfaces().lo?.some((e) => e.family === 'IPv6') === true;
    assert.deepEqual(lo, {
      name: 'lo',
      loopback: true,
      addresses: [{ address: '127.0.0.1', prefixLength: 8 }, ...(ipv6 ? [{ address: '::1', prefixLength: 128 }] : [])],
    });
  });
});

describe('host checks: IPv6 peers and VIPs', () => {
  const v6 = (vip: string) => `
nodeName: cp1
peers:
  - { name: cp1, address: "fd00:10::11" }
  - { name: cp2, address: "fd00:10::12" }
  - { name: cp3, address: "fd00:10::13" }
vip: ${vip}
election:
  secretFile: /not/read
`;
  const host: HostView = {
    interfaces: [
      {
        name: 'ens3',
        loopback: false,
        addresses: [
          { address: '10.0.0.11', prefixLength: 24 },
          { address: 'fd00:10::11', prefixLength: 64 },
        ],
      },
      { name: 'lo', loopback: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
    ],
    stateDirError: () => undefined,
  };

  it('the interface comes from the IPv6 peer address; an IPv6 VIP in its /64 and a dual-stack pair pass', () => {
    assert.deepEqual(findings(v6('{ address: "fd00:10::100/64" }'), host), {
      interface: 'ens3',
      problems: [],
      warnings: [],
    });
    assert.deepEqual(findings(v6('{ addresses: [10.0.0.100/24, "fd00:10::100/64"] }'), host).warnings, []);
  });

  it('a VIP outside the subnets of its family is a warning naming Neighbor Discovery and that family only', () => {
    const f = findings(v6('{ addresses: [10.0.0.100/24, "fd00:99::100/64"] }'), host);
    assert.deepEqual(f.problems, []);
    assert.equal(f.warnings.length, 1, f.warnings.join('\n'));
    assert.match(
      f.warnings[0] ?? '',
      /^vip\.addresses\[1\]: "fd00:99::100\/64" is outside the subnets of ens3 \(fd00:10::11\/64\).*not by Neighbor Discovery/,
    );
  });

  it('an IPv6 peer address on no interface is an error listing the IPv6 addresses there are', () => {
    const elsewhere: HostView = {
      ...host,
      interfaces: host.interfaces.map((i) =>
        i.name === 'ens3' ? { ...i, addresses: [{ address: 'fd00:10::99', prefixLength: 64 }] } : i,
      ),
    };
    const f = findings(v6('{ address: "fd00:10::100/64" }'), elsewhere);
    assert.match(field(f.problems, 'vip.interface') ?? '', /"fd00:10::11".*its addresses: fd00:10::99 on ens3/);
  });
});

describe('vipd check and vipd run run the host checks; vipd check --offline skips them', () => {
  const local = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((e) => e?.address),
  );
  const foreign = ['203.0.113.11', '203.0.113.12', '203.0.113.13'];
  const noSuchInterface = 'nosuch0';

  const elsewhere = (dir: string, secretFile: string, extra = '') => {
    const file = join(dir, 'elsewhere.yaml');
    writeFileSync(
      file,
      `nodeName: cp1
peers:
${foreign.map((a, i) => `  - { name: cp${i + 1}, address: ${a} }`).join('\n')}
vip: { address: 203.0.113.100/24, interface: ${noSuchInterface} }
election:
  secretFile: ${secretFile}
${extra}`,
    );
    return file;
  };

  it('vipd check names every host-side problem at once (exit 2); --offline checks the file alone (exit 0)', () => {
    assert.ok(
      foreign.every((a) => !local.has(a)),
      'precondition: a TEST-NET-3 address is local here',
    );
    assert.ok(!readHost().interfaces.some((i) => i.name === noSuchInterface), 'precondition: nosuch0 exists here');
    const { dir, cleanup } = tempDir();
    try {
      const file = elsewhere(
        dir,
        join(dir, 'no-secret'),
        'proxy:\n  frontends:\n    - name: api\n' +
          '      bind: "0.0.0.0:6443"\n' +
          `      healthCheck: { tls: { verify: true, caFile: ${join(dir, 'no-ca.crt')} } }\n`,
      );
      const online = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(online.status, 2, online.stderr);
      const names = [
        'vip.interface',
        'peers[0].address',
        'proxy.frontends[0].healthCheck.tls.caFile',
        'election.secretFile',
      ];
      for (const name of names) {
        assert.ok(online.stderr.includes(`  - ${name}: `), `${name} in:\n${online.stderr}`);
      }
      const offline = spawnSync(process.execPath, [CLI, 'check', '--offline', '--config', file], { encoding: 'utf8' });
      assert.equal(offline.status, 0, offline.stderr);
      assert.match(offline.stdout, /^# .*: valid \(offline: host, secret and CA files not checked\); this node is cp1/);
      assert.match(offline.stdout, /interface: nosuch0/);
    } finally {
      cleanup();
    }
  });

  it('vipd run refuses the same file before it starts anything (exit 2 naming the field)', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = elsewhere(dir, secretFile, 'proxy: { enabled: false }\ntrack: { apiserver: { enabled: false } }\n');
      const r = spawnSync(process.execPath, [CLI, 'run', '--dry-run', '--config', file], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /- vip\.interface: got "nosuch0", which is not an interface of this host/);
      assert.match(r.stderr, /- peers\[0\]\.address: got "203\.0\.113\.11" for this node/);
    } finally {
      cleanup();
    }
  });

  it('an election.stateDir vipd run cannot create: vipd check and run refuse it alike (exit 2), --offline not', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const notADir = join(dir, 'x.yaml');
      writeFileSync(notADir, '');
      for (const stateDir of [join(notADir, 'sub'), '/proc/vipd-test/state']) {
        const file = join(dir, 'state.yaml');
        writeFileSync(
          file,
          `nodeName: cp1
peers:
  - { name: cp1, address: 127.0.0.11 }
  - { name: cp2, address: 127.0.0.12 }
vip: { address: 10.0.0.100/24, interface: lo }
election: { secretFile: ${secretFile}, stateDir: ${stateDir} }
proxy: { enabled: false }
track: { apiserver: { enabled: false } }
`,
        );
        const line = `  - election.stateDir: "${stateDir}" is not a writable directory (`;
        const check = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
        assert.equal(check.status, 2, `${check.stdout}${check.stderr}`);
        assert.ok(check.stderr.includes(line), check.stderr);
        const run = spawnSync(process.execPath, [CLI, 'run', '--dry-run', '--config', file], {
          encoding: 'utf8',
          timeout: 20_000,
        });
        assert.equal(run.status, 2, `${run.stdout}${run.stderr}`);
        assert.ok(run.stderr.includes(line), run.stderr);
        const offline = spawnSync(process.execPath, [CLI, 'check', '--offline', '--config', file], {
          encoding: 'utf8',
        });
        assert.equal(offline.status, 0, offline.stderr);
      }
    } finally {
      cleanup();
    }
  });

  it("vipd check takes vip.interface from this node's address when the file leaves it out", () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = join(dir, 'lo.yaml');
      writeFileSync(
        file,
        `peers:
  - { name: cp1, address: 127.0.0.11 }
  - { name: cp2, address: 127.0.0.12 }
vip: { address: 10.0.0.100/24 }
election:
  secretFile: ${secretFile}
`,
      );
      const r = spawnSync(process.execPath, [CLI, 'check', '--hostname', 'cp2', '--config', file], {
        encoding: 'utf8',
        env: { ...process.env, VIPD_NODE_NAME: '' },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /this node is cp2 \(127\.0\.0\.12, .*\); vip\.interface: lo \(it carries 127\.0\.0\.12\)/);
      assert.match(r.stdout, /^ {2}interface: lo$/m);
      const offline = spawnSync(process.execPath, [CLI, 'check', '--offline', '--hostname', 'cp2', '--config', file], {
        encoding: 'utf8',
        env: { ...process.env, VIPD_NODE_NAME: '' },
      });
      assert.equal(offline.status, 0, offline.stderr);
      assert.match(offline.stdout, /vip\.interface: not set: on the node, the interface that carries 127\.0\.0\.12/);
    } finally {
      cleanup();
    }
  });
});
