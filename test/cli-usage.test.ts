/**
 * A bad command line, through the real `vipd` process: exit 2 and one message naming the flag, the
 * value and what was expected ("invalid flag --x: ..."), in the same words for every command, and
 * never called an invalid config, which is a file to fix, not a flag.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CLI } from './helpers/daemon';

function vipd(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

const PEERS = ['--vip', '10.0.0.100/24', '--peers', 'cp1=10.0.0.11,cp2=10.0.0.12,cp3=10.0.0.13'];

describe('a bad flag is a usage error (exit 2), not an invalid config', () => {
  it('vipd manifest config --bind-port x', () => {
    const r = vipd('manifest', 'config', ...PEERS, '--bind-port', 'x');
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, 'vipd: invalid flag --bind-port: got "x", expected an integer from 1 to 65535\n');
    assert.equal(r.stdout, '');
  });

  it('vipd manifest config with flags missing and bad: every one at once', () => {
    const r = vipd('manifest', 'config', '--cluster-id', '0');
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'vipd: invalid flags:');
    const flags = lines.slice(1).map((l) => /^ {2}- (--[a-z-]+): /.exec(l)?.[1]);
    assert.deepEqual(flags, ['--vip', '--peers', '--cluster-id']);
  });

  it('vipd manifest pod --log-level loud', () => {
    const r = vipd('manifest', 'pod', '--log-level', 'loud');
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      'vipd: invalid flag --log-level: got "loud", expected one of fatal, error, warn, info, debug, trace\n',
    );
  });

  it('vipd run --log-level nope and --log-format yaml: the same words as every other bad flag', () => {
    const level = vipd('run', '--log-level', 'nope', '--config', '/nonexistent/vipd.yaml');
    assert.equal(level.status, 2, level.stderr);
    assert.equal(
      level.stderr,
      'vipd: invalid flag --log-level: got "nope", expected one of fatal, error, warn, info, debug, trace\n',
    );
    const format = vipd('run', '--log-format', 'yaml', '--config', '/nonexistent/vipd.yaml');
    assert.equal(format.status, 2, format.stderr);
    assert.equal(format.stderr, 'vipd: invalid flag --log-format: got "yaml", expected one of auto, json, text\n');
  });

  it('vipd status --url and vipd reload --url without http://', () => {
    for (const [command, url] of [
      ['status', '127.0.0.1:7581'],
      ['reload', 'ftp://127.0.0.1:7581'],
    ] as const) {
      const r = vipd(command, '--url', url);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr, `vipd: invalid flag --url: got "${url}", expected http://HOST:PORT\n`);
    }
  });

  it('an unknown command is a usage error too; a config file that cannot be read is still an invalid config', () => {
    const unknown = vipd('nosuch');
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stderr, 'vipd: unknown command "nosuch"; see vipd --help\n');
    const missing = vipd('check', '--config', '/nonexistent/vipd.yaml');
    assert.equal(missing.status, 2);
    assert.equal(
      missing.stderr,
      'vipd: invalid config:\n  - /nonexistent/vipd.yaml: cannot read the config file: ENOENT\n',
    );
  });
});
