import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBounded } from '../src/config/bounded-read';
import { formatDuration, parseDuration } from '../src/config/duration';
import { parseConfigText } from '../src/config/load';
import { configWarnings, secretWarnings } from '../src/config/warnings';
import { ConfigError } from '../src/errors';
import { minimalConfig } from './helpers/config-text';
import { CLI, tempDir } from './helpers/daemon';

const CONFIGS = join(__dirname, '..', '..', 'configs');
const minimal = minimalConfig;

/**
 * A config whose host-side checks pass on any Linux machine: the peers on loopback addresses (lo's
 * 127.0.0.1/8 answers them all), the VIP on lo. `vipd check` without --offline accepts it.
 */
const onLoopback = (secretFile: string, extra = '', nodeName = 'nodeName: cp1') => `
${nodeName}
peers:
  - { name: cp1, address: 127.0.0.11 }
  - { name: cp2, address: 127.0.0.12 }
  - { name: cp3, address: 127.0.0.13 }
vip: { address: 10.0.0.100/24, interface: lo }
election:
  secretFile: ${secretFile}
${extra}`;

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'test.yaml', { readSecret: false });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, 2);
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

describe('durations', () => {
  it('parse units and combinations, refuse bare numbers and junk', () => {
    assert.equal(parseDuration('200ms'), 200);
    assert.equal(parseDuration('2s'), 2000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5s'), 1500);
    for (const bad of ['', '200', 'fast', '2 s', 's', '-1s', '1d']) assert.equal(parseDuration(bad), undefined, bad);
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(100), '100ms');
  });
});

describe('config', () => {
  it('every example in configs/ is valid', () => {
    const { secretFile, cleanup } = tempDir();
    try {
      for (const f of readdirSync(CONFIGS).filter((n) => n.endsWith('.yaml'))) {
        const text = readFileSync(join(CONFIGS, f), 'utf8').replace(/\/etc\/vipd\/secret/g, secretFile);
        const { config } = parseConfigText(text, f, { hostname: 'cp1' });
        assert.equal(config.nodeName, 'cp1', f);
      }
    } finally {
      cleanup();
    }
  });

  it('fills defaults: quorum majority with 3 members, one apiserver frontend on :6443', () => {
    const { config } = parseConfigText(minimal('/x'), 't', { readSecret: false });
    assert.equal(config.election.quorum, 'majority');
    assert.equal(config.election.interval, 100);
    assert.equal(config.proxy.frontends.length, 1);
    assert.deepEqual(config.proxy.frontends[0]!.bind, { host: '0.0.0.0', port: 6443 });
    assert.equal(config.proxy.frontends[0]!.healthCheck.path, '/readyz');
    assert.deepEqual(config.vipAddress, { ip: '10.0.0.100', prefixLength: 24, family: 4 });
    assert.deepEqual(config.vipAddresses, [config.vipAddress]);
    assert.deepEqual(config.self, { name: 'cp1', address: '10.0.0.11', role: 'member' });
  });

  it('the VIP lifetime and the dead-interval cap: defaults, whole seconds, maxDeadAfter >= deadAfter', () => {
    const { config } = parseConfigText(minimal('/x'), 't', { readSecret: false });
    assert.equal(config.vip.lifetime, 1000);
    assert.equal(config.election.maxDeadAfter, 30);
    const ok = parseConfigText(minimal('/x').replace('interface: eth0 }', 'interface: eth0, lifetime: 5s }'), 't', {
      readSecret: false,
    });
    assert.equal(ok.config.vip.lifetime, 5000);
    const p = problems(minimal('/x').replace('interface: eth0 }', 'interface: eth0, lifetime: 1500ms }'));
    assert.ok(
      p.some((l) => l.startsWith('vip.lifetime') && l.includes('"1500ms"') && l.includes('whole number of seconds')),
      p.join('\n'),
    );
    const q = problems(minimal('/x', '  deadAfter: 5\n  maxDeadAfter: 4\n'));
    assert.ok(
      q.some((l) => l.startsWith('election.maxDeadAfter') && l.includes('at least deadAfter (5)')),
      q.join('\n'),
    );
  });

  it('the balancer\'s hedgeDelay, finTimeout and healthCheck.observe: defaults, "auto", "0s", limits', () => {
    const frontend = (keys: string) => `proxy:\n  frontends:\n    - { name: api, bind: "0.0.0.0:6443", ${keys} }\n`;
    const defaults = parseConfigText(minimal('/x'), 't', { readSecret: false }).config.proxy.frontends[0]!;
    assert.deepEqual([defaults.hedgeDelay, defaults.finTimeout, defaults.healthCheck.observe], ['auto', 30_000, true]);
    const keys = 'hedgeDelay: 0s, finTimeout: 0s, healthCheck: { observe: false }';
    const set = parseConfigText(minimal('/x', frontend(keys)), 't', { readSecret: false }).config.proxy.frontends[0]!;
    assert.deepEqual([set.hedgeDelay, set.finTimeout, set.healthCheck.observe], [0, 0, false]);
    const fixed = parseConfigText(minimal('/x', frontend('hedgeDelay: 50ms')), 't', { readSecret: false });
    assert.equal(fixed.config.proxy.frontends[0]!.hedgeDelay, 50);
    const p = problems(minimal('/x', frontend('hedgeDelay: 5s, connectTimeout: 2s')));
    const field = (l: string) => l.startsWith('proxy.frontends[0].hedgeDelay');
    assert.ok(
      p.some((l) => field(l) && l.includes('less than connectTimeout (2s)')),
      p.join('\n'),
    );
    const q = problems(minimal('/x', frontend('hedgeDelay: soon')));
    assert.ok(
      q.some((l) => field(l) && l.includes('"auto" or a duration')),
      q.join('\n'),
    );
  });

  it('quorum auto is none with fewer than 3 members', () => {
    const text = minimal('/x').replace('  - { name: cp3, address: 10.0.0.13 }\n', '');
    assert.equal(parseConfigText(text, 't', { readSecret: false }).config.election.quorum, 'none');
  });

  it('reports each bad field with its path, the value and what is expected', () => {
    const p = problems(minimal('/x', '  interval: fast\n  priority: 300\n  quorum: most\n'));
    assert.ok(
      p.some((l) => l.startsWith('election.interval (line') && l.includes('"fast"') && l.includes('duration')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('election.priority') && l.includes('300') && l.includes('1 to 254')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('election.quorum') && l.includes('"most"') && l.includes('auto, majority, none')),
      p.join('\n'),
    );
  });

  it('unknown keys are errors, at any depth', () => {
    const p = problems(minimal('/x', '  preemt: false\nvipp: 1\n'));
    assert.ok(
      p.some((l) => l.startsWith('election.preemt') && l.includes('unknown key')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('vipp') && l.includes('unknown key')),
      p.join('\n'),
    );
  });

  it('missing required fields are named', () => {
    const p = problems('peers: []\n');
    assert.ok(
      p.some((l) => l.startsWith('vip')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('election')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('peers')),
      p.join('\n'),
    );
  });

  it('cross-field rules: nodeName among peers, unique peers, VIP not a peer address', () => {
    const p = problems(
      minimal('/x')
        .replace('nodeName: cp1', 'nodeName: cp9')
        .replace('10.0.0.13', '10.0.0.12')
        .replace('10.0.0.100/24', '10.0.0.11/24'),
    );
    assert.ok(
      p.some((l) => l.startsWith('nodeName') && l.includes('cp9')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.includes('10.0.0.12') && l.includes('twice')),
      p.join('\n'),
    );
    assert.ok(
      p.some((l) => l.startsWith('vip.address')),
      p.join('\n'),
    );
  });

  it('invalid YAML names the line', () => {
    const p = problems('peers: [\n  {name: a\nvip: :\n');
    assert.ok(
      p.some((l) => /test\.yaml:\d+:\d+: not valid YAML/.test(l)),
      p.join('\n'),
    );
  });

  it('the secret: missing or too short is an error naming election.secretFile', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      assert.throws(
        () => parseConfigText(minimal(join(dir, 'nope')), 't'),
        (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('election.secretFile'),
      );
      writeFileSync(join(dir, 'short'), 'abc\n');
      assert.throws(
        () => parseConfigText(minimal(join(dir, 'short')), 't'),
        (e: unknown) => e instanceof ConfigError && /at least 16/.test(e.message),
      );
      const { secret } = parseConfigText(minimal(secretFile), 't');
      assert.equal(secret.toString(), 'test-secret-0123456789abcdef', 'trailing newline trimmed');
    } finally {
      cleanup();
    }
  });
});

describe('vipd check', () => {
  it('exit 0 and the effective config without the secret; exit 2 and the field on error', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const good = join(dir, 'good.yaml');
      writeFileSync(good, onLoopback(secretFile));
      const ok = spawnSync(process.execPath, [CLI, 'check', '--config', good], { encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /interval: 100ms/);
      assert.ok(!ok.stdout.includes('test-secret'), 'the secret never appears');
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, minimal(secretFile, '  deadAfter: one\n'));
      const ko = spawnSync(process.execPath, [CLI, 'check', '--config', bad], { encoding: 'utf8' });
      assert.equal(ko.status, 2);
      assert.match(ko.stderr, /election\.deadAfter/);
      const usage = spawnSync(process.execPath, [CLI, 'check', '--bogus'], { encoding: 'utf8' });
      assert.equal(usage.status, 2);
      const missing = spawnSync(process.execPath, [CLI, 'check', '--config', join(dir, 'none.yaml')], {
        encoding: 'utf8',
      });
      assert.equal(missing.status, 2);
      const help = spawnSync(process.execPath, [CLI, 'run', '--help'], { encoding: 'utf8' });
      assert.equal(help.status, 0);
      assert.match(help.stdout, /--dry-run/);
      assert.match(help.stdout, /--log-format/);
      const format = spawnSync(process.execPath, [CLI, 'run', '--log-format', 'yaml', '--config', good], {
        encoding: 'utf8',
      });
      assert.equal(format.status, 2, 'an unknown log format is a usage error');
    } finally {
      cleanup();
    }
  });
});

describe('bad input never crashes and is never echoed whole', () => {
  it('a YAML alias bomb is an invalid config (exit 2), not a stack trace', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
      'f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]',
    ].join('\n');
    const found = problems(bomb);
    assert.match(found.join('\n'), /not valid YAML/);
  });

  it('a wrong value is echoed escaped and cut short', () => {
    const long = 'x'.repeat(100_000);
    const found = problems(minimal('/s', `  deadAfter: "${long}\\u0007"\n`)).join('\n');
    assert.match(found, /election\.deadAfter/);
    assert.ok(found.length < 1000, `${found.length} characters`);
    assert.match(found, /\(100\d{3} characters\)/);
    const bell = problems(minimal('/s', '  clusterId: "a\\u0007b"\n')).join('\n');
    assert.ok(!bell.includes('\u0007'), 'no raw control character');
    assert.match(bell, /a\\u0007b/);
  });

  it('a config file over 1 MiB is refused before it is read', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const big = join(dir, 'big.yaml');
      writeFileSync(big, `${minimal(secretFile)}\n# ${'y'.repeat(1024 * 1024)}\n`);
      const r = spawnSync(process.execPath, [CLI, 'check', '--config', big], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /at most 1048576 bytes/);
    } finally {
      cleanup();
    }
  });

  it('files that are not regular or do not end are refused at once, naming the file or field (exit 2)', () => {
    const { dir, secretFile, cleanup } = tempDir();
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
    try {
      // /dev/zero reports size 0 and never ends: a read by its stat size hung check and run.
      for (const command of [['check'], ['run', '--dry-run']]) {
        const r = cli(...command, '--config', '/dev/zero');
        assert.equal(r.status, 2, `${command[0]}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /- \/dev\/zero: cannot read the config file: a character device, not a regular file/);
      }
      const fifo = join(dir, 'fifo');
      assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'precondition: mkfifo');
      const fromFifo = cli('check', '--config', fifo);
      assert.equal(fromFifo.status, 2, fromFifo.stderr);
      assert.match(fromFifo.stderr, /cannot read the config file: a FIFO, not a regular file/);

      const big = join(dir, 'big-secret');
      writeFileSync(big, '');
      truncateSync(big, 80 * 1024 * 1024);
      const file = join(dir, 'v.yaml');
      const secrets: [string, RegExp][] = [
        ['/dev/zero', /a character device, not a regular file/],
        [fifo, /a FIFO, not a regular file/],
        [big, /it holds 83886080 bytes; a secret file is at most 4096 bytes/],
      ];
      for (const [secret, why] of secrets) {
        writeFileSync(file, onLoopback(secret));
        const r = cli('check', '--config', file);
        assert.equal(r.status, 2, `${secret}: ${r.stdout}${r.stderr}`);
        assert.ok(r.stderr.includes(`  - election.secretFile: cannot read "${secret}": `), r.stderr);
        assert.match(r.stderr, why);
      }

      writeFileSync(
        file,
        onLoopback(
          secretFile,
          'proxy:\n  frontends:\n    - name: api\n      bind: "0.0.0.0:6443"\n' +
            '      healthCheck: { tls: { verify: true, caFile: /dev/zero } }\n',
        ),
      );
      const ca = cli('check', '--config', file);
      assert.equal(ca.status, 2, `${ca.stdout}${ca.stderr}`);
      assert.ok(
        ca.stderr.includes(
          '  - proxy.frontends[0].healthCheck.tls.caFile: cannot read "/dev/zero": a character device, not a regular file',
        ),
        ca.stderr,
      );
    } finally {
      cleanup();
    }
  });

  it('readBounded: a regular file up to the limit, one byte over is refused, whatever its stat size says', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'f');
      writeFileSync(file, 'x'.repeat(10));
      assert.equal(readBounded(file, 10, 'a test file').bytes?.toString(), 'x'.repeat(10));
      assert.deepEqual(readBounded(file, 9, 'a test file'), {
        why: 'it holds 10 bytes; a test file is at most 9 bytes',
      });
      // procfs: a regular file whose stat size is 0 and whose content is not.
      assert.ok((readBounded('/proc/self/status', 64 * 1024, 'x').bytes?.length ?? 0) > 0);
      assert.deepEqual(readBounded('/proc/self/status', 8, 'a test file'), {
        why: 'it holds more than 8 bytes; a test file is at most 8 bytes',
      });
      assert.deepEqual(readBounded(dir, 10, 'x'), { why: 'a directory, not a regular file' });
      assert.deepEqual(readBounded(join(dir, 'none'), 10, 'x'), { why: 'ENOENT' });
    } finally {
      cleanup();
    }
  });

  it('the CLI: an unknown command (even with --help) and a URL without a scheme are usage errors', () => {
    const unknown = spawnSync(process.execPath, [CLI, 'nosuch', '--help'], { encoding: 'utf8' });
    assert.equal(unknown.status, 2, unknown.stdout);
    assert.match(unknown.stderr, /unknown command "nosuch"/);
    const scheme = spawnSync(process.execPath, [CLI, 'status', '--url', '127.0.0.1:7581'], { encoding: 'utf8' });
    assert.equal(scheme.status, 2, scheme.stderr);
    assert.match(scheme.stderr, /--url: got "127\.0\.0\.1:7581", expected http:\/\/HOST:PORT/);
  });

  it('the CLI says why it cannot reach the daemon (ECONNREFUSED, not "fetch failed")', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const refused = spawnSync(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${port}`], {
      encoding: 'utf8',
    });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/status: ECONNREFUSED`));
  });

  it('status and reload against a server that is not vipd say so (exit 1), with no stack trace', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(req.url === '/status' ? 200 : 404, { 'content-type': 'text/html' });
      res.end('<html>not vipd</html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        let stdout = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
        });
        child.once('exit', (code) => resolve({ code, stderr, stdout }));
      });
    try {
      for (const args of [
        ['status', '--url', url],
        ['reload', '--url', url],
        ['status', '--json', '--url', url],
      ]) {
        const r = await run(args);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /is not a vipd health endpoint/);
        assert.ok(!/at .*\.js:\d+/.test(r.stderr) && !r.stderr.includes('<html>'), r.stderr);
        assert.equal(r.stdout, '');
      }
    } finally {
      server.close();
    }
  });

  it('vipd status exits 3 when the node has no quorum or nobody holds the VIP, 0 when both hold', async () => {
    let body: Record<string, unknown> = {};
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', server: 'vipd/test' });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const status = (quorate: boolean, master: string): Record<string, unknown> => ({
      node: 'cp1',
      address: '10.0.0.11',
      version: 'test',
      dryRun: false,
      state: master === 'cp1' ? 'MASTER' : 'BACKUP',
      stateSince: 'now',
      priority: 100,
      basePriority: 100,
      master,
      term: 1,
      epoch: 1,
      leaseRemainingMs: null,
      following: null,
      handoverTo: null,
      learning: false,
      quorum: { mode: 'majority', alive: quorate ? 2 : 1, needed: 2, quorate },
      faults: [],
      vip: { address: '10.0.0.100/24', interface: 'eth0', held: master === 'cp1', since: null },
      peers: [],
      backends: [],
    });
    const run = () =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'status', '--url', url], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.once('exit', (code) => resolve({ code, stderr }));
      });
    try {
      body = status(true, 'cp1');
      assert.equal((await run()).code, 0);
      body = status(false, '');
      const noQuorum = await run();
      assert.equal(noQuorum.code, 3);
      assert.match(noQuorum.stderr, /no quorum/);
      body = status(true, '');
      const nobody = await run();
      assert.equal(nobody.code, 3);
      assert.match(nobody.stderr, /no member holds the VIP/);
    } finally {
      server.close();
    }
  });
});

describe('config warnings (valid, but surprising in a failure)', () => {
  const two = (quorum: string, extra = '') => `
nodeName: cp1
peers:
  - { name: cp1, address: 10.0.0.11 }
  - { name: cp2, address: 10.0.0.12 }
vip: { address: 10.0.0.100/24, interface: eth0 }
election:
  secretFile: /etc/vipd/secret
  quorum: ${quorum}
${extra}`;
  const warnings = (text: string) =>
    configWarnings(parseConfigText(text, 't.yaml', { readSecret: false }).config, { checkSecretFile: false });

  it('two peers: majority survives no failure, none (auto) allows two holders', () => {
    assert.match(warnings(two('majority')).join('\n'), /election\.quorum: majority with 2 peers survives no failure/);
    assert.match(warnings(two('auto')).join('\n'), /election\.quorum: none with 2 peers .*two\s+holders/);
    assert.deepEqual(warnings(minimal('/etc/vipd/secret')), [], 'three peers and the defaults: nothing to say');
  });

  it('a failover slower than a minute, and a relative secret path', () => {
    const slow = warnings(minimal('secret', '  interval: 10s\n  deadAfter: 10\n')).join('\n');
    assert.match(slow, /a dead master is replaced only after 100 s \(10s × 10\)/);
    assert.match(slow, /election\.secretFile: "secret" is relative/);
    // A path with control characters is echoed escaped, as every other value is.
    const odd = warnings(minimal('"se\\u001b[2Jcret"')).join('\n');
    assert.match(odd, /election\.secretFile: "se\\u001b\[2Jcret" is relative/);
    assert.ok(!odd.includes('\u001b'), 'no raw escape character reaches the terminal');
  });

  it('vipd check prints them on stderr and still exits 0; a secret readable by others is named', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      chmodSync(secretFile, 0o644);
      const file = join(dir, 'v.yaml');
      writeFileSync(file, onLoopback(secretFile));
      const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /vipd: warning: election\.secretFile: .* is readable by others \(mode 0644\)/);
      chmodSync(secretFile, 0o600);
      const quiet = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(quiet.status, 0);
      assert.equal(quiet.stderr, '');
    } finally {
      cleanup();
    }
  });
});

describe('vipd check refuses what vipd run would fail on or get wrong (exit 2 naming the field)', () => {
  const frontends = (list: string) => `proxy:\n  frontends:\n${list}`;
  const cases: { what: string; config: (secretFile: string) => string; field: string; says: RegExp }[] = [
    {
      what: 'a frontend bound to the VIP: bind 0.0.0.0 instead, and why',
      config: (s) => onLoopback(s, frontends('    - { name: api, bind: "10.0.0.100:6443" }\n')),
      field: 'proxy.frontends[0].bind',
      says: /the VIP, which is on a node only while it is master.* \(EADDRNOTAVAIL\) on every node.* bind "0\.0\.0\.0:/,
    },
    {
      what: "health.listen on a frontend's port (the frontend on the wildcard)",
      config: (s) => onLoopback(s, 'health: { listen: "127.0.0.1:6443" }\n'),
      field: 'health.listen',
      says: /the port proxy\.frontends\[0\]\.bind \("0\.0\.0\.0:6443"\) listens on/,
    },
    {
      what: 'backendPort equal to the bind port, the backends being the peers (this node too)',
      config: (s) => onLoopback(s, frontends('    - { name: api, bind: "0.0.0.0:6443", backendPort: 6443 }\n')),
      field: 'proxy.frontends[0].backendPort',
      says: /got 6443, the port proxy\.frontends\[0\] binds .* relay to itself/,
    },
    {
      what: "a listed backend that is this node's own frontend",
      config: (s) =>
        onLoopback(
          s,
          frontends(
            '    - name: api\n      bind: "0.0.0.0:6443"\n' +
              '      backends: [{ name: me, address: 127.0.0.11, port: 6443 }]\n',
          ),
        ),
      field: 'proxy.frontends[0].backends[0]',
      says: /this node's own proxy\.frontends\[0\]/,
    },
    {
      what: 'no frontend with the proxy enabled',
      config: (s) => onLoopback(s, 'proxy: { frontends: [] }\n'),
      field: 'proxy.frontends',
      says: /empty, while proxy\.enabled is true/,
    },
    {
      what: "the VIP is its subnet's network address",
      config: (s) => onLoopback(s).replace('10.0.0.100/24', '10.0.0.0/24'),
      field: 'vip.address',
      says: /the network address of its own subnet/,
    },
    {
      what: "the VIP is its subnet's broadcast address",
      config: (s) => onLoopback(s).replace('10.0.0.100/24', '10.0.0.255/24'),
      field: 'vip.address',
      says: /the broadcast address of its own subnet/,
    },
    {
      what: 'a loopback VIP',
      config: (s) => onLoopback(s).replace('10.0.0.100/24', '127.0.0.100/8'),
      field: 'vip.address',
      says: /a loopback address/,
    },
    {
      what: 'the VIP 0.0.0.0',
      config: (s) => onLoopback(s).replace('10.0.0.100/24', '0.0.0.0/24'),
      field: 'vip.address',
      says: /an unspecified address/,
    },
    {
      what: 'a peer at 0.0.0.0',
      config: (s) => onLoopback(s).replace('127.0.0.12', '0.0.0.0'),
      field: 'peers[1].address',
      says: /an unspecified address/,
    },
    {
      what: 'a peer at a multicast address',
      config: (s) => onLoopback(s).replace('127.0.0.12', '224.0.0.18'),
      field: 'peers[1].address',
      says: /a multicast address/,
    },
    {
      what: 'a peer at the broadcast address',
      config: (s) => onLoopback(s).replace('127.0.0.12', '255.255.255.255'),
      field: 'peers[1].address',
      says: /a broadcast address/,
    },
    {
      what: 'a loopback peer beside members on other addresses',
      config: (s) => minimal(s).replace('10.0.0.12', '127.0.0.12'),
      field: 'peers[1].address',
      says: /a loopback address, beside members on other addresses/,
    },
    {
      what: 'a missing CA file',
      config: (s) =>
        onLoopback(
          s,
          frontends(
            '    - name: api\n      bind: "0.0.0.0:6443"\n' +
              `      healthCheck: { tls: { verify: true, caFile: ${join(s, '..', 'no-such-ca.crt')} } }\n`,
          ),
        ),
      field: 'proxy.frontends[0].healthCheck.tls.caFile',
      says: /cannot read ".*no-such-ca\.crt": ENOENT/,
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const { dir, secretFile, cleanup } = tempDir();
      try {
        const file = join(dir, 'bad.yaml');
        writeFileSync(file, c.config(secretFile));
        const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
        assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
        const line = r.stderr.split('\n').find((l) => l.startsWith(`  - ${c.field}: `));
        assert.ok(line !== undefined, `no line naming ${c.field}:\n${r.stderr}`);
        assert.match(line, c.says);
      } finally {
        cleanup();
      }
    });
  }

  it(
    'the VIP message does not send HAProxy users to ip_nonlocal_bind; --offline reports it too; a disabled ' +
      "balancer's frontends are no listeners",
    () => {
      const { dir, cleanup } = tempDir();
      try {
        const file = join(dir, 'vip-bind.yaml');
        writeFileSync(
          file,
          minimal('/not/read/offline', 'proxy:\n  frontends:\n    - { name: api, bind: "10.0.0.100:6443" }\n'),
        );
        const r = spawnSync(process.execPath, [CLI, 'check', '--offline', '--config', file], { encoding: 'utf8' });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /proxy\.frontends\[0\]\.bind: got "10\.0\.0\.100:6443", the VIP/);
        assert.match(r.stderr, /unless net\.ipv4\.ip_nonlocal_bind is set, which vipd does not need/);
        assert.doesNotMatch(r.stderr, /(set|enable) (net\.ipv4\.)?ip_nonlocal_bind|ip_nonlocal_bind\s*=\s*1/);
        // configs/rke2.yaml: the frontends of a disabled balancer describe other nodes; nothing binds them.
        writeFileSync(
          file,
          minimal(
            '/x',
            'proxy:\n  enabled: false\n  frontends:\n' +
              '    - { name: api, bind: "10.0.0.100:6443", backendPort: 6443 }\n',
          ),
        );
        const disabled = spawnSync(process.execPath, [CLI, 'check', '--offline', '--config', file], {
          encoding: 'utf8',
        });
        assert.equal(disabled.status, 0, disabled.stderr);
      } finally {
        cleanup();
      }
    },
  );
});

describe('nodeName: the file, else VIPD_NODE_NAME, else the host name as the kubelet compares it', () => {
  const unnamed = (secretFile: string) => onLoopback(secretFile, '', '');
  const check = (file: string, args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [CLI, 'check', '--config', file, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });

  it('vipd check takes this node from VIPD_NODE_NAME (lowercased), before the host name', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = join(dir, 'v.yaml');
      writeFileSync(file, unnamed(secretFile));
      const r = check(file, ['--hostname', 'cp3'], { VIPD_NODE_NAME: 'CP2' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /this node is cp2 \(127\.0\.0\.12, name from VIPD_NODE_NAME\)/);
    } finally {
      cleanup();
    }
  });

  it('vipd check matches a fully qualified, upper-case host name by its short name', () => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = join(dir, 'v.yaml');
      writeFileSync(file, unnamed(secretFile));
      const r = check(file, ['--hostname', 'CP3.Example.COM'], { VIPD_NODE_NAME: '' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /this node is cp3 \(127\.0\.0\.13, name from the host name\)/);
    } finally {
      cleanup();
    }
  });

  it('the order: nodeName beats the variable, the variable beats the host name; full name before short', () => {
    const self = (text: string, hostname: string, env: Record<string, string>) =>
      parseConfigText(text, 't', { readSecret: false, hostname, env }).config;
    const named = self(minimal('/x'), 'cp3', { VIPD_NODE_NAME: 'cp2' });
    assert.deepEqual([named.nodeName, named.nodeNameFrom], ['cp1', 'nodeName']);
    const unset = minimal('/x').replace('nodeName: cp1', '');
    const fromEnv = self(unset, 'cp3', { VIPD_NODE_NAME: ' cp2.example.com ' });
    assert.deepEqual([fromEnv.nodeName, fromEnv.nodeNameFrom], ['cp2', 'VIPD_NODE_NAME']);
    const fromHost = self(unset, 'Cp3', {});
    assert.deepEqual([fromHost.nodeName, fromHost.nodeNameFrom], ['cp3', 'host name']);
    const fqdnPeer = unset.replace('name: cp3,', 'name: cp3.example.com,').replace('name: cp2,', 'name: cp3,');
    assert.equal(self(fqdnPeer, 'CP3.example.com', {}).nodeName, 'cp3.example.com', 'the full name first');
  });

  it('a variable naming no peer is an error naming it, not a fall back to the host name', () => {
    const unset = minimal('/x').replace('nodeName: cp1', '');
    const refused = (hostname: string, env: Record<string, string>, problem: RegExp) =>
      assert.throws(
        () => parseConfigText(unset, 't', { readSecret: false, hostname, env }),
        (e: unknown) => e instanceof ConfigError && e.problems.some((p) => problem.test(p)),
      );
    refused('cp1', { VIPD_NODE_NAME: 'cp9' }, /^nodeName: not set, and VIPD_NODE_NAME="cp9"/);
    refused('cp9.example.com', {}, /^nodeName: .*"cp9\.example\.com".*before its first dot/);
  });
});

describe('weak secrets and unused TLS settings are warnings', () => {
  const withSecret = (content: string, run: (file: string, secretFile: string) => void) => {
    const { dir, secretFile, cleanup } = tempDir();
    try {
      writeFileSync(secretFile, content);
      chmodSync(secretFile, 0o600);
      const file = join(dir, 'v.yaml');
      writeFileSync(file, onLoopback(secretFile));
      run(file, secretFile);
    } finally {
      cleanup();
    }
  };

  it('vipd check warns of a letters-only passphrase and of a short base64 secret, and still exits 0', () => {
    withSecret('correct horse battery staple\n', (file, _secretFile) => {
      const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /vipd: warning: election\.secretFile: .* holds letters only, like a word or a passphrase/);
    });
    withSecret('a1b2c3d4e5f6g7h8\n', (file) => {
      const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /election\.secretFile: .* holds 16 base64 characters: at most 12 bytes of random/);
    });
  });

  it('the counting: hex 4 bits a character, base64 6; what `head -c 32 /dev/urandom | base64` makes is fine', () => {
    const hex = secretWarnings(Buffer.from('0123456789abcdef0123'), '/s').join();
    assert.match(hex, /20 hex characters: at most 10 bytes/);
    assert.deepEqual(secretWarnings(Buffer.from('0123456789abcdef0123456789abcdef'), '/s'), []);
    assert.deepEqual(secretWarnings(Buffer.from(Buffer.alloc(32, 1).toString('base64')), '/s'), []);
    assert.deepEqual(secretWarnings(Buffer.from('test-secret-0123456789abcdef'), '/s'), []);
  });

  it('TLS: verify without caFile fails every check; a caFile without verify is unused', () => {
    const tls = (keys: string) =>
      minimal(
        '/x',
        `proxy:\n  frontends:\n    - name: api\n      bind: "0.0.0.0:6443"\n` +
          `      healthCheck: { tls: { ${keys} } }\n`,
      );
    const warned = (keys: string) =>
      configWarnings(parseConfigText(tls(keys), 't', { readSecret: false }).config, { checkSecretFile: false }).join(
        '\n',
      );
    assert.match(
      warned('verify: true'),
      /proxy\.frontends\[0\]\.healthCheck\.tls\.verify: true without caFile .* every check would fail/,
    );
    assert.match(
      warned('caFile: /etc/kubernetes/pki/ca.crt'),
      /tls\.caFile: "\/etc\/kubernetes\/pki\/ca\.crt" is not used: verify is false/,
    );
    assert.equal(warned('verify: true, caFile: /etc/kubernetes/pki/ca.crt'), '');
  });
});
