/**
 * The balancer's Prometheus metrics (docs/logging-and-metrics.md lists them for operators). Registered on
 * the balancer thread's own registry (proxy/thread-main.ts), whose text the daemon's /metrics appends;
 * the proxy holds labelled children per backend so the per-connection path never hashes label sets.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Bytes a frontend has relayed: `in` from clients to backends, `out` from backends to clients. */
export interface ByteTotals {
  readonly frontend: string;
  readonly in: number;
  readonly out: number;
}

export function registerProxyMetrics(registry: Registry) {
  const registers = [registry];
  let bytesSource: (() => Iterable<ByteTotals>) | undefined;
  let sync: (() => void) | undefined;
  // The counters the native relay keeps (connections, failures, hedges, retries, timeouts) are read
  // into these at scrape time: nothing is counted in JavaScript per connection.
  const collect = () => sync?.();
  return {
    backendUp: new Gauge({
      name: 'vipd_backend_up',
      help: 'Health of each backend: 1 up (or not yet checked), 0 down.',
      labelNames: ['frontend', 'backend'] as const,
      registers,
    }),
    connectionsActive: new Gauge({
      name: 'vipd_proxy_connections_active',
      help: 'Client connections currently relayed to each backend.',
      labelNames: ['frontend', 'backend'] as const,
      registers,
      collect,
    }),
    connectionsTotal: new Counter({
      name: 'vipd_proxy_connections_total',
      help: 'Client connections relayed to each backend (counted once the backend connection is up).',
      labelNames: ['frontend', 'backend'] as const,
      registers,
      collect,
    }),
    connectFailures: new Counter({
      name: 'vipd_proxy_connect_failures_total',
      help:
        'Failed or timed-out connects to each backend, and connections it closed before answering' +
        ' (each may have been retried on another).',
      labelNames: ['frontend', 'backend'] as const,
      registers,
      collect,
    }),
    passiveMarkdowns: new Counter({
      name: 'vipd_proxy_passive_markdowns_total',
      help:
        'Times each backend was marked down by a failed connect (refused, unreachable, timed out)' +
        ' rather than by the active checks.',
      labelNames: ['frontend', 'backend'] as const,
      registers,
    }),
    hedges: new Counter({
      name: 'vipd_proxy_hedges_total',
      help: 'Connects to each backend slow enough that a second one was started to another backend (hedged).',
      labelNames: ['frontend', 'backend'] as const,
      registers,
      collect,
    }),
    hedgeWins: new Counter({
      name: 'vipd_proxy_hedge_wins_total',
      help: 'Hedged connects won by the second connect, to each backend (the slow one was closed).',
      labelNames: ['frontend', 'backend'] as const,
      registers,
      collect,
    }),
    retries: new Counter({
      name: 'vipd_proxy_retries_total',
      help: 'Connects retried on another backend after a failure.',
      labelNames: ['frontend'] as const,
      registers,
      collect,
    }),
    retriesUnanswered: new Counter({
      name: 'vipd_proxy_unanswered_retries_total',
      help:
        'Client connections moved to another backend because theirs closed or reset before its first byte' +
        ' (also counted in vipd_proxy_retries_total).',
      labelNames: ['frontend'] as const,
      registers,
      collect,
    }),
    finTimeouts: new Counter({
      name: 'vipd_proxy_fin_timeouts_total',
      help: 'Half-closed connections closed after finTimeout without traffic from the side that sent its FIN.',
      labelNames: ['frontend'] as const,
      registers,
      collect,
    }),
    unserved: new Counter({
      name: 'vipd_proxy_unserved_connections_total',
      help: 'Client connections closed because no backend could be reached.',
      labelNames: ['frontend'] as const,
      registers,
      collect,
    }),
    bytes: new Counter({
      name: 'vipd_proxy_bytes_total',
      help: 'Bytes relayed: direction="in" from clients to backends, "out" from backends to clients.',
      labelNames: ['frontend', 'direction'] as const,
      registers,
      // Counted at scrape time from the sockets' own byte counts: counting per chunk would put a
      // label lookup on the hottest path of the proxy.
      collect() {
        if (bytesSource === undefined) return;
        this.reset();
        for (const t of bytesSource()) {
          this.inc({ frontend: t.frontend, direction: 'in' }, t.in);
          this.inc({ frontend: t.frontend, direction: 'out' }, t.out);
        }
      },
    }),
    healthChecks: new Counter({
      name: 'vipd_health_checks_total',
      help: 'Active health checks of each backend, by result.',
      labelNames: ['frontend', 'backend', 'result'] as const,
      registers,
    }),
    /** The proxy registers where byte totals come from; they must only ever grow. */
    setBytesSource(source: (() => Iterable<ByteTotals>) | undefined): void {
      bytesSource = source;
    },
    /** The proxy registers how to read the native counters into the metrics before a scrape. */
    setSync(fn: (() => void) | undefined): void {
      sync = fn;
    },
  };
}

export type ProxyMetrics = ReturnType<typeof registerProxyMetrics>;
