/**
 * The configuration file's shape: every key, its default and what a valid value looks like.
 * docs/configuration.md documents the same keys for people; this file is the source of truth
 * (test/config-docs.test.ts holds the docs to it: every key named, every number's range given).
 *
 * Objects are strict: an unknown key is an error, because a typo ("preemt: false") that is
 * silently ignored is worse than a daemon that refuses to start.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { parseDuration } from './duration';
import { canonicalAddress, canonicalIpv6, parseHostPort, unbracketedIpv6 } from './host-port';

const expect = (what: string) => ({ error: `expected ${what}` });

/** A duration string ("200ms", "2s") parsed to milliseconds, within [minMs, maxMs]. */
export function duration(minMs: number, maxMs: number) {
  const range = `a duration from ${minMs}ms to ${maxMs}ms, such as "200ms" or "2s"`;
  return z.string(expect(range)).transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.addIssue({ code: 'custom', message: `expected ${range}`, input: text });
      return z.NEVER;
    }
    return ms;
  });
}

/** "auto", or a duration as duration() takes it. */
function durationOrAuto(minMs: number, maxMs: number) {
  const range = `"auto" or a duration from ${minMs}ms to ${maxMs}ms, such as "50ms"`;
  return z.string(expect(range)).transform((text, ctx): number | 'auto' => {
    if (text === 'auto') return 'auto';
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.addIssue({ code: 'custom', message: `expected ${range}`, input: text });
      return z.NEVER;
    }
    return ms;
  });
}

/** A duration of whole seconds, such as "2s", within [minS, maxS]; in milliseconds. */
function wholeSeconds(minS: number, maxS: number) {
  const range = `a whole number of seconds from ${minS}s to ${maxS}s, such as "1s"`;
  return z.string(expect(range)).transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms % 1000 !== 0 || ms < minS * 1000 || ms > maxS * 1000) {
      ctx.addIssue({ code: 'custom', message: `expected ${range}`, input: text });
      return z.NEVER;
    }
    return ms;
  });
}

const int = (min: number, max: number) =>
  z
    .number(expect(`an integer from ${min} to ${max}`))
    .int(expect(`an integer from ${min} to ${max}`))
    .min(min, expect(`an integer from ${min} to ${max}`))
    .max(max, expect(`an integer from ${min} to ${max}`));
const port = () => int(1, 65535);
/**
 * An IPv4 or IPv6 address, IPv6 in its canonical text (RFC 5952, as the kernel reports a datagram's
 * source), so a peer written "FD00::0B" is the peer a heartbeat from fd00::b comes from.
 */
const ipAddress = () =>
  z
    .union([z.ipv4(), z.ipv6()], expect('an IPv4 or IPv6 address such as "192.168.10.11" or "fd00:10::11"'))
    .transform((text, ctx) => canonicalIp(text, ctx));
/** "ADDRESS/PREFIX" of either family, IPv6 canonical as above. */
const vipCidr = () =>
  z
    .union(
      [z.cidrv4(), z.cidrv6()],
      expect('an IPv4 or IPv6 address with a prefix length, such as "192.168.10.100/24" or "fd00:10::100/64"'),
    )
    .transform((text, ctx) => {
      const [ip = '', prefix = ''] = text.split('/');
      return `${canonicalIp(ip, ctx)}/${prefix}`;
    });

/**
 * IPv6 in canonical text. An IPv4 address written as IPv6 (IPv4-mapped "::ffff:10.0.0.11", or
 * IPv4-compatible "::10.0.0.11") is refused with the IPv4 address to write instead: the kernel reports
 * such a peer's datagrams from the IPv4 address, and the parsers disagree on the compatible form.
 */
function canonicalIp(text: string, ctx: z.RefinementCtx): string {
  if (!text.includes(':')) return text;
  const canonical = canonicalIpv6(text);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (canonical === undefined || dotted !== undefined) {
    const v4 = dotted ?? ipaddr.IPv6.parse(text).toIPv4Address().toString();
    ctx.addIssue({
      code: 'custom',
      input: text,
      message: `expected an IPv4 address written as one ("${v4}"), not inside an IPv6 address`,
    });
    return z.NEVER;
  }
  return canonical;
}
const name = () =>
  z
    .string(expect('a name'))
    .regex(
      /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/,
      expect('a lowercase DNS-1123 name of at most 63 characters, such as a Kubernetes node name'),
    );
const bool = () => z.boolean(expect('true or false'));
/**
 * "ADDRESS:PORT" with an IPv4 address; with `ipv6` (a frontend's bind) also "[ADDRESS]:PORT" with an
 * IPv6 one, kept canonical (host-port.ts). "[::]:6443" takes IPv4 clients too (relay.cc).
 */
const hostPort = (ipv6 = false) =>
  z
    .string(
      expect(
        ipv6 ? '"ADDRESS:PORT" or "[IPV6]:PORT", such as "0.0.0.0:6443"' : '"ADDRESS:PORT", such as "0.0.0.0:6443"',
      ),
    )
    .transform((text, ctx) => {
      const parsed = parseHostPort(text, ipv6);
      if (parsed === undefined) {
        // ":::6443" or "fd00::1:6443": the likely meaning, bracketed.
        const cut = text.lastIndexOf(':');
        const v6 = ipv6 && unbracketedIpv6(text) ? canonicalIpv6(text.slice(0, cut)) : undefined;
        const message = ipv6
          ? 'expected "ADDRESS:PORT" with an IPv4 address or "[ADDRESS]:PORT" with an IPv6 one, such as ' +
            '"0.0.0.0:6443", "[::]:6443" (IPv6 and IPv4) or "[fd00::1]:6443"' +
            (v6 === undefined ? '' : `; an IPv6 address goes in brackets: "[${v6}]${text.slice(cut)}"`)
          : 'expected "ADDRESS:PORT" with an IPv4 address, such as "0.0.0.0:6443"';
        ctx.addIssue({ code: 'custom', message, input: text });
        return z.NEVER;
      }
      return parsed;
    });
/** A backend's address: IPv4, or IPv6 (no brackets) in its canonical text (host-port.ts). */
const backendAddress = () =>
  z.string(expect('an IPv4 or IPv6 address such as "192.168.10.11" or "fd00::11"')).transform((text, ctx) => {
    const address = canonicalAddress(text);
    if (address === undefined) {
      const inBrackets = /^\[.*\]$/.test(text) ? canonicalIpv6(text.slice(1, -1)) : undefined;
      const message =
        inBrackets !== undefined
          ? `expected an IPv6 address without brackets: "${inBrackets}"`
          : 'expected an IPv4 or IPv6 address such as "192.168.10.11" or "fd00::11"';
      ctx.addIssue({ code: 'custom', message, input: text });
      return z.NEVER;
    }
    return address;
  });

export const peerRoles = ['member', 'witness'] as const;

export const peerSchema = z
  .object({
    name: name(),
    address: ipAddress(),
    /**
     * member: a candidate that holds the VIP and runs the balancer. witness: votes and acknowledges
     * (counts for the majority) and never holds the VIP; the third voter of a two-node control plane.
     */
    role: z.enum(peerRoles, expect(`one of ${peerRoles.join(', ')}`)).default('member'),
  })
  .strict();

export const garpSchema = z
  .object({
    /** Gratuitous ARPs sent on takeover: one at once, the rest `burstInterval` apart. */
    burst: int(1, 100).default(5),
    burstInterval: duration(10, 60_000).default(200),
    /** A GARP every `refresh` while master; "0s" turns it off. Stale switch caches are a known failure. */
    refresh: duration(0, 3_600_000).default(10_000),
  })
  .strict();

/** `vip`'s fields one by one (the manifest generator validates flags with them). */
export const vipFieldsSchema = z
  .object({
    /** The VIP (either family); `addresses` instead for a dual-stack pair. */
    address: vipCidr().optional(),
    /** Dual stack: one VIP of each family, held together by one election (the first is the primary). */
    addresses: z
      .array(vipCidr(), expect('a list of one or two VIPs, at most one of each family'))
      .min(1, expect('a list of one or two VIPs, at most one of each family'))
      .max(2, expect('a list of one or two VIPs, at most one of each family'))
      .optional(),
    /** Unset: the interface that carries this node's own peer address (config/host.ts). */
    interface: z
      .string(expect('an interface name such as "eth0"'))
      .regex(/^[^\s/]{1,15}$/, expect('an interface name of 1 to 15 characters, such as "eth0"'))
      .optional(),
    garp: garpSchema.prefault({}),
    /** Link down on `interface` makes this member FAULT (it releases the VIP and stops claiming). */
    trackInterface: bool().default(true),
    /** While master, watch ARP for another MAC claiming the VIP. */
    conflictDetection: bool().default(true),
    /**
     * The VIP's address lifetime in the kernel (valid_lft), renewed by the master while its lease
     * holds: a stopped, hung or killed vipd loses the VIP by itself this long after its last renewal.
     * Whole seconds (the kernel's unit).
     */
    lifetime: wholeSeconds(1, 3600).default(1000),
  })
  .strict();

export const vipSchema = vipFieldsSchema
  .superRefine((vip, ctx) => {
    if (vip.address !== undefined && vip.addresses !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['addresses'],
        input: vip.addresses,
        message: 'set vip.address or vip.addresses, not both (vip.addresses: [IPv4 VIP, IPv6 VIP] for dual stack)',
      });
    } else if (vip.address === undefined && vip.addresses === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['address'],
        input: vip.address,
        message: 'expected the VIP, such as "192.168.10.100/24" (or vip.addresses for a dual-stack pair)',
      });
    }
    const list = vip.addresses ?? [];
    if (list.length === 2 && list[0]?.includes(':') === list[1]?.includes(':')) {
      ctx.addIssue({
        code: 'custom',
        path: ['addresses', 1],
        input: list[1],
        message: `got two ${list[0]?.includes(':') ? 'IPv6' : 'IPv4'} VIPs; vip.addresses takes at most one of each family`,
      });
    }
  })
  .transform(({ address, addresses, ...rest }) => {
    const all = addresses ?? (address === undefined ? [] : [address]);
    return { ...rest, address: all[0] ?? '', addresses: all };
  });

export const quorumModes = ['auto', 'majority', 'none'] as const;

export const electionSchema = z
  .object({
    /** Like VRRP's virtual_router_id: separates clusters that share peers or a secret. */
    clusterId: int(1, 65535).default(1),
    port: port().default(7580),
    interval: duration(20, 10_000).default(100),
    deadAfter: int(2, 100).default(3),
    /** The most the dead interval stretches to on a lossy link, in heartbeats (at least deadAfter). */
    maxDeadAfter: int(2, 1000).default(30),
    priority: int(1, 254).default(100),
    preempt: bool().default(true),
    preemptDelay: duration(0, 3_600_000).default(0),
    /** auto: majority with 3 or more members, none (keepalived-like) with fewer. */
    quorum: z.enum(quorumModes, expect(`one of ${quorumModes.join(', ')}`)).default('auto'),
    /** A file holding the shared HMAC secret (at least 16 bytes). Never the secret itself. */
    secretFile: z.string(expect('a path to a file holding the shared secret')).min(1, expect('a non-empty path')),
    /**
     * Where this member records that the cluster has formed (docs/election.md, "Bootstrap"): it must
     * survive restarts of the pod (a hostPath in the static pod).
     */
    stateDir: z
      .string(expect('an absolute path to a directory'))
      .regex(/^\//, expect('an absolute path to a directory'))
      .default('/var/lib/vipd'),
  })
  .strict();

export const healthCheckTypes = ['https', 'http', 'tcp'] as const;

/**
 * The fields every health check has, a frontend's `healthCheck` and `track.apiserver` alike: what to
 * ask for, how often, how long to wait, and how many results in a row change the verdict (rise/fall).
 * Only its shape is used, spread into each check's own strict object.
 */
const checkFieldsSchema = z.object({
  path: z
    .string(expect('a URL path such as "/readyz"'))
    .regex(/^\//, expect('a URL path starting with "/"'))
    .default('/readyz'),
  interval: duration(100, 3_600_000).default(2000),
  timeout: duration(10, 60_000).default(1000),
  rise: int(1, 100).default(2),
  fall: int(1, 100).default(3),
});

export const healthCheckSchema = z
  .object({
    type: z.enum(healthCheckTypes, expect(`one of ${healthCheckTypes.join(', ')}`)).default('https'),
    ...checkFieldsSchema.shape,
    /**
     * Passive checks (HAProxy's observe layer4 + on-error mark-down): a refused, unreachable or
     * timed-out connect marks the backend down at once; `rise` passing checks bring it back.
     */
    observe: bool().default(true),
    /** TLS for https checks. Verification is off by default: apiserver certs name the node, not us. */
    tls: z
      .object({
        verify: bool().default(false),
        caFile: z.string(expect('a path to a PEM CA bundle')).optional(),
        serverName: z.string(expect('a TLS server name')).optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export const balanceModes = ['roundrobin', 'leastconn'] as const;

export const backendSchema = z
  .object({
    name: name(),
    address: backendAddress(),
    port: port(),
  })
  .strict();

export const frontendSchema = z
  .object({
    name: name(),
    bind: hostPort(true),
    /** Backends are every peer on this port, unless `backends` lists them. */
    backendPort: port().default(9443),
    backends: z.array(backendSchema, expect('a list of backends')).min(1, expect('at least one backend')).optional(),
    balance: z.enum(balanceModes, expect(`one of ${balanceModes.join(', ')}`)).default('roundrobin'),
    connectTimeout: duration(10, 60_000).default(5000),
    /**
     * A connect not done after this long gets a second one to another backend; the first to
     * connect wins. "auto": twice the p99 of recent connect times, 20 ms at least, a quarter of
     * connectTimeout at most (src/proxy/hedge-delay.ts); "0s": no hedging.
     */
    hedgeDelay: durationOrAuto(0, 60_000).default('auto'),
    /** Further backends tried when a connect fails, like HAProxy's retries + option redispatch. */
    retries: int(0, 10).default(3),
    /** "0s" (the default) means no idle timeout: watches and exec sessions run for hours. */
    idleTimeout: duration(0, 86_400_000).default(0),
    /**
     * After one side's FIN, the pair is closed if the side that sent it sees no traffic for this
     * long (HAProxy's timeout client-fin / server-fin); "0s": never.
     */
    finTimeout: duration(0, 86_400_000).default(30_000),
    /** Close a backend's connections when it is marked down (HAProxy's on-marked-down shutdown-sessions). */
    shutdownOnMarkedDown: bool().default(true),
    healthCheck: healthCheckSchema.prefault({}),
  })
  .strict();

export const proxySchema = z
  .object({
    enabled: bool().default(true),
    /** On a graceful stop, connections may drain this long before they are closed. */
    drainTimeout: duration(0, 600_000).default(20_000),
    /** Threads relaying each frontend's connections (each its own epoll; the kernel spreads accepts over them). */
    threads: int(1, 64).default(1),
    frontends: z
      .array(frontendSchema, expect('a list of frontends'))
      .prefault([{ name: 'apiserver', bind: '0.0.0.0:6443', backendPort: 9443 }]),
  })
  .strict();

export const trackModes = ['weight', 'ineligible'] as const;

export const trackApiserverSchema = z
  .object({
    enabled: bool().default(true),
    /** This node's own apiserver: https://<node address>:<port><path>. */
    port: port().default(9443),
    ...checkFieldsSchema.shape,
    /** weight: lower the priority by `weight` while failing; ineligible: FAULT while failing. */
    mode: z.enum(trackModes, expect(`one of ${trackModes.join(', ')}`)).default('weight'),
    weight: int(1, 253).default(50),
  })
  .strict();

export const healthSchema = z
  .object({
    /** /healthz, /readyz, /metrics and /status. Loopback by default: it is not authenticated. */
    listen: hostPort(true).prefault('127.0.0.1:7581'),
  })
  .strict();

export const configSchema = z
  .object({
    /** This member's name in `peers`; unset: VIPD_NODE_NAME, else the host name (config/node-name.ts). */
    nodeName: name().optional(),
    peers: z
      .array(peerSchema, expect('a list of every control-plane member, this node included'))
      .min(1, expect('at least one peer (this node)')),
    vip: vipSchema,
    election: electionSchema,
    proxy: proxySchema.prefault({}),
    track: z
      .object({ apiserver: trackApiserverSchema.prefault({}) })
      .strict()
      .prefault({}),
    health: healthSchema.prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type Peer = z.output<typeof peerSchema>;
export type FrontendConfig = z.output<typeof frontendSchema>;
export type CheckFieldsConfig = z.output<typeof checkFieldsSchema>;
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
export type ElectionConfig = z.output<typeof electionSchema>;
/** `vip` as the daemon runs it: `interface` filled in from the host when the file leaves it out. */
export type VipConfig = Omit<z.output<typeof vipSchema>, 'interface'> & { readonly interface: string };
export type TrackApiserverConfig = z.output<typeof trackApiserverSchema>;
