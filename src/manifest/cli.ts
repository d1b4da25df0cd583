/**
 * `vipd manifest pod` and `vipd manifest config`: parse and check the flags, print what
 * manifest/pod.ts generates. Every bad flag is reported at once, each naming the flag, the value
 * and what was expected, as a UsageError (exit 2): the command line is what to fix, not a file.
 */

import { isIPv4 } from 'node:net';
import { posix } from 'node:path';
import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../config/duration';
import { canonicalIpv6 } from '../config/host-port';
import { peerSchema, quorumModes, vipFieldsSchema } from '../config/schema';
import { UsageError } from '../errors';
import { LOG_LEVELS, type LogLevel } from '../log/logger';
import {
  CONFIG_DEFAULTS,
  type ConfigFileOptions,
  configFile,
  DEFAULT_IMAGE,
  GRACE_MARGIN_SECONDS,
  POD_DEFAULTS,
  type PodOptions,
  podManifest,
  quantityBytes,
} from './pod';

/** A value every check has vouched for (Problems.throwIfAny() has passed): undefined here is a bug. */
function set<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('vipd bug: a flag passed its checks without a value');
  return value;
}

/** The same bound as proxy.drainTimeout in the config schema. */
const MAX_DRAIN_MS = 600_000;
/** The pod's memory request; a limit below it is refused by the API server. */
const MEMORY_REQUEST_BYTES = 64 * 2 ** 20;

// An image reference: [registry[:port]/]path[:tag][@sha256:digest], path components lowercase.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_REF = new RegExp(
  `^(?:[a-zA-Z0-9.-]+(?::\\d+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::\\w[\\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`,
);

interface SharedFlags {
  healthPort: string;
  healthHost: string;
  drainTimeout: string;
}
interface PodFlags extends SharedFlags {
  image: string;
  configDir: string;
  logLevel: string;
  memoryLimit: string;
  witness?: boolean;
}
interface ConfigFlags extends SharedFlags {
  vip?: string;
  interface?: string;
  peers?: string;
  quorum: string;
  secretFile: string;
  nodeName?: string;
  bindPort: string;
  backendPort: string;
  electionPort: string;
  clusterId: string;
  priority?: string;
  /** Each --witness as given: name=ip, or several separated by commas. */
  witness: string[];
}

/** Collects one problem per bad flag, so the operator fixes a command line in one pass. */
class Problems {
  readonly list: string[] = [];
  bad(flag: string, value: string | undefined, expected: string): undefined {
    this.list.push(
      value === undefined
        ? `${flag}: missing; expected ${expected}`
        : `${flag}: got ${JSON.stringify(value)}, expected ${expected}`,
    );
    return undefined;
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw UsageError.flags(this.list);
  }
}

function integer(problems: Problems, flag: string, value: string, min: number, max: number): number | undefined {
  const n = Number(value);
  if (/^\d+$/.test(value) && n >= min && n <= max) return n;
  return problems.bad(flag, value, `an integer from ${min} to ${max}`);
}

function port(problems: Problems, flag: string, value: string): number | undefined {
  return integer(problems, flag, value, 1, 65535);
}

function healthHost(problems: Problems, value: string): string | undefined {
  if (isIPv4(value)) return value;
  const v6 = canonicalIpv6(value);
  return v6 !== undefined
    ? v6
    : problems.bad('--health-host', value, "an IP address: 127.0.0.1, 0.0.0.0, ::1, :: or the node's own");
}

function drainTimeout(problems: Problems, value: string): number | undefined {
  // A unit is required, as in the config file: "20" could be seconds or milliseconds.
  const ms = parseDuration(value);
  return ms !== undefined && ms <= MAX_DRAIN_MS
    ? ms
    : problems.bad('--drain-timeout', value, 'a duration from 0s to 10m, such as "20s"');
}

type PeerList = ConfigFileOptions['peers'];

/** `name=ip,name=ip` as pairs, each checked against the config schema's peer rules; undefined at the first bad one. */
function pairs(problems: Problems, flag: string, value: string, expected: string): PeerList | undefined {
  const list: { name: string; address: string }[] = [];
  for (const entry of value.split(',').map((e) => e.trim())) {
    const [name = '', address = '', extra] = entry.split('=').map((s) => s.trim());
    if (extra !== undefined || !peerSchema.safeParse({ name, address }).success) {
      return problems.bad(flag, entry, `${expected}; each name a lowercase DNS-1123 name (a Kubernetes node name)`);
    }
    list.push({ name, address });
  }
  return list;
}

/** The first name or address `list` has twice, with what it is, for the message. */
function duplicate(list: PeerList): string | undefined {
  const twice = (key: 'name' | 'address') => list.map((p) => p[key]).find((v, i, all) => all.indexOf(v) !== i);
  const name = twice('name');
  if (name !== undefined) return `each name once; "${name}" appears twice`;
  const address = twice('address');
  return address === undefined ? undefined : `each address once; "${address}" appears twice`;
}

/** Parses `name=ip,name=ip`, checking each entry against the config schema's peer rules. */
function peers(problems: Problems, value: string | undefined): PeerList | undefined {
  const expected =
    'name=IPv4 pairs separated by commas, this node included, such as "cp1=192.168.10.11,cp2=192.168.10.12,cp3=192.168.10.13"';
  if (value === undefined || value.trim() === '') return problems.bad('--peers', value, expected);
  const list = pairs(problems, '--peers', value, expected);
  if (list === undefined) return undefined;
  const twice = duplicate(list);
  return twice === undefined ? list : problems.bad('--peers', value, twice);
}

/**
 * Parses every --witness (each name=ip, or several separated by commas): checked like --peers, and
 * no name or address of a member again. `members` undefined: --peers was bad, so only the witnesses
 * among themselves are checked.
 */
function witnesses(problems: Problems, values: readonly string[], members: PeerList | undefined): PeerList | undefined {
  const expected = 'name=IPv4 of a witness, such as "w1=192.168.20.5" (repeat the flag, or separate them by commas)';
  const list: { name: string; address: string }[] = [];
  for (const value of values) {
    const more =
      value.trim() === '' ? problems.bad('--witness', value, expected) : pairs(problems, '--witness', value, expected);
    if (more === undefined) return undefined;
    list.push(...more);
  }
  const shown = values.join(',');
  const twice = duplicate(list);
  if (twice !== undefined) return problems.bad('--witness', shown, twice);
  const member = members?.find((m) => list.some((w) => w.name === m.name || w.address === m.address));
  if (member !== undefined) {
    return problems.bad(
      '--witness',
      shown,
      `names and addresses other than the members' in --peers; ${member.name}=${member.address} is a member`,
    );
  }
  return list;
}

export function parsePodFlags(flags: PodFlags): PodOptions {
  const problems = new Problems();
  const image = IMAGE_REF.test(flags.image)
    ? flags.image
    : problems.bad('--image', flags.image, 'an image reference such as "ghcr.io/vipd/vipd:0.2.0"');
  const configDir =
    posix.isAbsolute(flags.configDir) && !/[\s]/.test(flags.configDir)
      ? posix.normalize(flags.configDir).replace(/(.)\/$/, '$1')
      : problems.bad('--config-dir', flags.configDir, 'an absolute directory path without spaces, such as "/etc/vipd"');
  const healthPort = port(problems, '--health-port', flags.healthPort);
  const host = healthHost(problems, flags.healthHost);
  const logLevel = (LOG_LEVELS as readonly string[]).includes(flags.logLevel)
    ? (flags.logLevel as LogLevel)
    : problems.bad('--log-level', flags.logLevel, `one of ${LOG_LEVELS.join(', ')}`);
  const drainTimeoutMs = drainTimeout(problems, flags.drainTimeout);
  const limit = quantityBytes(flags.memoryLimit);
  const memoryLimit =
    limit !== undefined && limit >= MEMORY_REQUEST_BYTES
      ? flags.memoryLimit
      : problems.bad(
          '--memory-limit',
          flags.memoryLimit,
          'a Kubernetes quantity of at least the 64Mi request, such as "256Mi"',
        );
  problems.throwIfAny();
  return {
    ...(flags.witness === true ? { witness: true } : {}),
    image: set(image),
    configDir: set(configDir),
    healthPort: set(healthPort),
    healthHost: set(host),
    logLevel: set(logLevel),
    drainTimeoutMs: set(drainTimeoutMs),
    memoryLimit: set(memoryLimit),
  };
}

export function parseConfigFlags(flags: ConfigFlags): ConfigFileOptions {
  const problems = new Problems();
  // One VIP, or a dual-stack pair "IPv4/len,IPv6/len" (kube-vip's comma form), one of each family.
  const vipParts = flags.vip?.split(',').map((v) => v.trim()) ?? [];
  const vipOk =
    vipParts.length >= 1 &&
    vipParts.length <= 2 &&
    vipParts.every((v) => vipFieldsSchema.shape.address.safeParse(v).success) &&
    new Set(vipParts.map((v) => v.includes(':'))).size === vipParts.length;
  const vip = vipOk
    ? flags.vip
    : problems.bad(
        '--vip',
        flags.vip,
        'the VIP with its prefix length, such as "192.168.10.100/24" or "fd00:10::100/64", ' +
          'or a dual-stack pair "192.168.10.100/24,fd00:10::100/64"',
      );
  // Absent: each node takes the interface that carries its own address.
  const iface =
    flags.interface === undefined || vipFieldsSchema.shape.interface.safeParse(flags.interface).success
      ? flags.interface
      : problems.bad('--interface', flags.interface, 'an interface name of 1 to 15 characters, such as "eth0"');
  const peerList = peers(problems, flags.peers);
  const witnessList = witnesses(problems, flags.witness ?? [], peerList);
  // A witness gets the same file as the members (it finds itself the same way); one for it alone is allowed too.
  const named = [...(peerList ?? []), ...(witnessList ?? [])].map((p) => p.name);
  const nodeName =
    flags.nodeName === undefined || named.includes(flags.nodeName)
      ? flags.nodeName
      : problems.bad(
          '--node-name',
          flags.nodeName,
          peerList === undefined
            ? 'one of the names in --peers'
            : `one of the names in --peers${witnessList?.length ? ' or --witness' : ''} (${named.join(', ')})`,
        );
  const bindPort = port(problems, '--bind-port', flags.bindPort);
  let backendPort = port(problems, '--backend-port', flags.backendPort);
  // The backends are every peer on backendPort, this node included: the same port would relay to itself.
  if (backendPort !== undefined && backendPort === bindPort) {
    backendPort = problems.bad(
      '--backend-port',
      flags.backendPort,
      `the apiservers' port, not --bind-port (${bindPort}): vipd would relay to itself`,
    );
  }
  const electionPort = port(problems, '--election-port', flags.electionPort);
  const clusterId = integer(problems, '--cluster-id', flags.clusterId, 1, 65535);
  const priority = flags.priority === undefined ? undefined : integer(problems, '--priority', flags.priority, 1, 254);
  const vipIps = vipParts.map((v) => v.split('/')[0]);
  const clash = [...(peerList ?? []), ...(witnessList ?? [])].find((p) => vipIps.includes(p.address));
  if (clash !== undefined) problems.bad('--vip', vip, `an unused address, not ${clash.name}'s own address`);
  let quorum = (quorumModes as readonly string[]).includes(flags.quorum)
    ? (flags.quorum as ConfigFileOptions['quorum'])
    : problems.bad('--quorum', flags.quorum, `one of ${quorumModes.join(', ')}`);
  if (witnessList !== undefined && witnessList.length > 0) {
    // What the loader would only warn about, refused here: a generated file is never one that warns.
    if (quorum === 'none') {
      quorum = problems.bad(
        '--quorum',
        flags.quorum,
        'auto or majority with --witness: without a majority a witness decides nothing, and a partition gives ' +
          'two holders',
      );
    }
    if (peerList !== undefined && peerList.length < 2) {
      problems.bad(
        '--peers',
        flags.peers,
        'two members or more with --witness: with one, only that member can ever hold the VIP, and it needs the ' +
          'witness to',
      );
    }
  }
  const secretFile = posix.isAbsolute(flags.secretFile)
    ? flags.secretFile
    : problems.bad(
        '--secret-file',
        flags.secretFile,
        'an absolute path as seen inside the pod, such as "/etc/vipd/secret"',
      );
  let healthPort = port(problems, '--health-port', flags.healthPort);
  // The loader refuses health.listen on election.port, and on the port the frontend (0.0.0.0) binds.
  if (healthPort !== undefined && healthPort === electionPort) {
    healthPort = problems.bad('--health-port', flags.healthPort, `a port other than election.port (${electionPort})`);
  } else if (healthPort !== undefined && healthPort === bindPort) {
    healthPort = problems.bad('--health-port', flags.healthPort, `a port other than --bind-port (${bindPort})`);
  }
  const host = healthHost(problems, flags.healthHost);
  const drainTimeoutMs = drainTimeout(problems, flags.drainTimeout);
  problems.throwIfAny();
  return {
    vip: set(vip),
    ...(iface === undefined ? {} : { interface: iface }),
    peers: set(peerList),
    ...(witnessList === undefined || witnessList.length === 0 ? {} : { witnesses: witnessList }),
    ...(nodeName === undefined ? {} : { nodeName }),
    quorum: set(quorum),
    secretFile: set(secretFile),
    healthPort: set(healthPort),
    healthHost: set(host),
    drainTimeoutMs: set(drainTimeoutMs),
    bindPort: set(bindPort),
    backendPort: set(backendPort),
    electionPort: set(electionPort),
    clusterId: set(clusterId),
    ...(priority === undefined ? {} : { priority }),
  };
}

/**
 * Adds `manifest pod` and `manifest config` to the program. `write` receives what they print
 * (stdout by default; tests pass their own).
 */
export function registerManifestCommands(
  program: Command,
  write: (text: string) => void = (text) => {
    process.stdout.write(text);
  },
): Command {
  const manifest = program
    .command('manifest')
    .description('print a static pod manifest (manifest pod) or a matching config file (manifest config)');

  const shared = (cmd: Command) =>
    cmd
      .option(
        '--health-port <port>',
        'port of the health endpoint (config health.listen)',
        String(POD_DEFAULTS.healthPort),
      )
      .option(
        '--health-host <address>',
        'address of the health endpoint (config health.listen): 127.0.0.1, 0.0.0.0, ::1, :: or ' +
          "the node's own; the pod's probes follow it",
        POD_DEFAULTS.healthHost,
      )
      .option(
        '--drain-timeout <duration>',
        `config proxy.drainTimeout; the pod's grace period is this + ${GRACE_MARGIN_SECONDS}s`,
        formatDuration(POD_DEFAULTS.drainTimeoutMs),
      );

  shared(
    manifest
      .command('pod')
      .description('print the static pod for /etc/kubernetes/manifests/vipd.yaml')
      .option('--image <ref>', 'container image', DEFAULT_IMAGE)
      .option(
        '--config-dir <dir>',
        'host directory with vipd.yaml and the secret, mounted read-only at /etc/vipd',
        POD_DEFAULTS.configDir,
      )
      .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, POD_DEFAULTS.logLevel)
      .option('--memory-limit <quantity>', 'container memory limit', POD_DEFAULTS.memoryLimit)
      .option(
        '--witness',
        "the pod of a witness instead (vipd witness, for a worker node's /etc/kubernetes/manifests/" +
          `vipd-witness.yaml): no capabilities, no drain (a ${GRACE_MARGIN_SECONDS}s grace period; --drain-timeout ` +
          'does not apply)',
      ),
  ).action((flags: PodFlags) => {
    write(podManifest(parsePodFlags(flags)));
  });

  shared(
    manifest
      .command('config')
      .description('print a vipd.yaml for the given VIP and peers (the same file on every node)')
      .option(
        '--vip <cidr>',
        'the VIP with its prefix, e.g. 192.168.10.100/24 or fd00:10::100/64; a dual-stack pair as ' +
          '192.168.10.100/24,fd00:10::100/64 (required)',
      )
      .option(
        '--interface <name>',
        'the interface to hold it on, e.g. eth0 (default: on each node, the one that ' +
          'carries its address in --peers)',
      )
      .option('--peers <list>', 'every control-plane member as name=ip, comma-separated (required)')
      .option(
        '--witness <name=ip>',
        'a witness (role: witness: votes, never holds the VIP), listed after the members; repeat the flag ' +
          'or separate several by commas',
        (value: string, previous: string[]) => [...previous, value],
        [] as string[],
      )
      .option(
        '--node-name <name>',
        'write nodeName: a file for that one node (default: each node finds itself by ' +
          'VIPD_NODE_NAME or its host name)',
      )
      .option(
        '--bind-port <port>',
        'the port clients use on the VIP (the frontend binds 0.0.0.0 on it)',
        String(CONFIG_DEFAULTS.bindPort),
      )
      .option(
        '--backend-port <port>',
        "the apiservers' port on every peer (kubeadm --apiserver-bind-port); also " + 'track.apiserver.port',
        String(CONFIG_DEFAULTS.backendPort),
      )
      .option('--election-port <port>', 'election.port: UDP between the peers', String(CONFIG_DEFAULTS.electionPort))
      .option(
        '--cluster-id <id>',
        'election.clusterId: unique per cluster on a segment, 1-65535',
        String(CONFIG_DEFAULTS.clusterId),
      )
      .option('--priority <n>', 'election.priority, 1-254 (default: not written, 100)')
      .option(
        '--quorum <mode>',
        `election.quorum: ${quorumModes.join(', ')} (none: keepalived-like, a partition gives two holders)`,
        'auto',
      )
      .option('--secret-file <path>', 'election.secretFile, as seen inside the pod', '/etc/vipd/secret'),
  ).action((flags: ConfigFlags) => {
    write(configFile(parseConfigFlags(flags)));
  });

  return manifest;
}
