/**
 * The bench's network and its limits: which host is which, the ports each process listens on, and
 * the descriptor budget the balancers are given.
 */

/** Lab.lan numbers hosts in this order: client 10.77.0.1, lb .2, b1-b3 .3-.5. */
export const HOSTS = ['client', 'lb', 'b1', 'b2', 'b3'] as const;
export const BACKEND_HOSTS = ['b1', 'b2', 'b3'] as const;
export type HostName = (typeof HOSTS)[number];
export const HTTP_PORT = 18080;
export const BULK_PORT = 18081;
/** Each backend's TLS frontend (HAProxy, self-signed), for the reconnect storm. */
export const TLS_PORT = 18443;
/**
 * Each balancer's HTTP frontend at one core; its bulk frontend is the next port, its storm frontend
 * (TCP passthrough to the backends' TLS_PORT) the one after. At c cores the ports are 10 x (c - 1)
 * higher. All bound in `lb`.
 */
export const BALANCER_PORTS = { haproxy: 6443, vipd: 7443, pipe: 8443 } as const;
export type BalancerKind = keyof typeof BALANCER_PORTS;

/** One balancer of the run: what it is, and how many cores (threads, CPUs) it is given. */
export interface Balancer {
  readonly kind: BalancerKind;
  readonly cores: number;
}

export const balancerPort = (b: Balancer): number => BALANCER_PORTS[b.kind] + 10 * (b.cores - 1);
export const targetName = (b: Balancer): Target => `${b.kind}@${b.cores}`;
/** The CPUs a balancer of c cores is pinned to (taskset -c): 0 to c - 1. */
export const cpuList = (cores: number): string => Array.from({ length: cores }, (_, i) => i).join(',');
/** Enough descriptors for 10,000 relayed connections (two sockets each) with room to spare. */
export const NOFILE = 65536;
/** Connections per wrk latency run; the per-connection delay sets the total rate. */
export const LATENCY_CONNECTIONS = 10;
/** Idle connections being connected at once by the client agent (a SYN burst, not a flood). */
export const IDLE_CONCURRENCY = 200;
/** Descriptors a balancer needs besides its relayed sockets. */
export const FD_MARGIN = 200;

/** What the client sends to: a balancer at a core count, or b1 with no balancer ("direct", the baseline). */
export type Target = 'direct' | `${BalancerKind}@${number}`;

/** Where the client sends for a target, and the balancer process (none for direct). */
export interface Endpoint {
  readonly name: Target;
  /** The balancer, or none for direct. */
  readonly balancer?: Balancer;
  readonly ip: string;
  readonly port: number;
  readonly bulkPort: number;
  /** TLS (passed through by a balancer): the reconnect storm's. */
  readonly stormPort: number;
  readonly pid?: number;
  /** The balancer's process name (/proc/PID/comm), to check the pid is the one measured. */
  readonly comm?: string;
}
