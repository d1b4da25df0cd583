/**
 * One listening address and its backends: the listener, the pool, one health checker per backend,
 * and every client relay it accepted. It owns all of them: close() stops accepting, lets relays
 * drain, then destroys what is left; destroy() does the last step at once.
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
import net from 'node:net';
import { HealthChecker } from '../checks/health-checker';
import { type CheckRecord, type CheckReport, checkReport } from '../checks/probe';
import type { HealthState } from '../checks/rise-fall';
import { describeError, VipdError } from '../errors';
import { type Logger, RateLimitedLog } from '../log/logger';
import type { ByteTotals, ProxyMetrics } from '../metrics/proxy-metrics';
import { Backend, type BackendMeters } from './backend';
import { BackendPool } from './backend-pool';
import { ConnectTimes, derivedHedgeDelay } from './hedge-delay';
import { type ClientConnection, ClientRelay, KEEPALIVE_SWEEP_MS, type NextStep, type RelayHost } from './relay';
import { type BackendSettings, type BalanceMode, type FrontendSettings, sameBackend } from './settings';

/**
 * The kernel's accept queue. A burst of reconnects (every kubelet after a VIP move) arrives at
 * once; the default 511 drops SYNs that a moment later would have been served. Capped by
 * net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/**
 * Connect failures that say the backend is not accepting: nothing listens (refused), no route to it,
 * or no answer within connectTimeout. Local shortages (EMFILE, EADDRNOTAVAIL, ENOBUFS) are not
 * the backend's fault and mark nothing down.
 */
/**
 * Connects to one backend overtaken by hedges in a row (none completing in between) that mark it
 * down passively: a backend that swallows SYNs never fails a connect that a hedge overtook, so
 * without this only the active checks (fall × interval) would take it out of rotation, and every
 * connection offered to it meanwhile would pay the hedge delay.
 */
export const OVERTAKEN_LIMIT = 3;

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

export class Frontend implements RelayHost {
  readonly name: string;
  readonly pool: BackendPool;
  private settings: FrontendSettings;
  private readonly server: net.Server;
  private readonly log: Logger;
  private readonly limited: RateLimitedLog;
  private readonly checkers = new Map<Backend, HealthChecker>();
  private readonly relays = new Set<ClientRelay>();
  private readonly retryMeter: { inc(): void };
  private readonly unservedMeter: { inc(): void };
  private readonly unansweredRetryMeter: { inc(): void };
  private readonly finTimeoutMeter: { inc(): void };
  private readonly connectTimes = new ConnectTimes();
  private closedBytesIn = 0;
  private closedBytesOut = 0;
  private listening = false;
  /** start() ran: checkers of backends a reload adds start at once (listening or not: a dry run binds nothing). */
  private started = false;
  private keepAliveSweep: NodeJS.Timeout | undefined;
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
    this.pool = new BackendPool(settings.balance);
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
    this.server = net.createServer({
      allowHalfOpen: true,
      pauseOnConnect: true,
      noDelay: true,
    });
    this.server.on('connection', (socket: net.Socket) => this.accept(socket));
  }

  get bind(): FrontendSettings['bind'] {
    return this.settings.bind;
  }

  get connectTimeoutMs(): number {
    return this.settings.connectTimeoutMs;
  }

  get retries(): number {
    return this.settings.retries;
  }

  get idleTimeoutMs(): number {
    return this.settings.idleTimeoutMs;
  }

  get hedgeDelayMs(): number {
    const fixed = this.settings.hedgeDelayMs;
    return fixed === 'auto' ? derivedHedgeDelay(this.connectTimes.p99Ms, this.settings.connectTimeoutMs) : fixed;
  }

  get finTimeoutMs(): number {
    return this.settings.finTimeoutMs;
  }

  /** Starts the health checks and listens. Rejects with VIPD_BIND_FAILED. */
  async start(): Promise<void> {
    this.started = true;
    for (const checker of this.checkers.values()) checker.start();
    const { host, port } = this.settings.bind;
    if (this.deps.listen === false) {
      this.log.info(
        { bind: `${host}:${port}`, backends: this.settings.backends.map((b) => `${b.name}=${b.address}:${b.port}`) },
        'dry run: proxy frontend not listening (checking its backends only)',
      );
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new VipdError(
            'VIPD_BIND_FAILED',
            `proxy frontend "${this.name}" cannot listen on ${host}:${port}: ${describeError(err)} (is another balancer, such as HAProxy, still running?)`,
            { cause: err },
          ),
        );
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
    this.keepAliveSweep = setInterval(() => {
      for (const relay of this.relays) relay.enableKeepAlive();
    }, KEEPALIVE_SWEEP_MS).unref();
    // Accept errors (EMFILE under a connection flood) must not crash the daemon.
    this.server.on('error', (err: NodeJS.ErrnoException) =>
      this.limited.warn('accept', { err: describeError(err) }, 'proxy listener error'),
    );
    this.log.info(
      {
        bind: `${host}:${this.address()?.port ?? port}`,
        backends: this.settings.backends.map((b) => `${b.name}=${b.address}:${b.port}`),
        balance: this.settings.balance,
      },
      'proxy frontend listening',
    );
  }

  /** The bound address (the real port when bind.port was 0), once listening. */
  address(): { host: string; port: number } | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /**
   * Applies new settings with the same bind address in place. Unchanged backends keep their state
   * and connections; removed ones drain (no new connections, existing ones run to their end); new
   * ones are checked at once.
   */
  update(settings: FrontendSettings): void {
    this.settings = settings;
    this.pool.balance = settings.balance;
    if (!settings.observe) {
      for (const b of this.pool.backends) if (b.passiveDown) b.setPassiveDown(false);
    }
    const current = this.pool.backends.filter((b) => !b.draining);
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
  }

  status(): FrontendStatus {
    return {
      name: this.name,
      bind: this.address() ?? this.settings.bind,
      listening: this.listening && this.closing === undefined,
      balance: this.pool.balance,
      hedgeDelayMs: this.hedgeDelayMs,
      activeConnections: this.relays.size,
      backends: this.pool.backends.map((b) => ({
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
    let bytesIn = this.closedBytesIn;
    let bytesOut = this.closedBytesOut;
    for (const r of this.relays) {
      bytesIn += r.bytesIn;
      bytesOut += r.bytesOut;
    }
    return { frontend: this.name, in: bytesIn, out: bytesOut };
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

  // --- RelayHost: called by relays -------------------------------------------------------------

  connected(backend: Backend, ms: number): void {
    this.connectTimes.record(ms);
    backend.overtaken = 0;
  }

  hedged(backend: Backend): void {
    backend.meters.hedges.inc();
  }

  hedgeWon(backend: Backend, slow: Backend): void {
    backend.meters.hedgeWins.inc();
    slow.overtaken += 1;
    if (slow.overtaken >= OVERTAKEN_LIMIT && this.settings.observe) {
      slow.overtaken = 0;
      this.markDownPassively(slow, `${OVERTAKEN_LIMIT} connects in a row overtaken by hedges`);
    }
  }

  finTimedOut(): void {
    this.finTimeoutMeter.inc();
  }

  connectFailed(backend: Backend, reason: string, next: NextStep, connecting: boolean): void {
    if (next === 'retry') this.retryMeter.inc();
    if (next === 'retry' && !connecting) this.unansweredRetryMeter.inc();
    this.limited.warn(
      `connect:${backend.name}`,
      {
        backend: backend.name,
        address: `${backend.address}:${backend.port}`,
        reason: connecting ? reason : `${reason} (connected, closed before answering)`,
        retry: next !== 'none',
      },
      'connect to backend failed',
    );
    if (connecting && this.settings.observe && MARK_DOWN_REASONS.has(reason)) this.markDownPassively(backend, reason);
  }

  unserved(reason: string): void {
    this.unservedMeter.inc();
    this.limited.warn('unserved', { reason }, 'client connection closed: no backend reachable');
  }

  relayDone(relay: ClientRelay): void {
    this.relays.delete(relay);
    if (relay.connection !== undefined) this.tell('closed', relay.connection);
    this.closedBytesIn += relay.bytesIn;
    this.closedBytesOut += relay.bytesOut;
    const backend = relay.backend;
    if (backend?.draining && backend.active === 0) this.retireBackend(backend);
    if (this.relays.size === 0) this.onDrained?.();
  }

  // --- internals -------------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    const observer = this.deps.connections;
    if (observer === undefined) {
      this.relays.add(new ClientRelay(socket, this));
      return;
    }
    // Read before the relay starts: a client it closes at once (no backend) has no addresses left.
    const connection: ClientConnection = {
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
    };
    const relay = new ClientRelay(socket, this);
    relay.connection = connection;
    this.relays.add(relay);
    // The relay ends in a later event ('close'), so opened() always comes before closed().
    this.tell('opened', connection);
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
    const address = `${backend.address}:${backend.port}`;
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
    const serverClosed = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    for (const checker of this.checkers.values()) checker.close();
    clearInterval(this.keepAliveSweep);
    if (this.relays.size > 0 && drainTimeoutMs > 0) {
      const active = this.relays.size;
      this.log.info({ activeConnections: active, drainTimeoutMs }, 'proxy frontend draining');
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onDrained = resolve;
        this.cutDrain = resolve;
        timer = setTimeout(resolve, drainTimeoutMs);
      });
      clearTimeout(timer);
    }
    const left = this.relays.size;
    for (const relay of [...this.relays]) relay.destroy();
    await serverClosed;
    for (const b of [...this.pool.backends]) this.retireBackend(b);
    this.listening = false;
    this.log.info({ closedConnections: left }, 'proxy frontend closed');
  }

  private addBackend(settings: BackendSettings): Backend {
    const backend = new Backend(settings, this.meters(settings.name));
    this.pool.add(backend);
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
    const fields = { backend: backend.name, address: `${backend.address}:${backend.port}`, check: record.detail };
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
    if (this.settings.shutdownOnMarkedDown) closed = backend.destroyRelays();
    this.log.warn({ ...fields, closedConnections: closed }, 'backend down');
  }

  private drainBackend(backend: Backend): void {
    backend.draining = true;
    this.checkers.get(backend)?.close();
    this.checkers.delete(backend);
    this.log.info(
      { backend: backend.name, activeConnections: backend.active },
      'backend removed; draining its connections',
    );
    if (backend.active === 0) this.retireBackend(backend);
  }

  private retireBackend(backend: Backend): void {
    this.checkers.get(backend)?.close();
    this.checkers.delete(backend);
    this.pool.remove(backend);
    // A reload may have replaced it by a backend of the same name, which owns those series now.
    if (this.pool.backends.some((b) => b.name === backend.name)) return;
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
    m.connectionsTotal.labels(labels).inc(0);
    m.connectFailures.labels(labels).inc(0);
    m.passiveMarkdowns.labels(labels).inc(0);
    m.hedges.labels(labels).inc(0);
    m.hedgeWins.labels(labels).inc(0);
    return meters;
  }
}
