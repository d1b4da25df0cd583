import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
// The Kubernetes OpenAPI schema: Pod#validate() throws on a field of the wrong type or value.
import { Deployment } from 'kubernetes-models/apps/v1';
import { Pod } from 'kubernetes-models/v1';
import { parse } from 'yaml';
import { buildProgram } from '../src/cli/main';
import type { HostView } from '../src/config/host';
import { effectiveConfigYaml, loadConfigFile, parseConfigText } from '../src/config/load';
import { UsageError } from '../src/errors';
import { registerManifestCommands } from '../src/manifest/cli';
import {
  configFile,
  GRACE_MARGIN_SECONDS,
  POD_DEFAULTS,
  type PodOptions,
  podManifest,
  podObject,
} from '../src/manifest/pod';
import { proxySettings } from '../src/proxy/settings';
import { VERSION } from '../src/version';
import { tempDir } from './helpers/daemon';

const CHECKED_IN = join(__dirname, '..', '..', 'static-pods', 'vipd.yaml');
const CHECKED_IN_WITNESS = join(__dirname, '..', '..', 'static-pods', 'vipd-witness.yaml');

interface PodShape {
  spec: {
    hostNetwork: boolean;
    dnsPolicy: string;
    priorityClassName: string;
    terminationGracePeriodSeconds: number;
    containers: {
      image: string;
      command: string[];
      resources: { requests: Record<string, string>; limits: Record<string, string> };
      securityContext: {
        runAsUser: number;
        allowPrivilegeEscalation: boolean;
        readOnlyRootFilesystem: boolean;
        capabilities: { add?: string[]; drop: string[] };
      };
      livenessProbe: { httpGet: { host: string; port: number; path: string } };
      readinessProbe: { httpGet: { host: string; port: number; path: string } };
      volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
    }[];
    volumes: { name: string; hostPath: { path: string; type: string } }[];
  };
  metadata: { name: string; namespace: string; labels: Record<string, string> };
}

/** Runs `vipd manifest ...` through commander and returns what it printed. */
async function run(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command('vipd').exitOverride();
  registerManifestCommands(program, (text) => {
    out += text;
  });
  await program.parseAsync(['manifest', ...args], { from: 'user' });
  return out;
}

function validatePod(text: string): PodShape {
  const obj = parse(text) as Record<string, unknown>;
  new Pod(obj as ConstructorParameters<typeof Pod>[0]).validate();
  return obj as unknown as PodShape;
}

function assertRequiredProperties(pod: PodShape, o: PodOptions): void {
  const c = pod.spec.containers[0]!;
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.metadata.namespace, 'kube-system');
  assert.deepEqual(pod.metadata.labels, { component: 'vipd', tier: 'control-plane' });
  assert.equal(pod.spec.priorityClassName, 'system-node-critical');
  assert.equal(pod.spec.dnsPolicy, 'Default', 'no dependency on cluster DNS');
  assert.deepEqual(c.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  assert.equal(c.securityContext.runAsUser, 0);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.command.slice(0, 4), ['vipd', 'run', '--config', '/etc/vipd/vipd.yaml']);
  assert.deepEqual(c.command.slice(4), ['--log-level', o.logLevel]);
  assert.equal(c.image, o.image);
  assert.deepEqual(c.livenessProbe.httpGet, {
    host: '127.0.0.1',
    port: o.healthPort,
    path: '/healthz',
    scheme: 'HTTP',
  });
  assert.deepEqual(c.readinessProbe.httpGet, {
    host: '127.0.0.1',
    port: o.healthPort,
    path: '/readyz',
    scheme: 'HTTP',
  });
  assert.equal(c.resources.requests.cpu, '50m');
  assert.equal(c.resources.requests.memory, '64Mi');
  assert.equal(c.resources.limits.memory, o.memoryLimit);
  assert.equal(c.resources.limits.cpu, undefined, 'no CPU limit: throttling stalls heartbeats');
  assert.ok(
    pod.spec.terminationGracePeriodSeconds * 1000 > o.drainTimeoutMs,
    'the kubelet must not SIGKILL during the drain',
  );
  // The config file the command names is inside the read-only mount of the config directory.
  // The node's name from the downward API (the kubelet resolves it for a static pod, no apiserver needed).
  const env = (c as unknown as { env: { name: string; valueFrom?: unknown }[] }).env;
  assert.deepEqual(
    env.find((e) => e.name === 'VIPD_NODE_NAME'),
    { name: 'VIPD_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
  );
  assert.deepEqual(c.volumeMounts, [
    { name: 'config', mountPath: '/etc/vipd', readOnly: true },
    { name: 'state', mountPath: '/var/lib/vipd' },
  ]);
  assert.deepEqual(pod.spec.volumes, [
    { name: 'config', hostPath: { path: o.configDir, type: 'Directory' } },
    // The record that the cluster formed (election.stateDir) outlives the pod.
    { name: 'state', hostPath: { path: '/var/lib/vipd', type: 'DirectoryOrCreate' } },
  ]);
}

describe('manifest pod', () => {
  it('the checked-in static-pods/vipd.yaml is what the code generates (regenerate it when defaults change)', () => {
    const expected = podManifest();
    assert.equal(
      readFileSync(CHECKED_IN, 'utf8'),
      expected,
      'static-pods/vipd.yaml is stale: npx tsc -p . && node dist/src/cli/main.js manifest pod > static-pods/vipd.yaml',
    );
  });

  it('the default and the checked-in manifest validate against the Kubernetes schema, with every required property', async () => {
    for (const text of [podManifest(), readFileSync(CHECKED_IN, 'utf8'), await run('pod')]) {
      const pod = validatePod(text);
      assertRequiredProperties(pod, POD_DEFAULTS);
      assert.equal(pod.spec.containers[0]!.image, `ghcr.io/vipd/vipd:${VERSION}`);
      assert.equal(pod.spec.terminationGracePeriodSeconds, 30);
    }
  });

  it('flags change the image, config directory, health port, log level, drain and memory limit', async () => {
    const text = await run(
      'pod',
      '--image',
      'registry.example:5000/ops/vipd:dev',
      '--config-dir',
      '/srv/vipd/',
      '--health-port',
      '9581',
      '--log-level',
      'debug',
      '--drain-timeout',
      '1m30s',
      '--memory-limit',
      '512Mi',
    );
    const pod = validatePod(text);
    const o: PodOptions = {
      image: 'registry.example:5000/ops/vipd:dev',
      configDir: '/srv/vipd',
      healthPort: 9581,
      healthHost: '127.0.0.1',
      logLevel: 'debug',
      drainTimeoutMs: 90_000,
      memoryLimit: '512Mi',
    };
    assertRequiredProperties(pod, o);
    assert.equal(pod.spec.terminationGracePeriodSeconds, 100);
  });

  it('the probes follow health.listen: loopback and the wildcards on loopback, a node address on the pod IP', async () => {
    const probes = async (host: string) => {
      const c = validatePod(await run('pod', '--health-host', host)).spec.containers[0]!;
      assert.deepEqual(
        c.livenessProbe.httpGet,
        c.readinessProbe.httpGet && { ...c.readinessProbe.httpGet, path: '/healthz' },
      );
      return c.readinessProbe.httpGet;
    };
    assert.equal((await probes('127.0.0.1')).host, '127.0.0.1');
    assert.equal((await probes('0.0.0.0')).host, '127.0.0.1');
    // hostNetwork: no host means the pod IP, which is each node's own address; one manifest fits all.
    const node = await probes('192.168.10.11');
    assert.equal(node.host, undefined);
    assert.equal(node.port, POD_DEFAULTS.healthPort);
    const text = await run(
      'config',
      '--vip',
      '192.168.10.100/24',
      '--interface',
      'eth0',
      '--peers',
      'cp1=192.168.10.11,cp2=192.168.10.12',
      '--health-host',
      '0.0.0.0',
    );
    const { config } = parseConfigText(text, 'generated.yaml', { readSecret: false, hostname: 'cp1' });
    assert.deepEqual(config.health.listen, { host: '0.0.0.0', port: POD_DEFAULTS.healthPort });
    // IPv6: loopback on itself, "::" (dual-stack) on 127.0.0.1, a node's address on the pod IP.
    assert.equal((await probes('::1')).host, '::1');
    assert.equal((await probes('::')).host, '127.0.0.1');
    assert.equal((await probes('fd00:10::11')).host, undefined);
    const six = await run('config', '--vip', 'fd00:10::100/64', '--peers', 'cp1=fd00:10::11', '--health-host', '::1');
    const loaded = parseConfigText(six, 'generated.yaml', { readSecret: false, hostname: 'cp1' }).config;
    assert.deepEqual(loaded.health.listen, { host: '::1', port: POD_DEFAULTS.healthPort });
    await assert.rejects(
      run('pod', '--health-host', 'localhost'),
      (err: unknown) => err instanceof UsageError && err.problems.some((p) => p.startsWith('--health-host: got ')),
    );
  });

  it('bad flags are a UsageError (exit 2) naming each flag', async () => {
    await assert.rejects(
      run(
        'pod',
        '--health-port',
        'http',
        '--drain-timeout',
        '20',
        '--log-level',
        'loud',
        '--image',
        'Not An Image',
        '--config-dir',
        'etc/vipd',
        '--memory-limit',
        '1Mi',
      ),
      (err: unknown) => {
        assert.ok(err instanceof UsageError, String(err));
        assert.equal(err.exitCode, 2);
        for (const flag of [
          '--health-port',
          '--drain-timeout',
          '--log-level',
          '--image',
          '--config-dir',
          '--memory-limit',
        ]) {
          assert.ok(
            err.problems.some((p) => p.startsWith(`${flag}: got `)),
            `${flag} in:\n${err.problems.join('\n')}`,
          );
        }
        return true;
      },
    );
  });
});

describe('manifest pod --witness', () => {
  it('the checked-in static-pods/vipd-witness.yaml is what the code generates', () => {
    assert.equal(
      readFileSync(CHECKED_IN_WITNESS, 'utf8'),
      podManifest({ witness: true }),
      'static-pods/vipd-witness.yaml is stale: npx tsc -p . && ' +
        'node dist/src/cli/main.js manifest pod --witness > static-pods/vipd-witness.yaml',
    );
  });

  it('validates against the Kubernetes schema and runs `vipd witness` with no capabilities added', async () => {
    const member = validatePod(await run('pod'));
    for (const text of [await run('pod', '--witness'), readFileSync(CHECKED_IN_WITNESS, 'utf8')]) {
      const pod = validatePod(text);
      const c = pod.spec.containers[0]!;
      const m = member.spec.containers[0]!;
      assert.equal(pod.metadata.name, 'vipd-witness');
      assert.equal(pod.metadata.namespace, 'kube-system');
      assert.deepEqual(pod.metadata.labels, { component: 'vipd-witness' }, 'not tier: control-plane');
      assert.deepEqual(c.command, ['vipd', 'witness', '--config', '/etc/vipd/vipd.yaml', '--log-level', 'info']);
      // No NET_ADMIN, no NET_RAW, nothing: one UDP socket with a classic BPF filter needs no capability.
      assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
      assert.equal(c.securityContext.capabilities.add, undefined);
      // Still root: the secret is root's, mode 0600.
      assert.equal(c.securityContext.runAsUser, 0);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      // The members send to the node's address and accept heartbeats only from it.
      assert.equal(pod.spec.hostNetwork, true);
      assert.equal(pod.spec.dnsPolicy, 'Default');
      // Nothing to drain: the margin alone.
      assert.equal(pod.spec.terminationGracePeriodSeconds, GRACE_MARGIN_SECONDS);
      // The rest as a member's: image, environment, resources, probes and volumes.
      assert.equal(c.image, m.image);
      assert.deepEqual((c as unknown as { env: unknown }).env, (m as unknown as { env: unknown }).env);
      assert.deepEqual(c.resources, m.resources);
      assert.deepEqual(c.livenessProbe, m.livenessProbe);
      assert.deepEqual(c.readinessProbe, m.readinessProbe);
      assert.deepEqual(c.volumeMounts, m.volumeMounts);
      assert.deepEqual(pod.spec.volumes, member.spec.volumes);
      assert.match(
        text,
        /^# vipd witness: .*\n(# .*\n)*# \/etc\/kubernetes\/manifests\/vipd-witness\.yaml on the one node/m,
      );
    }
  });

  it('the command it runs exists, with the flags it passes', () => {
    const witness = buildProgram().commands.find((c) => c.name() === 'witness');
    assert.ok(witness !== undefined, 'vipd witness');
    const flags = witness.options.map((o) => o.long);
    assert.ok(flags.includes('--config') && flags.includes('--log-level'), flags.join(' '));
  });

  it("docs/kubeadm.md: the witness's Deployment validates and runs the generated pod's container, unprivileged", () => {
    const guide = readFileSync(join(__dirname, '..', '..', 'docs', 'kubeadm.md'), 'utf8');
    const section = guide.slice(guide.indexOf('## Two control-plane nodes and a witness'));
    const text = /```yaml\n(apiVersion: apps\/v1\nkind: Deployment\n[\s\S]*?)```/.exec(section)?.[1];
    assert.ok(text !== undefined, 'the guide shows the Deployment');
    const obj = parse(text) as NonNullable<ConstructorParameters<typeof Deployment>[0]>;
    new Deployment(obj).validate();
    const spec = obj.spec!;
    assert.equal(spec.replicas, 1);
    assert.equal(spec.strategy?.type, 'Recreate', 'never two witnesses binding the same address and port');
    const pod = spec.template.spec!;
    assert.ok(pod.nodeSelector?.['kubernetes.io/hostname'] !== undefined, 'pinned to the one node of its address');
    const generated = podObject({ witness: true });
    const g = generated.spec!;
    const c = pod.containers[0]!;
    const gc = g.containers[0]!;
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(c.command, gc.command);
    assert.deepEqual(c.securityContext, gc.securityContext);
    assert.deepEqual(c.env, gc.env);
    assert.deepEqual(c.resources, gc.resources);
    const withoutScheme = (probe: typeof gc.livenessProbe) => {
      const { scheme: _, ...httpGet } = probe?.httpGet ?? { port: 0 };
      return { ...probe, httpGet };
    };
    assert.deepEqual(c.livenessProbe, withoutScheme(gc.livenessProbe));
    assert.deepEqual(c.readinessProbe, withoutScheme(gc.readinessProbe));
    assert.deepEqual(c.volumeMounts, gc.volumeMounts);
    assert.equal(pod.terminationGracePeriodSeconds, g.terminationGracePeriodSeconds);
    assert.deepEqual(
      pod.volumes?.find((v) => v.name === 'state'),
      g.volumes?.find((v) => v.name === 'state'),
    );
    // The config as a Secret with both files in it, readable by root only.
    const config = pod.volumes?.find((v) => v.name === 'config')?.secret;
    assert.equal(config?.defaultMode, 0o400);
  });

  it('docs/kubeadm.md: its `manifest config --witness` command writes the peers the guide shows', async () => {
    const guide = readFileSync(join(__dirname, '..', '..', 'docs', 'kubeadm.md'), 'utf8');
    const section = guide.slice(guide.indexOf('## Two control-plane nodes and a witness'));
    const command = /^vipd manifest config ((?:.*\\\n)*.*?) \| sudo tee \/etc\/vipd\/vipd\.yaml$/m.exec(section)?.[1];
    assert.ok(command !== undefined, 'the guide gives the `vipd manifest config` command');
    const shown = /```yaml\n(peers:\n[\s\S]*?)```/.exec(section)?.[1];
    assert.ok(shown !== undefined, 'the guide shows the peers');
    const written = await run('config', ...command.replace(/\\\n/g, ' ').split(/\s+/));
    assert.ok(written.includes(shown), `${shown}\nnot in\n${written}`);
  });

  it('the flags a member pod takes apply, but the drain timeout: a witness drains nothing', async () => {
    const args = ['--image', 'registry.example:5000/ops/vipd:dev', '--config-dir', '/srv/vipd', '--log-level', 'debug'];
    const pod = validatePod(
      await run(
        'pod',
        '--witness',
        ...args,
        '--health-host',
        '10.20.0.5',
        '--health-port',
        '9581',
        '--drain-timeout',
        '1m',
      ),
    );
    const c = pod.spec.containers[0]!;
    assert.equal(c.image, 'registry.example:5000/ops/vipd:dev');
    assert.deepEqual(c.command.slice(0, 2), ['vipd', 'witness']);
    assert.deepEqual(c.command.slice(4), ['--log-level', 'debug']);
    assert.deepEqual(pod.spec.volumes[0], { name: 'config', hostPath: { path: '/srv/vipd', type: 'Directory' } });
    // Its own address: the probes go to the pod IP, which is the node's (hostNetwork).
    assert.deepEqual(c.readinessProbe.httpGet, { port: 9581, path: '/readyz', scheme: 'HTTP' });
    assert.equal(pod.spec.terminationGracePeriodSeconds, GRACE_MARGIN_SECONDS);
  });
});

describe('manifest config', () => {
  const args = [
    '--vip',
    '192.168.10.100/24',
    '--interface',
    'eth0',
    '--peers',
    'cp1=192.168.10.11,cp2=192.168.10.12,cp3=192.168.10.13',
  ];

  it("prints a config that vipd's own loader accepts on every peer, matching the flags", async () => {
    const text = await run('config', ...args);
    for (const host of ['cp1', 'cp2', 'cp3']) {
      const { config } = parseConfigText(text, 'generated.yaml', { readSecret: false, hostname: host });
      assert.equal(config.nodeName, host);
      assert.deepEqual(
        config.peers.map((p) => `${p.name}=${p.address}`),
        ['cp1=192.168.10.11', 'cp2=192.168.10.12', 'cp3=192.168.10.13'],
      );
      assert.equal(config.vip.address, '192.168.10.100/24');
      assert.equal(config.vip.interface, 'eth0');
      assert.equal(config.election.quorum, 'majority');
      assert.equal(config.election.secretFile, '/etc/vipd/secret');
      assert.deepEqual(config.health.listen, { host: '127.0.0.1', port: POD_DEFAULTS.healthPort });
      assert.equal(config.proxy.drainTimeout, POD_DEFAULTS.drainTimeoutMs);
    }
  });

  it('agrees with the pod generated from the same health port and drain timeout', async () => {
    const shared = ['--health-port', '9581', '--drain-timeout', '45s'];
    const { config } = parseConfigText(await run('config', ...args, ...shared), 'generated.yaml', {
      readSecret: false,
      hostname: 'cp2',
    });
    const pod = validatePod(await run('pod', ...shared));
    const c = pod.spec.containers[0]!;
    assert.equal(c.livenessProbe.httpGet.port, config.health.listen.port);
    assert.equal(c.readinessProbe.httpGet.host, config.health.listen.host);
    assert.ok(pod.spec.terminationGracePeriodSeconds * 1000 > config.proxy.drainTimeout);
  });

  it('IPv6 peers and a dual-stack --vip pair: vip.addresses, the balancer on [::], loaded on every peer', async () => {
    const text = await run(
      'config',
      '--vip',
      '192.168.10.100/24,FD00:10::100/64',
      '--peers',
      'cp1=fd00:10::11,cp2=fd00:10::12,cp3=fd00:10::13',
    );
    for (const host of ['cp1', 'cp2', 'cp3']) {
      const { config } = parseConfigText(text, 'generated.yaml', { readSecret: false, hostname: host });
      assert.deepEqual(config.vip.addresses, ['192.168.10.100/24', 'fd00:10::100/64']);
      assert.equal(config.self.address, `fd00:10::1${host.slice(2)}`);
      assert.deepEqual(config.proxy.frontends[0]?.bind, { host: '::', port: 6443 });
    }
    const single = await run('config', '--vip', 'fd00:10::100/64', '--peers', 'cp1=fd00:10::11');
    assert.match(single, /address: fd00:10::100\/64 +# clients use \[fd00:10::100\]:6443/);
    const four = await run('config', '--vip', '192.168.10.100/24', '--peers', 'cp1=192.168.10.11');
    assert.match(four, /bind: 0\.0\.0\.0:6443/, 'IPv4 only: no [::] listener (a host may have IPv6 off)');
    for (const vip of ['fd00:10::100/64,fd00:10::101/64', '192.168.10.100/24,,', 'a,b,c', 'fd00:10::11/64']) {
      await assert.rejects(run('config', '--vip', vip, '--peers', 'cp1=fd00:10::11'), (err: unknown) => {
        assert.ok(err instanceof UsageError && err.problems.some((p) => p.startsWith('--vip')), String(err));
        return true;
      });
    }
  });

  it('--quorum none is written as such and says what it costs', async () => {
    const text = await run('config', ...args, '--quorum', 'none');
    assert.match(text, /quorum: none\s+# any member alone may hold the VIP/);
    assert.equal(parseConfigText(text, 'g', { readSecret: false, hostname: 'cp1' }).config.election.quorum, 'none');
  });

  it('odd but valid values are quoted so YAML keeps them strings', () => {
    const text = configFile({ vip: '10.0.0.100/8', interface: 'true', peers: [{ name: '1e3', address: '10.0.0.1' }] });
    const { config } = parseConfigText(text, 'g', { readSecret: false, hostname: '1e3' });
    assert.equal(config.vip.interface, 'true');
    assert.equal(config.peers[0]!.name, '1e3');
  });

  it('--interface may be left out: each node takes the interface that carries its own address', async () => {
    const text = await run(
      'config',
      '--vip',
      '192.168.10.100/24',
      '--peers',
      'cp1=192.168.10.11,cp2=192.168.10.12,cp3=192.168.10.13',
    );
    assert.doesNotMatch(text, /^\s*interface:/m);
    const { config } = parseConfigText(text, 'g', { readSecret: false, hostname: 'cp2', env: {} });
    assert.equal(config.vip.interface, undefined);
    const host: HostView = {
      interfaces: [
        { name: 'ens192', loopback: false, addresses: [{ address: '192.168.10.12', prefixLength: 24 }] },
        { name: 'lo', loopback: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
      ],
      stateDirError: () => undefined,
    };
    const { dir, secretFile, cleanup } = tempDir();
    try {
      const file = join(dir, 'vipd.yaml');
      writeFileSync(file, text.replace('/etc/vipd/secret', secretFile));
      assert.equal(loadConfigFile(file, { hostname: 'cp2', env: {}, host }).config.vip.interface, 'ens192');
    } finally {
      cleanup();
    }
  });

  it('ports, clusterId, priority and nodeName from flags, in a file the loader reads back', async () => {
    const text = await run(
      'config',
      ...args,
      '--bind-port',
      '7443',
      '--backend-port',
      '6443',
      '--election-port',
      '7680',
      '--cluster-id',
      '42',
      '--priority',
      '150',
      '--node-name',
      'cp2',
      '--health-port',
      '7681',
    );
    const { config } = parseConfigText(text, 'g', { readSecret: false, hostname: 'cp1', env: {} });
    assert.deepEqual([config.nodeName, config.nodeNameFrom], ['cp2', 'nodeName']);
    assert.deepEqual(
      config.proxy.frontends.map((f) => [f.bind, f.backendPort]),
      [[{ host: '0.0.0.0', port: 7443 }, 6443]],
    );
    assert.equal(config.track.apiserver.port, 6443, "the node's own apiserver is on the backend port");
    assert.deepEqual([config.election.port, config.election.clusterId, config.election.priority], [7680, 42, 150]);
    assert.match(text, /clients use 192\.168\.10\.100:7443/);
    const defaults = parseConfigText(await run('config', ...args), 'g', {
      readSecret: false,
      hostname: 'cp3',
      env: {},
    }).config;
    const e = defaults.election;
    assert.deepEqual([defaults.nodeNameFrom, e.port, e.clusterId, e.priority], ['host name', 7580, 1, 100]);
    assert.deepEqual(
      defaults.proxy.frontends.map((f) => [f.bind.port, f.backendPort]),
      [[6443, 9443]],
    );
  });

  it('bad port, clusterId, priority and nodeName flags name the flag; ports that collide too', async () => {
    const bad: [string[], string][] = [
      [['--bind-port', '0'], '--bind-port'],
      [['--backend-port', '6443'], '--backend-port'],
      [['--election-port', 'udp'], '--election-port'],
      [['--cluster-id', '0'], '--cluster-id'],
      [['--priority', '255'], '--priority'],
      [['--node-name', 'cp9'], '--node-name'],
      [['--election-port', '7590', '--health-port', '7590'], '--health-port'],
      [['--health-port', '6443'], '--health-port'],
    ];
    for (const [argv, flag] of bad) {
      await assert.rejects(
        run('config', ...args, ...argv),
        (err: unknown) =>
          err instanceof UsageError && err.problems.length === 1 && err.problems[0]!.startsWith(`${flag}: got `),
        argv.join(' '),
      );
    }
  });

  it('--witness appends witnesses after the members, in a file every node loads, with a majority of 3', async () => {
    const two = ['--vip', '192.168.10.100/24', '--peers', 'cp1=192.168.10.11,cp2=192.168.10.12'];
    const text = await run('config', ...two, '--witness', 'w1=10.20.0.5');
    assert.match(text, /- name: w1\n\s+address: 10\.20\.0\.5\n\s+role: witness\n/);
    for (const host of ['cp1', 'cp2', 'w1']) {
      const { config } = parseConfigText(text, 'generated.yaml', { readSecret: false, hostname: host, env: {} });
      assert.deepEqual(
        config.peers.map((p) => `${p.name}=${p.address}:${p.role}`),
        ['cp1=192.168.10.11:member', 'cp2=192.168.10.12:member', 'w1=10.20.0.5:witness'],
      );
      // auto, with a witness listed: a majority, 2 of the 3.
      assert.equal(config.election.quorum, 'majority');
      assert.equal(config.self.role, host === 'w1' ? 'witness' : 'member');
      // The balancer's backends are the members' apiservers: a witness runs none.
      assert.deepEqual(
        proxySettings(config).frontends[0]?.backends.map((b) => b.name),
        ['cp1', 'cp2'],
      );
    }
    // Repeated, or a comma list: the same file.
    const repeated = await run('config', ...two, '--witness', 'w1=10.20.0.5', '--witness', 'w2=10.20.0.6');
    assert.equal(await run('config', ...two, '--witness', 'w1=10.20.0.5,w2=10.20.0.6'), repeated);
    const { config } = parseConfigText(repeated, 'g', { readSecret: false, hostname: 'w2', env: {} });
    assert.deepEqual(
      config.peers.map((p) => p.role),
      ['member', 'member', 'witness', 'witness'],
    );
    // A file for the witness alone.
    const own = await run('config', ...two, '--witness', 'w1=10.20.0.5', '--node-name', 'w1');
    assert.equal(
      parseConfigText(own, 'g', { readSecret: false, hostname: 'cp1', env: {} }).config.self.role,
      'witness',
    );
    // Without --witness nothing says role.
    assert.doesNotMatch(await run('config', ...two), /role:/);
  });

  it('bad --witness values are a UsageError naming the flag: checked like --peers, and against them', async () => {
    const two = ['--vip', '192.168.10.100/24', '--peers', 'cp1=192.168.10.11,cp2=192.168.10.12'];
    const bad: [string[], string][] = [
      [[...two, '--witness', 'w1'], '--witness'],
      [[...two, '--witness', 'W1=10.20.0.5'], '--witness'],
      [[...two, '--witness', 'w1=10.20.0.300'], '--witness'],
      [[...two, '--witness', ''], '--witness'],
      [[...two, '--witness', 'cp2=10.20.0.5'], '--witness'],
      [[...two, '--witness', 'w1=192.168.10.12'], '--witness'],
      [[...two, '--witness', 'w1=10.20.0.5', '--witness', 'w1=10.20.0.6'], '--witness'],
      [[...two, '--witness', 'w1=10.20.0.5,w2=10.20.0.5'], '--witness'],
      [[...two, '--witness', 'w1=192.168.10.100'], '--vip'],
      [[...two, '--witness', 'w1=10.20.0.5', '--quorum', 'none'], '--quorum'],
      [['--vip', '192.168.10.100/24', '--peers', 'cp1=192.168.10.11', '--witness', 'w1=10.20.0.5'], '--peers'],
      [[...two, '--witness', 'w1=10.20.0.5', '--node-name', 'w2'], '--node-name'],
    ];
    for (const [argv, flag] of bad) {
      await assert.rejects(
        run('config', ...argv),
        (err: unknown) =>
          err instanceof UsageError &&
          err.exitCode === 2 &&
          err.problems.length === 1 &&
          err.problems[0]!.startsWith(`${flag}: got `),
        argv.join(' '),
      );
    }
  });

  it("docs/migration.md: its `manifest config` command writes the config the guide shows (HAProxy's ports)", async () => {
    const guide = readFileSync(join(__dirname, '..', '..', 'docs', 'migration.md'), 'utf8');
    const command = /^vipd manifest config ((?:.*\\\n)*.*?) \| sudo tee \/etc\/vipd\/vipd\.yaml$/m.exec(guide)?.[1];
    assert.ok(command !== undefined, 'the guide gives the `vipd manifest config` command');
    const shown = /```yaml\n(# vipd for a kubeadm control plane set up with keepalived[\s\S]*?)```/.exec(guide)?.[1];
    assert.ok(shown !== undefined, 'the guide shows the config');
    const written = await run('config', ...command.replace(/\\\n/g, ' ').split(/\s+/));
    const effective = (text: string) =>
      effectiveConfigYaml(parseConfigText(text, 'g', { readSecret: false, hostname: 'cp1', env: {} }).config);
    assert.equal(effective(written), effective(shown));
    assert.match(written, /bind: 0\.0\.0\.0:8443/);
  });

  it('missing and bad flags are a UsageError naming each flag', async () => {
    await assert.rejects(run('config'), (err: unknown) => {
      assert.ok(err instanceof UsageError, String(err));
      for (const flag of ['--vip', '--peers']) {
        assert.ok(
          err.problems.some((p) => p.startsWith(`${flag}: missing`)),
          err.problems.join('\n'),
        );
      }
      assert.ok(!err.problems.some((p) => p.startsWith('--interface')), 'vip.interface may be left to each node');
      return true;
    });
    const bad: [string[], string][] = [
      [['--vip', '192.168.10.100', '--interface', 'eth0', '--peers', 'cp1=192.168.10.11'], '--vip'],
      [['--vip', '192.168.10.11/24', '--interface', 'eth0', '--peers', 'cp1=192.168.10.11'], '--vip'],
      [
        ['--vip', '192.168.10.100/24', '--interface', 'a very long interface', '--peers', 'cp1=192.168.10.11'],
        '--interface',
      ],
      [['--vip', '192.168.10.100/24', '--interface', 'eth0', '--peers', 'CP1=192.168.10.11'], '--peers'],
      [
        ['--vip', '192.168.10.100/24', '--interface', 'eth0', '--peers', 'cp1=192.168.10.11,cp2=192.168.10.11'],
        '--peers',
      ],
      [
        ['--vip', '192.168.10.100/24', '--interface', 'eth0', '--peers', 'cp1=192.168.10.11,cp1=192.168.10.12'],
        '--peers',
      ],
      [['--vip', '192.168.10.100/24', '--interface', 'eth0', '--peers', 'cp1:192.168.10.11'], '--peers'],
      [[...args, '--quorum', 'most'], '--quorum'],
      [[...args, '--secret-file', 'secret'], '--secret-file'],
      [[...args, '--health-port', '7580'], '--health-port'],
      [[...args, '--drain-timeout', '-1s'], '--drain-timeout'],
    ];
    for (const [argv, flag] of bad) {
      await assert.rejects(
        run('config', ...argv),
        (err: unknown) =>
          err instanceof UsageError &&
          err.exitCode === 2 &&
          err.problems.length === 1 &&
          err.problems[0]!.startsWith(`${flag}: got `),
        argv.join(' '),
      );
    }
  });
});
