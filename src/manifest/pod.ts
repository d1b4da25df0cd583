/**
 * The static pod that runs vipd on a control-plane node, and a config file to go with it, as pure
 * functions of their options (kube-vip's `manifest pod`, without the kubeconfig). `vipd manifest
 * pod|config` prints them; `static-pods/vipd.yaml` is `podManifest()` with the defaults, and a test
 * keeps the two identical. `witness: true` makes the pod of a witness instead (`vipd witness`, the
 * third voter of a two-node control plane, on a worker node: no capabilities, no drain), and
 * `static-pods/vipd-witness.yaml` is that one with the defaults.
 *
 * The pod and the config must agree on two numbers: the health port (the probes call it) and the
 * drain timeout (the grace period must outlast it). Both functions take the same options for them.
 */

import { posix } from 'node:path';
// Types only (erased at compile time): kubernetes-models is a devDependency. Typing the object as
// a Pod makes tsc reject a misspelt field ("readOnlyRootFileSystem") that the API server would
// silently drop.
import type { IPod } from 'kubernetes-models/v1/Pod';
import { stringify } from 'yaml';
import { formatDuration } from '../config/duration';
import { formatHostPort } from '../config/host-port';
import { parseConfigText } from '../config/load';
import { electionSchema, proxySchema } from '../config/schema';
import { ConfigError } from '../errors';
import type { LogLevel } from '../log/logger';
import { VERSION } from '../version';

/** Where the config directory is mounted inside the container, whatever its host path. */
export const CONTAINER_CONFIG_DIR = '/etc/vipd';
/** election.stateDir's default: the same path on the host and in the container. */
const STATE_DIR = '/var/lib/vipd';
export const CONTAINER_CONFIG_FILE = `${CONTAINER_CONFIG_DIR}/vipd.yaml`;

/** Seconds the kubelet waits after the drain timeout before SIGKILL (see terminationGracePeriodSeconds). */
export const GRACE_MARGIN_SECONDS = 10;

/** The priority the system-node-critical class stands for, written out as kubeadm does. */
const SYSTEM_NODE_CRITICAL_PRIORITY = 2_000_001_000;

export interface PodOptions {
  /** Container image reference. */
  readonly image: string;
  /** Host directory holding vipd.yaml and the secret; mounted read-only at /etc/vipd. */
  readonly configDir: string;
  /** Port of the health endpoint (the config's health.listen). */
  readonly healthPort: number;
  /**
   * The address health.listen binds: loopback (the default), 0.0.0.0, or this node's own address
   * (for a Prometheus outside the node). The probes follow it (probeHost).
   */
  readonly healthHost: string;
  readonly logLevel: LogLevel;
  /** The config's proxy.drainTimeout, in milliseconds. */
  readonly drainTimeoutMs: number;
  /** Memory limit, a Kubernetes quantity such as "256Mi". */
  readonly memoryLimit: string;
  /**
   * The pod of a witness (`vipd witness`): votes, holds no VIP, runs no balancer, so no
   * capabilities and no drain (drainTimeoutMs does not apply). Absent: a member's.
   */
  readonly witness?: boolean;
}

export const DEFAULT_IMAGE = `ghcr.io/vipd/vipd:${VERSION}`;

export const POD_DEFAULTS: PodOptions = {
  image: DEFAULT_IMAGE,
  configDir: '/etc/vipd',
  healthPort: 7581,
  healthHost: '127.0.0.1',
  logLevel: 'info',
  drainTimeoutMs: 20_000,
  memoryLimit: '256Mi',
  witness: false,
};

/**
 * Where the kubelet's probes reach a health endpoint bound to `listen`. hostNetwork: the kubelet
 * probes from the node's own network namespace, so loopback is vipd's loopback, and a probe
 * without a host goes to the pod IP, which is the node's address. So: loopback and 0.0.0.0 are
 * probed on 127.0.0.1; a node address by leaving the host out, which makes one manifest right on
 * every node although each binds its own address. A probe hard-wired to 127.0.0.1 against a
 * node-address listener would fail, and the kubelet restart vipd (a failover) again and again.
 */
function probeHost(listen: string): string | undefined {
  // "::" is dual-stack (Node binds it so): 127.0.0.1 reaches it too.
  if (listen === '0.0.0.0' || listen === '::') return '127.0.0.1';
  if (listen.startsWith('127.') || listen === '::1') return listen;
  return undefined;
}

/** The grace period for a drain timeout: the drain plus a margin for the handover and exit. */
export function terminationGracePeriodSeconds(drainTimeoutMs: number): number {
  return Math.ceil(drainTimeoutMs / 1000) + GRACE_MARGIN_SECONDS;
}

/** Bytes in a Kubernetes memory quantity ("256Mi", "1G", "300000000"), or undefined if not one. */
export function quantityBytes(quantity: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (m === null) return undefined;
  const unit: Record<string, number> = {
    '': 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Math.floor(Number(m[1]) * (unit[m[2] ?? ''] as number));
}

/** The pod as an object (what `podManifest` prints), for tests and for callers that add to it. */
export function podObject(options: Partial<PodOptions> = {}): IPod {
  const o: PodOptions = { ...POD_DEFAULTS, ...options };
  const witness = o.witness === true;
  const limitBytes = quantityBytes(o.memoryLimit);
  if (limitBytes === undefined)
    throw new ConfigError([
      `memoryLimit: got ${JSON.stringify(o.memoryLimit)}, expected a Kubernetes quantity such as "256Mi"`,
    ]);
  if (!posix.isAbsolute(o.configDir))
    throw new ConfigError([`configDir: got ${JSON.stringify(o.configDir)}, expected an absolute path`]);
  const host = probeHost(o.healthHost);
  const probe = (path: string) => ({
    httpGet: { ...(host === undefined ? {} : { host }), port: o.healthPort, path, scheme: 'HTTP' as const },
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: witness ? 'vipd-witness' : 'vipd',
      // The mirror pod shows up next to kube-apiserver and etcd, where operators look.
      namespace: 'kube-system',
      // kubeadm's labels for its own static pods: `kubectl -n kube-system get pods -l tier=control-plane`.
      // A witness runs on a worker node and is no part of the control plane's serving path: its own label.
      labels: witness ? { component: 'vipd-witness' } : { component: 'vipd', tier: 'control-plane' },
    },
    spec: {
      // The VIP, gratuitous ARP, the heartbeats and the :6443 balancer all live on the node's own
      // interfaces; a pod network does not exist yet when kubeadm init needs the VIP. A witness's
      // heartbeats too: the members send to the node's address and accept heartbeats only from it.
      hostNetwork: true,
      // Not ClusterFirstWithHostNet: cluster DNS is CoreDNS behind the very apiserver vipd fronts,
      // absent during bootstrap and unreachable when the control plane is down, which is exactly
      // when vipd must work. vipd resolves no names (peers and backends are IP literals), so
      // the node's own resolv.conf ("Default") is the only honest choice.
      dnsPolicy: 'Default',
      // Never evicted or preempted before the workloads it serves. The number is the class's
      // value, written out as kubeadm does for its static pods (admission accepts it when equal).
      priorityClassName: 'system-node-critical',
      priority: SYSTEM_NODE_CRITICAL_PRIORITY,
      // vipd never calls the Kubernetes API (the election is peer to peer): no token to leak.
      automountServiceAccountToken: false,
      // SIGTERM makes a master hand the VIP to its successor at once, then lets proxied
      // connections drain for proxy.drainTimeout. The kubelet's SIGKILL must come after that,
      // with a margin for the handover, closing the listeners and exiting. A witness has nothing to
      // drain: it sends its resign and exits, well within the margin alone.
      terminationGracePeriodSeconds: witness ? GRACE_MARGIN_SECONDS : terminationGracePeriodSeconds(o.drainTimeoutMs),
      securityContext: {
        // As kubeadm's own static pods. The default profile allows netlink and AF_PACKET sockets.
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'vipd',
          image: o.image,
          // A static pod starts before any registry may be reachable (and the VIP, which a pull
          // through a cluster mirror might need, is what this pod provides): never pull a present image.
          imagePullPolicy: 'IfNotPresent',
          command: ['vipd', witness ? 'witness' : 'run', '--config', CONTAINER_CONFIG_FILE, '--log-level', o.logLevel],
          env: [
            {
              // V8 sizes its heap from the host's memory, not the container limit; without a cap it
              // may grow past the limit and be OOM-killed (SIGKILL: no handover, VIP left behind until
              // the next start). Three quarters of the limit leaves room for buffers and the addon.
              name: 'NODE_OPTIONS',
              value: `--max-old-space-size=${Math.max(32, Math.floor((limitBytes * 0.75) / 2 ** 20))}`,
            },
            {
              // The node's Kubernetes name (--hostname-override included), from the downward API: the
              // kubelet fills spec.nodeName of a static pod itself and resolves the field locally, so
              // it is there before any apiserver exists. The file's nodeName, if set, still wins. A
              // witness's peer entry is named after the node it runs on, like a member's.
              name: 'VIPD_NODE_NAME',
              valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } },
            },
          ],
          resources: {
            requests: { cpu: '50m', memory: '64Mi' },
            // A memory limit, but no CPU limit: CFS throttling would stall heartbeats for whole
            // periods and look like a dead master to the peers (a needless failover).
            limits: { memory: o.memoryLimit },
          },
          securityContext: {
            // A member: root for the capabilities (the secret file is root's 0600), but only these two:
            // NET_ADMIN to add/remove the VIP through netlink, NET_RAW for the packet socket that
            // sends gratuitous ARP and watches for conflicts, and for the raw IPv4 socket that sends the
            // takeover's tickle ACKs. Ports are all above 1024.
            // A witness: none at all. It opens one UDP socket (its classic BPF filter needs no
            // capability) and reads and writes root's own files (the 0600 secret, the state
            // directory), which uid 0 may do without CAP_DAC_OVERRIDE.
            runAsUser: 0,
            runAsGroup: 0,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: witness ? { drop: ['ALL'] } : { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
          },
          // /healthz: the daemon's loops run. A few missed periods before a restart, because
          // restarting a master is a failover.
          livenessProbe: {
            ...probe('/healthz'),
            initialDelaySeconds: 10,
            periodSeconds: 10,
            timeoutSeconds: 5,
            failureThreshold: 3,
          },
          // /readyz: config loaded, election running, the balancer listening (a witness has none).
          readinessProbe: { ...probe('/readyz'), periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
          volumeMounts: [
            { name: 'config', mountPath: CONTAINER_CONFIG_DIR, readOnly: true },
            // election.stateDir: the record that the cluster has formed must outlive the pod (a
            // witness's too: restarted, it is counted again at once).
            { name: 'state', mountPath: STATE_DIR },
          ],
        },
      ],
      volumes: [
        {
          name: 'config',
          // Directory, not DirectoryOrCreate: a missing /etc/vipd should stop the pod with a clear
          // event, not start vipd on an empty directory.
          hostPath: { path: posix.normalize(o.configDir), type: 'Directory' },
        },
        {
          name: 'state',
          hostPath: { path: STATE_DIR, type: 'DirectoryOrCreate' },
        },
      ],
    },
  };
}

/** The static pod manifest as YAML, with a header saying where it goes and how it was made. */
export function podManifest(options: Partial<PodOptions> = {}): string {
  const header = (
    options.witness === true
      ? [
          '# vipd witness: the third voter of a two-node control plane. It votes and acknowledges, never',
          '# holds the VIP, runs no balancer and needs no capabilities. Copy to',
          '# /etc/kubernetes/manifests/vipd-witness.yaml on the one node (a worker, or any node with a kubelet)',
          "# whose name and address are the witness's entry in peers (role: witness); the members' config and",
          '# secret, unchanged, go in the mounted directory (vipd.yaml, secret). See docs/kubeadm.md,',
          '# "Two control-plane nodes and a witness".',
          `# Generated by \`vipd manifest pod --witness\` (vipd ${VERSION}); regenerate it rather than edit it.`,
        ]
      : [
          '# vipd: virtual IP + apiserver balancer, one static pod per control-plane node.',
          '# Copy to /etc/kubernetes/manifests/vipd.yaml on every control-plane node; the config and the',
          '# secret go in the mounted directory (vipd.yaml, secret). See docs/kubeadm.md.',
          `# Generated by \`vipd manifest pod\` (vipd ${VERSION}); regenerate it rather than edit it.`,
        ]
  ).join('\n');
  return `${header}\n${stringify(podObject(options), { lineWidth: 0 })}`;
}

export interface ConfigFileOptions {
  /** The VIP with its prefix, e.g. "192.168.10.100/24". */
  readonly vip: string;
  /** Absent: not written, so each node takes the interface that carries its own address in `peers`. */
  readonly interface?: string;
  /** Every control-plane member, this node included. */
  readonly peers: readonly { readonly name: string; readonly address: string }[];
  /**
   * Witnesses, written after the members with `role: witness`: they vote and never hold the VIP
   * (the third voter of a two-node control plane). Names and addresses other than the members'.
   */
  readonly witnesses?: readonly { readonly name: string; readonly address: string }[];
  /** Written as nodeName: a file for that one node. Absent: each node finds itself (node-name.ts). */
  readonly nodeName?: string;
  /** The frontend's bind port (clients use VIP:bindPort); 6443 by default. */
  readonly bindPort?: number;
  /** The apiservers' port: the frontend's backendPort and track.apiserver.port; 9443 by default. */
  readonly backendPort?: number;
  readonly electionPort?: number;
  readonly clusterId?: number;
  /** Written only when given: the same priority for every node that uses the file. */
  readonly priority?: number;
  /** Written as election.quorum; `none` relaxes safety (bootstrap only, see docs/kubeadm.md). */
  readonly quorum?: 'auto' | 'majority' | 'none';
  readonly secretFile?: string;
  /** Must match the pod's healthPort. */
  readonly healthPort?: number;
  /** Must match the pod's healthHost. */
  readonly healthHost?: string;
  /** Must match the pod's drainTimeoutMs (its grace period is built from it). */
  readonly drainTimeoutMs?: number;
}

/** The config schema's defaults for what `manifest config` writes, so the two cannot drift. */
export const CONFIG_DEFAULTS = (() => {
  const frontend = proxySchema.parse({}).frontends[0];
  return {
    bindPort: frontend?.bind.port ?? 6443,
    backendPort: frontend?.backendPort ?? 9443,
    electionPort: electionSchema.shape.port.parse(undefined),
    clusterId: electionSchema.shape.clusterId.parse(undefined),
  };
})();

/** A YAML scalar for a value (quoted when YAML needs it), for the config template. */
const scalar = (value: string | number): string => stringify(value).trimEnd();

/**
 * A vipd.yaml for the given VIP, interface and peers: only what differs between clusters, every
 * other key at its documented default. The result passes vipd's own loader (checked here, so a
 * generated file can never be one `vipd check` refuses).
 */
export function configFile(options: ConfigFileOptions): string {
  const quorum = options.quorum ?? 'auto';
  const secretFile = options.secretFile ?? `${CONTAINER_CONFIG_DIR}/secret`;
  const healthPort = options.healthPort ?? POD_DEFAULTS.healthPort;
  const healthHost = options.healthHost ?? POD_DEFAULTS.healthHost;
  const drainTimeoutMs = options.drainTimeoutMs ?? POD_DEFAULTS.drainTimeoutMs;
  const bindPort = options.bindPort ?? CONFIG_DEFAULTS.bindPort;
  const backendPort = options.backendPort ?? CONFIG_DEFAULTS.backendPort;
  const witnesses = options.witnesses ?? [];
  const everyNode = witnesses.length === 0 ? 'member' : 'node, the witness too';
  const quorumNote =
    quorum === 'none'
      ? '# any member alone may hold the VIP, as with keepalived (a partition gives two holders)'
      : quorum === 'auto'
        ? witnesses.length > 0
          ? '# majority, since a witness is listed: once the cluster has formed, an isolated node never holds the VIP'
          : '# majority with 3+ members: once the cluster has formed, an isolated node never holds the VIP'
        : '# once the cluster has formed, only a member that hears a majority of peers may hold the VIP';
  const vips = options.vip.split(',').map((v) => v.trim());
  const firstVip = vips[0]?.split('/')[0] ?? '';
  const endpoint = firstVip.includes(':') ? `[${firstVip}]` : firstVip;
  // An IPv6 VIP or IPv6 peers: the balancer listens on [::] (dual-stack: IPv4 clients too).
  const ipv6 = vips.some((v) => v.includes(':')) || options.peers.some((p) => p.address.includes(':'));
  const lines = [
    `# vipd config, generated by \`vipd manifest config\` (vipd ${VERSION}).`,
    ...(options.nodeName === undefined
      ? [
          witnesses.length === 0
            ? '# The same file goes on every control-plane node as /etc/vipd/vipd.yaml: each member finds itself'
            : '# The same file goes on every node, the witness too, as /etc/vipd/vipd.yaml: each finds itself',
          '# in `peers` by the VIPD_NODE_NAME environment variable, else by its host name (in full or before',
          '# the first dot). Keys not written here have their defaults (docs/configuration.md).',
        ]
      : [
          `# For ${options.nodeName} only, as /etc/vipd/vipd.yaml. Keys not written here have their defaults`,
          '# (docs/configuration.md).',
        ]),
    '# Check it on each node with `vipd check --config FILE`.',
    '',
    ...(options.nodeName === undefined ? [] : [`nodeName: ${scalar(options.nodeName)}`, '']),
    '# Every control-plane member, this node included: its name and the address heartbeats come from.',
    '# The first one listed bootstraps a new cluster: run `kubeadm init` there (it holds the VIP alone',
    '# until a majority has joined). Keep the order when you add members: append them.',
    ...(witnesses.length === 0
      ? []
      : [
          '# Then the witness: it votes and acknowledges (it counts for the majority), never holds the VIP and',
          '# runs no balancer: `vipd witness` (or `vipd run`) on that node, with this same file. It may be on',
          '# another network: UDP election.port must pass both ways between it and each member.',
        ]),
    'peers:',
    ...options.peers.flatMap((p) => [`  - name: ${scalar(p.name)}`, `    address: ${scalar(p.address)}`]),
    ...witnesses.flatMap((w) => [
      `  - name: ${scalar(w.name)}`,
      `    address: ${scalar(w.address)}`,
      '    role: witness',
    ]),
    '',
    'vip:',
    ...(vips.length > 1
      ? [
          '  # dual stack: one VIP of each family, held together by one election',
          `  addresses: [${vips.map(scalar).join(', ')}]  # kubeadm --control-plane-endpoint: either, on :${bindPort}`,
        ]
      : [
          `  address: ${scalar(options.vip)}  # clients use ${endpoint}:${bindPort} (kubeadm --control-plane-endpoint)`,
        ]),
    options.interface === undefined
      ? '  # interface: not set: each node takes the interface that carries its own address in peers'
      : `  interface: ${scalar(options.interface)}  # the interface that carries the peers' addresses`,
    '',
    'election:',
    `  clusterId: ${options.clusterId ?? CONFIG_DEFAULTS.clusterId}  # unique per cluster on a segment`,
    `  port: ${options.electionPort ?? CONFIG_DEFAULTS.electionPort}  # UDP, between the peers' addresses`,
    ...(options.priority === undefined
      ? []
      : [`  priority: ${options.priority}  # higher wins; ties go to the higher address`]),
    `  quorum: ${scalar(quorum)}  ${quorumNote}`,
    `  secretFile: ${scalar(secretFile)}  # same content on every ${everyNode}: head -c 32 /dev/urandom | base64`,
    '',
    'proxy:',
    `  drainTimeout: ${scalar(formatDuration(drainTimeoutMs))}  # the static pod's grace period is this + ${GRACE_MARGIN_SECONDS}s (vipd manifest pod --drain-timeout)`,
    '  frontends:',
    '    - name: apiserver',
    ipv6
      ? `      bind: ${scalar(`[::]:${bindPort}`)}  # every address of both families, the VIPs included once they arrive`
      : `      bind: ${scalar(`0.0.0.0:${bindPort}`)}  # every address, the VIP included once it arrives`,
    `      backendPort: ${backendPort}  # every member's apiserver (kubeadm --apiserver-bind-port)`,
    '',
    'track:',
    '  apiserver:',
    `    port: ${backendPort}  # this node's own apiserver steers the election`,
    '',
    'health:',
    `  listen: ${scalar(formatHostPort(healthHost, healthPort))}  # the static pod's probes call it (manifest pod --health-host/--health-port)`,
    '',
  ];
  const text = lines.join('\n');
  // As loaded on the first peer, whatever VIPD_NODE_NAME says here; the secret is not read (it lives on
  // the nodes, not here), nor is this machine's host side (the file is for other machines).
  try {
    parseConfigText(text, 'generated config', { readSecret: false, hostname: options.peers[0]?.name ?? '', env: {} });
  } catch (err) {
    if (err instanceof ConfigError)
      throw new ConfigError(err.problems.map((p) => `the generated config would be invalid: ${p}`));
    throw err;
  }
  return text;
}
