/**
 * Reads a config file: YAML -> schema -> cross-field rules -> a `FileConfig` (what the file alone
 * decides), then the host-side checks (host.ts) -> a resolved `Config`, plus the secret. Every
 * problem of a stage is reported at once, each naming its field path, the value and what was
 * expected, so an operator fixes a file in one pass rather than one error per restart.
 */
import { hostname } from 'node:os';
import { isMap, isSeq, LineCounter, parseDocument, stringify } from 'yaml';
import type { z } from 'zod';
import { ConfigError, describeError, echo } from '../errors';
import { MAX_UDP_SOURCES, MAX_UDP6_SOURCES } from '../native/bpf';
import { addressProblems } from './address-rules';
import { readBounded } from './bounded-read';
import type { Config, FileConfig, QuorumMode } from './config';
import { formatDuration } from './duration';
import { type HostView, hostChecks, readHost } from './host';
import { formatHostPort } from './host-port';
import { familyOf, sameAddress } from './ip';
import { NODE_NAME_ENV, resolveNodeName } from './node-name';
import { configSchema, type ParsedConfig } from './schema';

export type { Config, FileConfig, QuorumMode } from './config';

export interface Loaded<C extends FileConfig> {
  readonly config: C;
  /** The shared HMAC key. Kept apart from `config` so printing a config can never leak it. */
  readonly secret: Buffer;
}

export interface LoadedConfig extends Loaded<Config> {
  /** What the host-side checks found worth a word (configWarnings has the config's own). */
  readonly hostWarnings?: readonly string[];
}

const MIN_SECRET_BYTES = 16;
/** 32 random bytes in base64 are 45 with the newline: a secret file larger than this is some other file. */
const MAX_SECRET_BYTES = 4096;

export interface LoadOptions {
  /** Overrides the host name used when `nodeName` and VIPD_NODE_NAME are absent (tests, the lab). */
  readonly hostname?: string;
  /** Overrides process.env, where VIPD_NODE_NAME is read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Skip reading the secret file (`vipd check` on a machine without it still validates the rest). */
  readonly readSecret?: boolean;
}

export interface HostLoadOptions extends Omit<LoadOptions, 'readSecret'> {
  /** This host's interfaces; readHost() by default. */
  readonly host?: HostView;
}

/** A config is a few kilobytes; anything past this is not one (and would be read whole into memory). */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** YAML aliases a config may use: a few anchors are handy, an alias bomb expands exponentially. */
const MAX_ALIASES = 100;

/**
 * The config file checked against this host, with its secret: what `vipd run`, a reload and
 * `vipd check` use. Throws a ConfigError naming each field.
 */
export function loadConfigFile(file: string, options: HostLoadOptions = {}): LoadedConfig {
  const { config } = readConfigFile(file, { ...options, readSecret: false });
  return resolveOnHost(config, options.host ?? readHost());
}

/** The config file alone, on any machine (`vipd check --offline`, the CLI's health URL). */
export function readConfigFile(file: string, options: LoadOptions = {}): Loaded<FileConfig> {
  const read = readBounded(file, MAX_CONFIG_BYTES, 'a config file');
  if (read.why !== undefined) {
    throw new ConfigError([`${file}: cannot read the config file: ${read.why}`], 'VIPD_CONFIG_UNREADABLE');
  }
  return parseConfigText(read.bytes.toString('utf8'), file, options);
}

/** A config's text, as far as the text alone decides; the secret too unless readSecret is false. */
export function parseConfigText(text: string, file: string, options: LoadOptions = {}): Loaded<FileConfig> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: not valid YAML: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES }) ?? {};
  } catch (err) {
    // An alias bomb (or an alias to nothing) fails here, not in the parse.
    throw new ConfigError([`${file}: not valid YAML: ${echo(describeError(err))}`]);
  }
  const parsed = configSchema.safeParse(withDefaultFrontend(raw), { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => describeIssue(issue, (p) => lineOf(doc, lineCounter, p))));
  }
  const env = options.env ?? process.env;
  const config = resolve(parsed.data, file, env[NODE_NAME_ENV], options.hostname ?? hostname());
  const secret = options.readSecret === false ? Buffer.alloc(0) : readSecret(config.election.secretFile);
  return { config, secret };
}

/**
 * The host-side checks (host.ts) and the secret: problems of both in one error. The interface
 * comes from the host when the file leaves it out.
 */
export function resolveOnHost(config: FileConfig, host: HostView): LoadedConfig {
  const found = hostChecks(config, host);
  const problems = [...found.problems];
  let secret: Buffer = Buffer.alloc(0);
  try {
    secret = readSecret(config.election.secretFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (problems.length === 0) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0 || found.interface === undefined) throw new ConfigError(problems);
  return {
    config: {
      ...config,
      vip: { ...config.vip, interface: found.interface },
      interfaceFrom: config.vip.interface === undefined ? 'peer address' : 'vip.interface',
    },
    secret,
    hostWarnings: found.warnings,
  };
}

function resolve(data: ParsedConfig, file: string, envName: string | undefined, host: string): FileConfig {
  const problems: string[] = [];
  const named = resolveNodeName(data.peers, data.nodeName, envName, host, echo);
  if (!named.ok) problems.push(named.problem);
  const self = named.ok ? named.self : undefined;
  duplicates(data.peers.map((p) => p.name)).forEach((n) => {
    problems.push(`peers: the name "${n}" appears twice; each member needs its own`);
  });
  duplicates(data.peers.map((p) => p.address)).forEach((a) => {
    problems.push(`peers: the address "${a}" appears twice; each member needs its own`);
  });
  // The first peer bootstraps a new cluster by holding the VIP alone (docs/election.md): a member.
  if (data.peers[0]?.role === 'witness') {
    problems.push(
      `peers[0].role: got "witness"; the first peer listed is the bootstrap member of a new cluster, which ` +
        'holds the VIP alone until the others join: list a member first (the witness anywhere after)',
    );
  }

  const vipAddresses = data.vip.addresses.map((cidr) => {
    const [ip = '', prefix = '32'] = cidr.split('/');
    return { ip, prefixLength: Number(prefix), family: familyOf(ip) };
  });
  const vipField = (i: number) => (data.vip.addresses.length > 1 || i > 0 ? `vip.addresses[${i}]` : 'vip.address');
  vipAddresses.forEach(({ ip }, i) => {
    if (data.peers.some((p) => sameAddress(p.address, ip))) {
      problems.push(
        `${vipField(i)}: got "${data.vip.addresses[i]}", which is a peer's own address; the VIP must be an unused address`,
      );
    }
  });
  // One election socket, one family: every member's address is of the first member's family.
  const peerFamily = familyOf(data.peers[0]?.address ?? '');
  // The kernel filter on that socket compares each peer's address (native/bpf.ts): it has a limit.
  const maxPeers = (peerFamily === 6 ? MAX_UDP6_SOURCES : MAX_UDP_SOURCES) + 1;
  if (data.peers.length > maxPeers) {
    problems.push(
      `peers: ${data.peers.length} members, more than the ${maxPeers} an IPv${peerFamily} election takes ` +
        '(its kernel source filter compares each peer); a control plane needs 3 or 5',
    );
  }
  data.peers.forEach((p, i) => {
    if (familyOf(p.address) !== peerFamily) {
      problems.push(
        `peers[${i}].address: got "${p.address}", an IPv${familyOf(p.address)} address among IPv${peerFamily} ` +
          'members; the election runs over one family: give every member an address of the same family',
      );
    }
  });

  duplicates(data.proxy.frontends.map((f) => f.name)).forEach((n) => {
    problems.push(`proxy.frontends: the name "${n}" appears twice`);
  });
  duplicates(data.proxy.frontends.map((f) => String(f.bind.port))).forEach((p) => {
    problems.push(`proxy.frontends: two frontends bind port ${p}`);
  });
  data.proxy.frontends.forEach((f, i) => {
    if (f.healthCheck.timeout >= f.healthCheck.interval) {
      problems.push(
        `proxy.frontends[${i}].healthCheck.timeout: got "${formatDuration(f.healthCheck.timeout)}", expected less than interval (${formatDuration(f.healthCheck.interval)})`,
      );
    }
    if (f.hedgeDelay !== 'auto' && f.hedgeDelay >= f.connectTimeout) {
      problems.push(
        `proxy.frontends[${i}].hedgeDelay: got "${formatDuration(f.hedgeDelay)}", expected less than ` +
          `connectTimeout (${formatDuration(f.connectTimeout)}), "0s" (no hedging) or "auto"`,
      );
    }
  });
  const track = data.track.apiserver;
  if (track.timeout >= track.interval) {
    problems.push(
      `track.apiserver.timeout: got "${formatDuration(track.timeout)}", expected less than interval (${formatDuration(track.interval)})`,
    );
  }
  if (data.election.maxDeadAfter < data.election.deadAfter) {
    problems.push(
      `election.maxDeadAfter: got ${data.election.maxDeadAfter}, expected at least deadAfter (${data.election.deadAfter})`,
    );
  }
  if (data.health.listen.port === data.election.port) {
    problems.push(`health.listen: port ${data.health.listen.port} is also election.port`);
  }
  problems.push(...addressProblems(data, self));
  if (problems.length > 0 || !named.ok) throw new ConfigError(problems);

  // A witness is there to make a majority: with one listed, auto means majority whatever the count.
  const witnessed = data.peers.some((p) => p.role === 'witness');
  const quorum: QuorumMode =
    data.election.quorum === 'auto'
      ? data.peers.length >= 3 || witnessed
        ? 'majority'
        : 'none'
      : data.election.quorum;
  return {
    ...data,
    file,
    nodeName: named.self.name,
    nodeNameFrom: named.from,
    self: named.self,
    election: { ...data.election, quorum },
    vipAddress: vipAddresses[0] ?? { ip: '', prefixLength: 32, family: 4 },
    vipAddresses,
  };
}

/**
 * The default frontend listens on "[::]:6443" (both families) when anything in the file is IPv6 (a
 * VIP or a peer), else on "0.0.0.0:6443" (a host with IPv6 turned off cannot bind "::"): left on
 * 0.0.0.0, an IPv6 VIP would have no balancer, and its clients connection refused. A file that
 * lists its frontends keeps them as written.
 */
function withDefaultFrontend(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const file = raw as { vip?: unknown; peers?: unknown; proxy?: unknown };
  const proxy = file.proxy ?? {};
  if (proxy === null || typeof proxy !== 'object' || Array.isArray(proxy) || 'frontends' in proxy) return raw;
  const vip = (file.vip ?? {}) as { address?: unknown; addresses?: unknown };
  const addresses = [
    vip.address,
    ...(Array.isArray(vip.addresses) ? vip.addresses : []),
    ...(Array.isArray(file.peers) ? file.peers.map((p) => (p as { address?: unknown } | null)?.address) : []),
  ];
  if (!addresses.some((a) => typeof a === 'string' && a.includes(':'))) return raw;
  return { ...file, proxy: { ...proxy, frontends: [{ name: 'apiserver', bind: '[::]:6443', backendPort: 9443 }] } };
}

function readSecret(file: string): Buffer {
  const read = readBounded(file, MAX_SECRET_BYTES, 'a secret file');
  if (read.why !== undefined) {
    throw new ConfigError(
      [
        `election.secretFile: cannot read ${echo(file)}: ${read.why}; create it on every member with ` +
          `the same content (e.g. \`head -c 32 /dev/urandom | base64 > ${echo(file)}\`)`,
      ],
      'VIPD_SECRET_INVALID',
    );
  }
  // A trailing newline from `echo` or an editor must not make two members' keys differ.
  const secret = Buffer.from(read.bytes.toString('utf8').replace(/\s+$/, ''), 'utf8');
  if (secret.length < MIN_SECRET_BYTES) {
    throw new ConfigError(
      [`election.secretFile: ${echo(file)} holds ${secret.length} bytes, expected at least ${MIN_SECRET_BYTES}`],
      'VIPD_SECRET_INVALID',
    );
  }
  return secret;
}

function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const v of values) (seen.has(v) ? twice : seen).add(v);
  return [...twice];
}

type Issue = z.core.$ZodIssue;

function describeIssue(issue: Issue, lineOf: (path: readonly PropertyKey[]) => string): string {
  const path = formatPath(issue.path);
  const where = lineOf(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map(
        (k) =>
          `${formatPath([...issue.path, k])}${lineOf([...issue.path, k])}: unknown key (a typo? see docs/configuration.md)`,
      )
      .join('\n  - ');
  }
  const input = 'input' in issue ? issue.input : undefined;
  if (input === undefined) return `${path}${where}: missing; ${issue.message}`;
  return `${path}${where}: got ${echo(input)}, ${issue.message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc === '' ? String(key) : `${acc}.${String(key)}`),
    '',
  );
}

function lineOf(doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: readonly PropertyKey[]): string {
  let node: unknown = doc.contents;
  let key: unknown;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => (item.key as { value?: unknown } | null)?.value === part);
      if (pair === undefined) break;
      key = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof part === 'number') {
      node = node.items[part];
      key = node;
    } else break;
  }
  const range = (key as { range?: [number, number, number] } | undefined)?.range;
  if (range === undefined) return '';
  const pos = counter.linePos(range[0]);
  return ` (line ${pos.line})`;
}

/** The effective config as YAML with durations as strings, for `vipd check`. Holds no secret. */
export function effectiveConfigYaml(config: FileConfig): string {
  const durationKeys = new Set([
    'interval',
    'lifetime',
    'preemptDelay',
    'burstInterval',
    'refresh',
    'timeout',
    'connectTimeout',
    'idleTimeout',
    'drainTimeout',
    'hedgeDelay',
    'finTimeout',
  ]);
  const plain = JSON.parse(
    JSON.stringify(config, (key, value: unknown) => {
      if (['file', 'self', 'vipAddress', 'vipAddresses', 'nodeNameFrom', 'interfaceFrom'].includes(key))
        return undefined;
      if (durationKeys.has(key) && typeof value === 'number') return formatDuration(value);
      if ((key === 'bind' || key === 'listen') && value !== null && typeof value === 'object') {
        const hp = value as { host: string; port: number };
        return formatHostPort(hp.host, hp.port);
      }
      // One of the two forms, as a file may have it (both at once is an error).
      if (key === 'vip' && value !== null && typeof value === 'object') {
        const { address, addresses, ...rest } = value as { address: string; addresses: string[] };
        return addresses.length > 1 ? { addresses, ...rest } : { address, ...rest };
      }
      return value;
    }),
  ) as Record<string, unknown>;
  return stringify(plain);
}
