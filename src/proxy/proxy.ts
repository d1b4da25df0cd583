/**
 * The balancer: every frontend of the config, started together, reloaded in place, closed in
 * reverse. It only composes frontends; what happens to a connection is native/relay.cc's, driven
 * by frontend.ts.
 */
import { Registry } from 'prom-client';
import type { Logger } from '../log/logger';
import { type ByteTotals, type ProxyMetrics, registerProxyMetrics } from '../metrics/proxy-metrics';
import { type ConnectionObserver, Frontend, type FrontendStatus } from './frontend';
import { type FrontendSettings, type ProxyConfigSource, type ProxySettings, proxySettings } from './settings';

export interface ProxyDeps {
  readonly log: Logger;
  /** From registerProxyMetrics on the thread's registry (thread-main.ts); a private registry when absent. */
  readonly metrics?: ProxyMetrics;
  /** Told of every client connection of every frontend (see ConnectionObserver). */
  readonly connections?: ConnectionObserver;
  /** Bind the listeners (the default); false checks the backends only (a dry run). */
  readonly listen?: boolean;
}

export interface ProxyStatus {
  readonly frontends: readonly FrontendStatus[];
}

export class TcpProxy {
  private settings: ProxySettings;
  private readonly metrics: ProxyMetrics;
  private frontends: Frontend[] = [];
  /** Frontends dropped by a reload, still draining, with their close; close() waits for them too. */
  private readonly retiring = new Map<Frontend, Promise<void>>();
  /** Bytes of frontends already gone, so vipd_proxy_bytes_total never goes down. */
  private readonly retiredBytes = new Map<string, { in: number; out: number }>();
  private started = false;
  private closing: Promise<void> | undefined;

  /** Throws a ConfigError when the config's CA files cannot be read. */
  constructor(
    config: ProxyConfigSource,
    private readonly deps: ProxyDeps,
  ) {
    this.settings = proxySettings(config);
    this.metrics = deps.metrics ?? registerProxyMetrics(new Registry());
    this.frontends = this.settings.frontends.map((f) => this.newFrontend(f));
    this.metrics.setBytesSource(() => this.byteTotals());
    this.metrics.setSync(() => {
      for (const f of [...this.frontends, ...this.retiring.keys()]) f.syncCounters();
    });
  }

  /** Starts every frontend; on a bind failure closes those started and rejects (VIPD_BIND_FAILED). */
  async start(): Promise<void> {
    if (this.started || this.closing !== undefined) return;
    this.started = true;
    try {
      for (const f of this.frontends) await f.start();
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  /**
   * Applies a new config without dropping connections: frontends are matched by name; a changed
   * bind address replaces the frontend (the old one drains); everything else changes in place.
   * Throws (changing nothing) when the new config's CA files cannot be read; validating the rest
   * is the caller's business. Rejects with VIPD_BIND_FAILED when a new listener cannot bind.
   */
  async reload(config: ProxyConfigSource): Promise<void> {
    const next = proxySettings(config);
    if (this.closing !== undefined) return;
    this.settings = next;
    const kept: Frontend[] = [];
    const added: Frontend[] = [];
    for (const f of next.frontends) {
      const old = this.frontends.find((o) => o.name === f.name);
      if (old !== undefined && sameBind(old.bind, f.bind)) {
        old.update(f);
        kept.push(old);
      } else {
        added.push(this.newFrontend(f));
      }
    }
    // Free the ports first: a frontend renamed or moved may take over its predecessor's port.
    for (const old of this.frontends) {
      if (!kept.includes(old)) this.retire(old);
    }
    this.frontends = [...kept, ...added];
    if (this.started) {
      for (const f of added) await f.start();
    }
  }

  status(): ProxyStatus {
    return { frontends: this.frontends.map((f) => f.status()) };
  }

  /** The bound address of a frontend (the real port when its bind port was 0). */
  address(frontend: string): { host: string; port: number } | undefined {
    return this.frontends.find((f) => f.name === frontend)?.address();
  }

  /** Graceful: stop accepting everywhere, drain up to drainTimeout, destroy the rest. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown((f) => f.close(this.settings.drainTimeoutMs));
    return this.closing;
  }

  /** Abort every connection now. Idempotent; also cuts a running close() short. */
  destroy(): Promise<void> {
    for (const f of [...this.frontends, ...this.retiring.keys()]) void f.destroy();
    this.closing ??= this.shutdown((f) => f.destroy());
    return this.closing;
  }

  private async shutdown(each: (f: Frontend) => Promise<void>): Promise<void> {
    await Promise.all([...this.frontends.map(each), ...this.retiring.values()]);
  }

  private newFrontend(settings: FrontendSettings): Frontend {
    return new Frontend(settings, {
      log: this.deps.log,
      metrics: this.metrics,
      connections: this.deps.connections,
      listen: this.deps.listen,
      threads: this.settings.threads,
    });
  }

  private retire(frontend: Frontend): void {
    const done = frontend.close(this.settings.drainTimeoutMs).finally(() => {
      this.retiring.delete(frontend);
      const t = frontend.byteTotals();
      const sum = this.retiredBytes.get(t.frontend) ?? { in: 0, out: 0 };
      this.retiredBytes.set(t.frontend, { in: sum.in + t.in, out: sum.out + t.out });
    });
    this.retiring.set(frontend, done);
  }

  private byteTotals(): ByteTotals[] {
    const sums = new Map(this.retiredBytes);
    for (const f of [...this.frontends, ...this.retiring.keys()]) {
      const t = f.byteTotals();
      const sum = sums.get(t.frontend) ?? { in: 0, out: 0 };
      sums.set(t.frontend, { in: sum.in + t.in, out: sum.out + t.out });
    }
    return [...sums].map(([frontend, t]) => ({ frontend, in: t.in, out: t.out }));
  }
}

function sameBind(a: FrontendSettings['bind'], b: FrontendSettings['bind']): boolean {
  return a.host === b.host && a.port === b.port;
}
