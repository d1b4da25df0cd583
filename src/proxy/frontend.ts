/**
 * One listening address and its backends: the native relay engine that accepts and relays its
 * client connections (src/native/relay-engine.ts, native/relay.cc), the backends and one health
 * checker per backend, and the policy the engine reports to: passive checks, the auto hedge delay,
 * the connection observer, logs and metrics. It owns all of them: close() stops accepting, lets
 * connections drain, then destroys what is left; destroy() does the last step at once.
 *
 * Passive checks (HAProxy's `observe layer4` with `on-error mark-down`): a backend whose connect is
 * refused, unreachable or timed out is marked down for the pool at once, instead of after `fall`
 * active checks; it comes back after `rise` successful active checks started after the mark. A
 * passive mark-down only steers new connections: the connections the backend carries stay until
 * the active checks agree (then shutdownOnMarkedDown applies as usual), because a refused connect
 * says the listener is gone, not that established connections are (an apiserver shutting down
 * closes its listener and still finishes its requests), and a timed-out connect can be a full
 * accept queue on an apiserver that still serves its watches.
 */
import { HealthChecker } from '../checks/health-checker';
import { type CheckRecord, type CheckReport, checkReport } from '../checks/probe';
import type { HealthState } from '../checks/rise-fall';
import { formatHostPort } from '../config/host-port';
import { describeError, VipdError } from '../errors';
import { type Logger, RateLimitedLog } from '../log/logger';
import type { ByteTotals, ProxyMetrics } from '../metrics/proxy-metrics';
import {
  type ClientConnection,
  dispatchRelayEvents,
  loadRelayBinding,
  type NativeRelayEngine,
  type NextStep,
  type RelayEvents,
} from '../native/relay-engine';
import { Backend, type BackendMeters } from './backend';
import { ConnectTimes, derivedHedgeDelay } from './hedge-delay';
import { type BackendSettings, type BalanceMode, type FrontendSettings, sameBackend } from './settings';

/**
 * The kernel's accept queue. A burst of reconnects (every kubelet after a VIP move) arrives at
 * once; the default 511 drops SYNs that a moment later would have been served. Capped by
 * net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/**
 * The engine turns TCP keepalive on (first probe after 30 s idle) for connections older than this,
 * in a sweep this often: it costs system calls per socket, and only connections that outlive the
 * keepalive delay ever send a probe, so short ones never pay for it.
 */
export const KEEPALIVE_SWEEP_MS = 5_000;

/**
 * Connects to one backend overtaken by hedges in a row (none completing in between) that mark it
 * down passively: a backend that swallows SYNs never fails a connect that a hedge overtook, so
 * without this only the active checks (fall × interval) would take it out of rotation, and every
 * connection offered to it meanwhile would pay the hedge delay.
 */
export const OVERTAKEN_LIMIT = 3;

/**
 * Connect failures that say the backend is not accepting: nothing listens (refused), no route to it,
 * or no answer within connectTimeout. Local shortages (EMFILE, EADDRNOTAVAIL, ENOBUFS) are not
 * the backend's fault and mark nothing down.
 */
const MARK_DOWN_REASONS: ReadonlySet<string> = new Set([
  'connect timeout',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ETIMEDOUT',
]);

/**
 * Told of every client connection: opened() once when accepted, closed() once when its relay is
 * done, whatever the path (no backend, relayed, destroyed, drained). Called synchronously on the
 * proxy's hot path, so it must be quick; an exception is logged and otherwise ignored.
 */
export interface ConnectionObserver {
  opened(connection: ClientConnection): void;
  closed(connection: ClientConnection): void;
}

export interface FrontendDeps {
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly connections?: ConnectionObserver;
  /**
   * Bind the listener (the default). A dry run only checks the backends: it runs next to the
   * balancer it would replace (HAProxy on :6443), which holds the port.
   */
  readonly listen?: boolean;
  /** Threads relaying this frontend's connections (proxy.threads). */
  readonly threads?: number;
}

/**
 * One backend as the balancer sees it, in its frontend's status. /status shows a shorter line for
 * each backend: `BackendStatus` in admin/status.ts.
 */
export interface ProxyBackendStatus {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** For the pool: down when the active checks or a passive check (see passiveDown) hold it down. */
  readonly state: HealthState;
  /** Marked down by a failed connect, until `rise` active checks pass. */
  readonly passiveDown: boolean;
  readonly draining: boolean;
  readonly activeConnections: number;
  readonly totalConnections: number;
  readonly connectFailures: number;
  readonly lastCheck: CheckReport | null;
}

export interface FrontendStatus {
  readonly name: string;
  readonly bind: { readonly host: string; readonly port: number };
  readonly listening: boolean;
  readonly balance: BalanceMode;
  /** The hedge delay in force (derived from connect times with hedgeDelay: auto); 0: no hedging. */
  readonly hedgeDelayMs: number;
  /** Client connections, including those still connecting to a backend. */
  readonly activeConnections: number;
  readonly backends: readonly ProxyBackendStatus[];
}

export class Frontend implements RelayEvents {
  readonly name: string;
  private settings: FrontendSettings;
  private engine: NativeRelayEngine | undefined;
  /** Every backend, in rotation order, draining ones included until their connections are done. */
  private readonly backends: Backend[] = [];
  private readonly byId = new Map<number, Backend>();
  private readonly log: Logger;
  private readonly limited: RateLimitedLog;
  private readonly checkers = new Map<Backend, HealthChecker>();
  private readonly retryMeter: { inc(by?: number): void };
  private readonly unservedMeter: { inc(by?: number): void };
  private readonly unansweredRetryMeter: { inc(by?: number): void };
  private readonly finTimeoutMeter: { inc(by?: number): void };
  /** The engine's frontend counters as last read (see syncCounters). */
  private counted = { connections: 0, bytesIn: 0, bytesOut: 0, retries: 0, unanswered: 0, unserved: 0, fin: 0 };
  private readonly connectTimes = new ConnectTimes();
  /** The hedge delay last given to the engine (ms). */
  private hedgeInForce = -1;
  private boundPort: number | undefined;
  private listening = false;
  /** start() ran: checkers of backends a reload adds start at once (listening or not: a dry run binds nothing). */
  private started = false;
  private closing: Promise<void> | undefined;
  private cutDrain: (() => void) | undefined;
  private onDrained: (() => void) | undefined;

  constructor(
    settings: FrontendSettings,
    private readonly deps: FrontendDeps,
  ) {
    this.name = settings.name;
    this.settings = settings;
    this.log = deps.log.child({ component: 'proxy', frontend: settings.name });
    this.limited = new RateLimitedLog(this.log);
    const retries = deps.metrics.retries.labels({ frontend: this.name });
    const unserved = deps.metrics.unserved.labels({ frontend: this.name });
    retries.inc(0);
    unserved.inc(0);
    this.retryMeter = retries;
    this.unservedMeter = unserved;
    const unansweredRetries = deps.metrics.retriesUnanswered.labels({ frontend: this.name });
    const finTimeouts = deps.metrics.finTimeouts.labels({ frontend: this.name });
    unansweredRetries.inc(0);
    finTimeouts.inc(0);
    this.unansweredRetryMeter = unansweredRetries;
    this.finTimeoutMeter = finTimeouts;
    for (const b of settings.backends) this.addBackend(b);
  }

  get bind(): FrontendSettings['bind'] {
    return this.settings.bind;
  }

  /** The hedge delay in force (ms): derived from recent connect times with hedgeDelay: auto; 0: no hedging. */
  get hedgeDelayMs(): number {
    const fixed = this.settings.hedgeDelayMs;
    return fixed === 'auto' ? derivedHedgeDelay(this.connectTimes.p99Ms, this.settings.connectTimeoutMs) : fixed;
  }

  /** Starts the health checks and listens. Rejects with VIPD_BIND_FAILED. */
  async start(): Promise<void> {
    this.started = true;
    for (const checker of this.checkers.values()) checker.start();
    const { host, port } = this.settings.bind;
    if (this.deps.listen === false) {
      this.log.info(
        {
          bind: formatHostPort(host, port),
          backends: this.settings.backends.map((b) => `${b.name}=${formatHostPort(b.address, b.port)}`),
        },
        'dry run: proxy frontend not listening (checking its backends only)',
      );
      return;
    }
    const { RelayEngine } = loadRelayBinding();
    const engine = new RelayEngine(
      (batch) => dispatchRelayEvents(batch, this),
      this.deps.threads ?? 1,
      this.deps.connections !== undefined,
    );
    this.engine = engine;
    this.configureEngine();
    this.pushBackends();
    try {
      this.boundPort = engine.listen(host, port, LISTEN_BACKLOG);
    } catch (err) {
      engine.close();
      this.engine = undefined;
      throw new VipdError(
        'VIPD_BIND_FAILED',
        `proxy frontend "${this.name}" cannot listen on ${formatHostPort(host, port)}: ${describeError(err)} (is another balancer, such as HAProxy, still running?)`,
        { cause: err },
      );
    }
    this.listening = true;
    this.log.info(
      {
        bind: formatHostPort(host, this.boundPort),
        backends: this.settings.backends.map((b) => `${b.name}=${formatHostPort(b.address, b.port)}`),
        balance: this.settings.balance,
        threads: this.deps.threads ?? 1,
      },
      'proxy frontend listening',
    );
  }

  /** The bound address (the real port when bind.port was 0), once listening. */
  address(): { host: string; port: number } | undefined {
    return this.boundPort === undefined ? undefined : { host: this.settings.bind.host, port: this.boundPort };
  }

  /**
   * Applies new settings with the same bind address in place. Unchanged backends keep their state
   * and connections; removed ones drain (no new connections, existing ones run to their end); new
   * ones are checked at once.
   */
  update(settings: FrontendSettings): void {
    this.settings = settings;
    if (!settings.observe) {
      for (const b of this.backends) if (b.passiveDown) b.setPassiveDown(false);
    }
    const current = this.backends.filter((b) => !b.draining);
    for (const b of current) {
      if (!settings.backends.some((s) => sameBackend(s, b))) this.drainBackend(b);
    }
    for (const s of settings.backends) {
      const existing = current.find((b) => sameBackend(s, b));
      if (existing === undefined) {
        const checker = this.checkers.get(this.addBackend(s));
        if (this.started && this.closing === undefined) checker?.start();
      } else {
        this.checkers.get(existing)?.update(settings.check);
      }
    }
    this.configureEngine();
    this.pushBackends();
  }

  status(): FrontendStatus {
    this.syncCounters();
    return {
      name: this.name,
      bind: this.address() ?? this.settings.bind,
      listening: this.listening && this.closing === undefined,
      balance: this.settings.balance,
      hedgeDelayMs: this.hedgeDelayMs,
      activeConnections: this.counted.connections,
      backends: this.backends.map((b) => ({
        name: b.name,
        address: b.address,
        port: b.port,
        state: b.passiveDown ? 'down' : b.health,
        passiveDown: b.passiveDown,
        draining: b.draining,
        activeConnections: b.active,
        totalConnections: b.total,
        connectFailures: b.connectFailures,
        lastCheck: checkReport(b.lastCheck),
      })),
    };
  }

  byteTotals(): ByteTotals {
    this.syncCounters();
    return { frontend: this.name, in: this.counted.bytesIn, out: this.counted.bytesOut };
  }

  /**
   * Reads the engine's counters into the metrics (by delta: the counters only grow) and the
   * backends' figures. Cheap: a few atomics per backend; called at every scrape and status.
   */
  syncCounters(): void {
    const engine = this.engine;
    if (engine === undefined) return;
    const [connections = 0, bytesIn = 0, bytesOut = 0, retries = 0, unanswered = 0, unserved = 0, fin = 0] =
      engine.stats();
    const c = this.counted;
    if (retries > c.retries) this.retryMeter.inc(retries - c.retries);
    if (unanswered > c.unanswered) this.unansweredRetryMeter.inc(unanswered - c.unanswered);
    if (unserved > c.unserved) this.unservedMeter.inc(unserved - c.unserved);
    if (fin > c.fin) this.finTimeoutMeter.inc(fin - c.fin);
    this.counted = {
      connections,
      bytesIn: Math.max(c.bytesIn, bytesIn),
      bytesOut: Math.max(c.bytesOut, bytesOut),
      retries: Math.max(c.retries, retries),
      unanswered: Math.max(c.unanswered, unanswered),
      unserved: Math.max(c.unserved, unserved),
      fin: Math.max(c.fin, fin),
    };
    for (const b of this.backends) b.observe(engine.backendStats(b.id));
  }

  /** Graceful: stop accepting, let connections finish for up to `drainTimeoutMs`, then destroy. Idempotent. */
  close(drainTimeoutMs: number): Promise<void> {
    this.closing ??= this.shutdown(drainTimeoutMs);
    return this.closing;
  }

  /** Abort: stop accepting and destroy every connection now. Idempotent; also cuts a close() short. */
  destroy(): Promise<void> {
    this.cutDrain?.();
    return this.close(0);
  }

  // --- RelayEvents: what the engine reports ----------------------------------------------------

  opened(connection: ClientConnection): void {
    this.tell('opened', connection);
  }

  closed(connection: ClientConnection): void {
    this.tell('closed', connection);
  }

  connected(id: number, ms: number): void {
    const backend = this.byId.get(id);
    if (backend !== undefined) backend.overtaken = 0;
    this.connectTimes.record(ms);
    if (this.settings.hedgeDelayMs === 'auto' && this.hedgeDelayMs !== this.hedgeInForce) this.configureEngine();
  }

  hedgeWon(_id: number, slowId: number): void {
    const slow = this.byId.get(slowId);
    if (slow === undefined) return;
    slow.overtaken += 1;
    if (slow.overtaken >= OVERTAKEN_LIMIT && this.settings.observe) {
      slow.overtaken = 0;
      this.markDownPassively(slow, `${OVERTAKEN_LIMIT} connects in a row overtaken by hedges`);
    }
  }

  connectFailed(id: number, reason: string, next: NextStep, connecting: boolean): void {
    const backend = this.byId.get(id);
    if (backend === undefined) return;
    this.limited.warn(
      `connect:${backend.name}`,
      {
        backend: backend.name,
        address: formatHostPort(backend.address, backend.port),
        reason: connecting ? reason : `${reason} (connected, closed before answering)`,
        retry: next !== 'none',
      },
      'connect to backend failed',
    );
    if (connecting && this.settings.observe && MARK_DOWN_REASONS.has(reason)) this.markDownPassively(backend, reason);
  }

  unserved(reason: string): void {
    this.limited.warn('unserved', { reason }, 'client connection closed: no backend reachable');
  }

  backendIdle(id: number): void {
    const backend = this.byId.get(id);
    if (backend?.draining) this.retireBackend(backend);
  }

  drained(): void {
    this.onDrained?.();
  }

  acceptError(code: string): void {
    // EMFILE under a connection flood must not crash the daemon: the engine goes on accepting.
    this.limited.warn('accept', { err: code }, 'proxy listener error');
  }

  // --- internals -------------------------------------------------------------------------------

  private configureEngine(): void {
    const engine = this.engine;
    if (engine === undefined) return;
    const s = this.settings;
    this.hedgeInForce = this.hedgeDelayMs;
    engine.configure(
      s.connectTimeoutMs,
      s.retries,
      s.idleTimeoutMs,
      this.hedgeInForce,
      s.finTimeoutMs,
      s.balance === 'leastconn',
      KEEPALIVE_SWEEP_MS,
    );
  }

  private pushBackends(): void {
    this.engine?.setBackends(
      this.backends.map((b) => ({
        id: b.id,
        address: b.address,
        port: b.port,
        routable: b.routable,
        draining: b.draining,
      })),
    );
  }

  private tell(event: 'opened' | 'closed', connection: ClientConnection): void {
    try {
      this.deps.connections?.[event](connection);
    } catch (err) {
      this.limited.warn('observer', { err: describeError(err), event }, 'connection observer failed');
    }
  }

  private markDownPassively(backend: Backend, reason: string): void {
    // Already out of rotation (down by the checks, or marked), or leaving: nothing to change.
    if (backend.passiveDown || backend.health === 'down' || backend.draining) return;
    backend.setPassiveDown(true, Date.now());
    backend.meters.passiveMarkdowns.inc();
    const address = formatHostPort(backend.address, backend.port);
    this.log.warn(
      { backend: backend.name, address, reason, rise: this.settings.check.rise },
      'backend marked down: connect failed',
    );
  }

  /** Counts an active check toward the end of a passive mark-down; true when it ended it. */
  private passiveCheck(backend: Backend, record: CheckRecord): boolean {
    if (!record.ok) {
      backend.passiveSuccesses = 0;
      return false;
    }
    // A check that started before the failed connect says nothing about the backend since.
    if (record.at - record.durationMs < backend.passiveSince) return false;
    backend.passiveSuccesses += 1;
    if (backend.passiveSuccesses < this.settings.check.rise) return false;
    backend.setPassiveDown(false);
    return true;
  }

  private async shutdown(drainTimeoutMs: number): Promise<void> {
    const engine = this.engine;
    for (const checker of this.checkers.values()) checker.close();
    engine?.stopAccepting();
    this.syncCounters();
    if (engine !== undefined && this.counted.connections > 0 && drainTimeoutMs > 0) {
      this.log.info({ activeConnections: this.counted.connections, drainTimeoutMs }, 'proxy frontend draining');
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onDrained = resolve;
        this.cutDrain = resolve;
        timer = setTimeout(resolve, drainTimeoutMs);
      });
      clearTimeout(timer);
    }
    this.syncCounters();
    const left = this.counted.connections;
    if (engine !== undefined) {
      engine.destroyAll();
      this.syncCounters();
      engine.close();
      // What the threads reported last (the connections just closed, for the observer).
      const last = engine.takeEvents();
      if (last !== undefined) dispatchRelayEvents(last, this);
    }
    for (const b of [...this.backends]) this.retireBackend(b);
    this.listening = false;
    this.log.info({ closedConnections: left }, 'proxy frontend closed');
  }

  private addBackend(settings: BackendSettings): Backend {
    const backend = new Backend(settings, this.meters(settings.name));
    backend.onChange = () => this.engine?.setBackendState(backend.id, backend.routable, backend.draining);
    this.backends.push(backend);
    this.byId.set(backend.id, backend);
    const checker = new HealthChecker(backend, this.settings.check, (record, change) =>
      this.onCheck(backend, record, change),
    );
    this.checkers.set(backend, checker);
    return backend;
  }

  private onCheck(backend: Backend, record: CheckRecord, change: HealthState | undefined): void {
    backend.lastCheck = record;
    (record.ok ? backend.meters.checkSuccess : backend.meters.checkFailure).inc();
    const passiveEnded = backend.passiveDown && this.passiveCheck(backend, record);
    const fields = {
      backend: backend.name,
      address: formatHostPort(backend.address, backend.port),
      check: record.detail,
    };
    this.log.debug({ ...fields, ok: record.ok, ms: Math.round(record.durationMs) }, 'backend checked');
    if (change === undefined) {
      if (passiveEnded && backend.health !== 'down') {
        this.log.info({ ...fields, after: 'passive mark-down' }, 'backend back up');
      }
      return;
    }
    const wasUnknown = backend.health === 'unknown';
    backend.setHealth(change);
    if (change === 'up') {
      // Still held out by a passive mark-down: "back up" is logged when that ends.
      if (!backend.passiveDown) this.log.info(fields, wasUnknown ? 'backend up' : 'backend back up');
      return;
    }
    let closed = 0;
    if (this.settings.shutdownOnMarkedDown && this.engine !== undefined)
      closed = this.engine.destroyBackend(backend.id);
    this.log.warn({ ...fields, closedConnections: closed }, 'backend down');
  }

  private drainBackend(backend: Backend): void {
    backend.drain();
    this.checkers.get(backend)?.close();
    this.checkers.delete(backend);
    if (this.engine !== undefined) backend.observe(this.engine.backendStats(backend.id));
    this.log.info(
      { backend: backend.name, activeConnections: backend.active },
      'backend removed; draining its connections',
    );
    if (backend.active === 0) this.retireBackend(backend);
  }

  private retireBackend(backend: Backend): void {
    if (!this.byId.has(backend.id)) return;
    this.checkers.get(backend)?.close();
    this.checkers.delete(backend);
    this.byId.delete(backend.id);
    this.backends.splice(this.backends.indexOf(backend), 1);
    backend.onChange = undefined;
    if (this.closing === undefined) this.pushBackends();
    // A reload may have replaced it by a backend of the same name, which owns those series now.
    if (this.backends.some((b) => b.name === backend.name)) return;
    const labels = { frontend: this.name, backend: backend.name };
    const m = this.deps.metrics;
    m.backendUp.remove(labels);
    m.connectionsActive.remove(labels);
    m.connectionsTotal.remove(labels);
    m.connectFailures.remove(labels);
    m.healthChecks.remove({ ...labels, result: 'success' });
    m.healthChecks.remove({ ...labels, result: 'failure' });
    m.passiveMarkdowns.remove(labels);
    m.hedges.remove(labels);
    m.hedgeWins.remove(labels);
  }

  private meters(backend: string): BackendMeters {
    const m = this.deps.metrics;
    const labels = { frontend: this.name, backend };
    const meters: BackendMeters = {
      up: m.backendUp.labels(labels),
      active: m.connectionsActive.labels(labels),
      total: m.connectionsTotal.labels(labels),
      connectFailures: m.connectFailures.labels(labels),
      checkSuccess: m.healthChecks.labels({ ...labels, result: 'success' }),
      checkFailure: m.healthChecks.labels({ ...labels, result: 'failure' }),
      passiveMarkdowns: m.passiveMarkdowns.labels(labels),
      hedges: m.hedges.labels(labels),
      hedgeWins: m.hedgeWins.labels(labels),
    };
    m.connectionsActive.labels(labels).set(0);
    m.connectionsTotal.labels(labels).inc(0);
    m.connectFailures.labels(labels).inc(0);
    m.passiveMarkdowns.labels(labels).inc(0);
    m.hedges.labels(labels).inc(0);
    m.hedgeWins.labels(labels).inc(0);
    return meters;
  }
}
