/** Every figure a target collects over the rounds, and the statistics taken of them. */

export const PERCENTILES = [50, 75, 90, 99] as const;

export interface IdleFigures {
  readonly connections: number;
  readonly rssBeforeKiB: number;
  readonly rssAfterKiB: number;
  readonly kibPerConn: number;
}

/** Every round's sample of every figure for one target. */
export class Samples {
  readonly keepAlive: number[] = [];
  readonly newConn: number[] = [];
  readonly bulkGbit: number[] = [];
  readonly latencyRate: number[] = [];
  /** Percentile -> absolute latency (µs), per round. */
  readonly latency = new Map<number, number[]>();
  /** Percentile -> this target's latency minus direct's in the same round (µs). */
  readonly added = new Map<number, number[]>();
  /** Reconnect storm: ms from its start until every client's handshake completed, per round. */
  readonly stormMs: number[] = [];
  /** Per round: the median and 99th percentile of the clients' handshake times (ms). */
  readonly stormHandshakeP50Ms: number[] = [];
  readonly stormHandshakeP99Ms: number[] = [];
  /** Storm clients that failed (error, close or 30 s without a handshake), summed over rounds. */
  stormFailed = 0;
  /** The balancer's CPU time (ns, schedstat) over the storms and the connections established, summed over rounds. */
  readonly stormCpu = { ns: 0, connections: 0 };
  /** Balancer CPU ticks and requests served, summed over rounds, per saturating run kind. */
  readonly cpu = { ka: { ticks: 0, requests: 0 }, nc: { ticks: 0, requests: 0 } };
  readonly busy = { ka: [] as number[], nc: [] as number[] };
  /** The balancer's CPU during the bulk streams, as a share of one core, per round. */
  readonly bulkCore: number[] = [];
  idle: IdleFigures | undefined;
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key) ?? [];
  list.push(value);
  map.set(key, list);
}
