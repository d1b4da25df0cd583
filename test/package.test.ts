/**
 * The published package works on its own: `npm pack` the project, install the tarball with
 * `--omit=dev` in an empty directory (which compiles the native addon there, as a user's install or
 * the Dockerfile's build stage would), and run the installed `vipd`. This is what the container
 * image does without a Docker engine: if anything needed at run time were a devDependency, or a
 * file the runtime needs were missing from package.json `files`, it would fail here.
 *
 * Needs npm and a C++ toolchain (as `npm ci` does) and the npm registry or a warm npm cache.
 */
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';

const ROOT = join(__dirname, '..', '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  main?: string;
};
// Same as package.json's build:native: Node's own headers, next to this node binary (no downloads).
const NODEDIR = resolve(process.execPath, '..', '..');

/** The environment without the npm_* variables of an enclosing `npm test`, so the inner npm runs clean. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

function sh(cmd: string, args: readonly string[], cwd: string, timeoutMs = 30_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: timeoutMs });
  if (r.error !== undefined) throw r.error;
  return r;
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

describe('the npm package, installed with --omit=dev', { timeout: 180_000 }, () => {
  let work = '';
  let app = '';
  let packed: string[] = [];
  const vipd = () => join(app, 'node_modules', '.bin', 'vipd');
  const installed = () => join(app, 'node_modules', manifest.name);

  before(() => {
    assert.ok(existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')), 'build first: npx tsc -p .');
    work = mkdtempSync(join(tmpdir(), 'vipd-package-'));
    const pack = sh('npm', ['pack', '--json', '--pack-destination', work], ROOT);
    assert.equal(pack.status, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(info !== undefined, pack.stdout);
    packed = info.files.map((f) => f.path);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'vipd-package-test', version: '0.0.0', private: true }),
    );
    const install = sh(
      'npm',
      [
        'install',
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        `--nodedir=${NODEDIR}`,
        join(work, info.filename),
      ],
      app,
      150_000,
    );
    assert.equal(install.status, 0, `npm install of the packed tarball failed:\n${install.stdout}\n${install.stderr}`);
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('ships the runtime and the addon sources, not the tests', () => {
    for (const f of [
      'package.json',
      'dist/src/cli/main.js',
      'dist/src/version.js',
      'native/packet.cc',
      'native/relay.cc',
      'native/binding.gyp',
      'configs/kubeadm-3-node.yaml',
    ]) {
      assert.ok(packed.includes(f), `${f} is not in the package (package.json "files")`);
    }
    assert.deepEqual(
      packed.filter((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.startsWith('native/build/')),
      [],
    );
  });

  it('package.json points only at files it ships (bin, and main if it has one)', () => {
    for (const target of [...Object.values(manifest.bin), ...(manifest.main === undefined ? [] : [manifest.main])]) {
      const file = target.replace(/^\.\//, '');
      assert.ok(packed.includes(file), `package.json names ${target}, which is not in the package`);
    }
  });

  it('compiled the native addons at install, and they load', () => {
    for (const name of ['vipd_packet', 'vipd_relay']) {
      const addon = join(installed(), 'native', 'build', 'Release', `${name}.node`);
      assert.ok(existsSync(addon), `the install script did not build native/build/Release/${name}.node`);
      const r = sh(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], app);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  it('requires only dependencies and Node built-ins at run time (no devDependency)', () => {
    const allowed = new Set([...Object.keys(manifest.dependencies), ...builtinModules]);
    const offenders: string[] = [];
    const seen = new Set<string>();
    for (const file of jsFiles(join(installed(), 'dist', 'src'))) {
      for (const [, spec = ''] of readFileSync(file, 'utf8').matchAll(/require\("([^"]+)"\)/g)) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        seen.add(pkg);
        if (!allowed.has(pkg)) offenders.push(`${file.slice(installed().length + 1)}: ${spec}`);
      }
    }
    assert.deepEqual(offenders, []);
    // The scan itself works: tsc's CommonJS output names the packages the CLI is built on.
    for (const pkg of ['commander', 'yaml', 'zod'])
      assert.ok(seen.has(pkg), `no require("${pkg}") found: ${[...seen].join(', ')}`);
    for (const dev of ['typescript', 'kubernetes-models']) {
      assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} was installed with --omit=dev`);
    }
  });

  it('vipd --help and vipd version run', () => {
    const help = sh(vipd(), ['--help'], app);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: vipd/);
    assert.match(help.stdout, /\brun\b/);
    const version = sh(vipd(), ['version'], app);
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^vipd ${manifest.version.replace(/\./g, '\\.')} `));
  });

  it('vipd check --offline accepts every shipped config and exits 0', () => {
    const secret = join(work, 'secret');
    writeFileSync(secret, 'package-test-secret-0123456789\n', { mode: 0o600 });
    const configs = readdirSync(join(installed(), 'configs')).filter((f) => f.endsWith('.yaml'));
    assert.ok(configs.includes('kubeadm-3-node.yaml'), configs.join(', '));
    for (const name of configs) {
      const file = join(work, name);
      writeFileSync(
        file,
        readFileSync(join(installed(), 'configs', name), 'utf8').replace(/\/etc\/vipd\/secret/g, secret),
      );
      // --offline: the shipped files describe other hosts (their addresses are not this machine's).
      const check = sh(vipd(), ['check', '--offline', '--config', file, '--hostname', 'cp1'], app);
      assert.equal(check.status, 0, `${name}: ${check.stderr}`);
      assert.match(check.stdout, /valid \(offline[^)]*\); this node is cp1 /);
    }
  });
});
