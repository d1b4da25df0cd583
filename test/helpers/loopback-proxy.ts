/**
 * vipd's balancer on loopback, for the balancer's tests: a TcpProxy on 127.0.0.20 (an ephemeral
 * port) in front of stand-in apiservers on 127.0.0.21-23 or any backend a test starts, with real
 * sockets, its log lines and its metrics kept. close() destroys it, then what was handed to own(),
 * in reverse.
 */
import { once } from 'node:events';
import net from 'node:net';
import { Registry } from 'prom-client';
import { proxySchema } from '../../src/config/schema';
import { type CertPair, FakeApiserver, generateCert } from '../../src/lab/stand-in-apiserver';
import { waitFor } from '../../src/lab/wait';
import { createLogger } from '../../src/log/logger';
import { type ProxyMetrics, registerProxyMetrics } from '../../src/metrics/proxy-metrics';
import type { ConnectionObserver } from '../../src/proxy/frontend';
import { TcpProxy } from '../../src/proxy/proxy';
import { rawCall } from './raw-client';

export const FRONT = '127.0.0.20';
export const HOSTS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'] as const;

export interface BackendSpec {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export const spec = (f: { name: string; host: string; port: number }): BackendSpec => ({
  name: f.name,
  address: f.host,
  port: f.port,
});

/** One certificate for every stand-in on HOSTS (made once per process). */
export const loopbackCert = (): Promise<CertPair> => generateCert([...HOSTS]);

/** Stand-in apiservers named `names`, the first on hosts[0], and so on. */
export async function standIns(names: readonly string[], hosts: readonly string[] = HOSTS): Promise<FakeApiserver[]> {
  const cert = await loopbackCert();
  return Promise.all(names.map((name, i) => FakeApiserver.start({ host: hosts[i] as string, name, cert })));
}

/** What every config() of a proxy starts from, before a test's own frontend settings. */
export interface FrontendBase {
  readonly connectTimeout: string;
  readonly healthCheck: Record<string, unknown>;
}

/** Active checks that stay out of the way (one at start, the next in ten minutes): the test decides. */
export const QUIET_BASE: FrontendBase = {
  connectTimeout: '2s',
  healthCheck: { interval: '10m', timeout: '59s', rise: 2, fall: 2 },
};

/** Checks every 100 ms: a backend's state follows its health within a few hundred ms. */
export const FAST_BASE: FrontendBase = {
  connectTimeout: '1s',
  healthCheck: { interval: '100ms', timeout: '80ms', rise: 2, fall: 2 },
};

export interface ConfigOptions {
  /** The backends of the proxy's start unless given. */
  readonly backends?: readonly BackendSpec[];
  /** 2 s unless given. */
  readonly drainTimeout?: string;
  /** proxy.threads: 1 unless given. */
  readonly threads?: number;
}

export interface LoopbackOptions {
  /** QUIET_BASE unless given. */
  readonly base?: FrontendBase;
  /** Backends to wait for (5 s each) before start() resolves. */
  readonly waitUp?: readonly string[];
  readonly observer?: ConnectionObserver;
  readonly drainTimeout?: string;
  readonly threads?: number;
  readonly level?: 'info' | 'debug';
  /** Bind the listener (default); false checks the backends only, as a dry run does. */
  readonly listen?: boolean;
}

/** A proxy in front of `backends`; close() closes it and everything registered with own(). */
export class LoopbackProxy {
  readonly logs: Record<string, unknown>[] = [];
  readonly registry = new Registry();
  readonly metrics: ProxyMetrics = registerProxyMetrics(this.registry);
  /** The stand-ins of withStandIns(), b1 first. */
  fakes: FakeApiserver[] = [];
  proxy!: TcpProxy;
  port = 0;
  private readonly closers: Array<() => unknown> = [];
  private readonly opened = new Set<net.Socket>();

  private constructor(
    private readonly backends: readonly BackendSpec[],
    private readonly base: FrontendBase,
  ) {}

  static async start(
    backends: readonly BackendSpec[],
    frontend: Record<string, unknown> = {},
    options: LoopbackOptions = {},
  ): Promise<LoopbackProxy> {
    const bed = new LoopbackProxy(backends, options.base ?? QUIET_BASE);
    try {
      await bed.listen(frontend, options);
      return bed;
    } catch (err) {
      await bed.close();
      throw err;
    }
  }

  /** Stand-ins b1-b3 on HOSTS behind a proxy with FAST_BASE checks, once all three are up. */
  static async withStandIns(
    frontend: Record<string, unknown> = {},
    options: { drainTimeout?: string; threads?: number } = {},
  ): Promise<LoopbackProxy> {
    const fakes = await standIns(['b1', 'b2', 'b3']);
    const bed = new LoopbackProxy(fakes.map(spec), FAST_BASE);
    bed.fakes = fakes;
    for (const f of fakes) bed.own(() => f.kill());
    try {
      await bed.listen(frontend, { drainTimeout: options.drainTimeout, threads: options.threads });
      await waitFor('all backends up', () => bed.states().every((s) => s === 'up'), { timeoutMs: 3000 });
      return bed;
    } catch (err) {
      await bed.close();
      throw err;
    }
  }

  /** A config as the loader would produce it, bound to an ephemeral port on FRONT. */
  config(frontend: Record<string, unknown> = {}, options: ConfigOptions = {}) {
    const backends = options.backends ?? this.backends;
    const parsed = proxySchema.parse({
      drainTimeout: options.drainTimeout ?? '2s',
      threads: options.threads ?? 1,
      frontends: [
        {
          name: 'api',
          bind: `${FRONT}:6443`,
          backends,
          connectTimeout: this.base.connectTimeout,
          ...frontend,
          healthCheck: { ...this.base.healthCheck, ...(frontend.healthCheck as object | undefined) },
        },
      ],
    });
    // Port 0 (ephemeral) is not valid in a config file but is what the tests need; every reload
    // passes 0 again, so the bind address counts as unchanged.
    const frontends = parsed.frontends.map((f) => ({ ...f, bind: { host: FRONT, port: 0 } }));
    return { peers: [], proxy: { ...parsed, frontends } };
  }

  own(closer: () => unknown): void {
    this.closers.push(closer);
  }

  backend(name: string) {
    return this.proxy?.status().frontends[0]?.backends.find((b) => b.name === name);
  }

  states(): string[] {
    return this.proxy.status().frontends[0]?.backends.map((b) => b.state) ?? [];
  }

  /** Relayed connections now. */
  active(): number {
    return this.proxy.status().frontends[0]?.activeConnections ?? -1;
  }

  /** A metric's value summed over its series (of one backend, if named). */
  async metric(name: string, backend?: string): Promise<number> {
    const values = (await this.registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => backend === undefined || v.labels.backend === backend)
      .reduce((sum, v) => sum + v.value, 0);
  }

  /** The name of the backend that answers WHO through the proxy. */
  who(timeoutMs = 5000): Promise<string> {
    return rawCall(FRONT, this.port, 'WHO', { timeoutMs }).then((b) => b.toString().trim());
  }

  /** An ECHO connection held open; resolves once the backend has said its name. */
  async echo(): Promise<HeldConnection> {
    // Not half-open: a FIN from the proxy (a connection it shut) closes the whole connection here.
    const socket = net.connect({ host: FRONT, port: this.port });
    this.opened.add(socket);
    socket.once('close', () => this.opened.delete(socket));
    const held = new HeldConnection(socket);
    socket.write('ECHO\n');
    held.backend = (await held.read(1)).trim();
    return held;
  }

  async close(): Promise<void> {
    for (const s of this.opened) s.destroy();
    await this.proxy?.destroy();
    for (const close of this.closers.reverse()) await close();
  }

  private async listen(frontend: Record<string, unknown>, options: LoopbackOptions): Promise<void> {
    this.proxy = new TcpProxy(this.config(frontend, { drainTimeout: options.drainTimeout, threads: options.threads }), {
      log: createLogger({
        level: options.level ?? 'info',
        destination: {
          write: (line: string) => {
            this.logs.push(JSON.parse(line) as Record<string, unknown>);
          },
        },
      }),
      metrics: this.metrics,
      connections: options.observer,
      listen: options.listen,
    });
    await this.proxy.start();
    this.port = this.proxy.address('api')?.port ?? 0;
    for (const name of options.waitUp ?? []) {
      await waitFor(`${name} up`, () => this.backend(name)?.state === 'up', { timeoutMs: 5000 });
    }
  }
}

/** A connection through the proxy to an ECHO backend, read line by line. */
export class HeldConnection {
  backend = '';
  closed = false;
  readonly closedPromise: Promise<void>;
  private data = '';

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      this.data += c;
    });
    socket.on('error', () => undefined);
    this.closedPromise = once(socket, 'close').then(() => {
      this.closed = true;
    });
  }

  /** Waits for `lines` more newline-terminated lines; returns them. */
  async read(lines: number, timeoutMs = 3000): Promise<string> {
    await waitFor('echo', () => (this.data.match(/\n/g)?.length ?? 0) >= lines || this.closed, {
      timeoutMs,
      everyMs: 2,
    });
    const parts = this.data.split('\n');
    const out = parts.slice(0, lines).join('\n');
    this.data = parts.slice(lines).join('\n');
    return out;
  }

  async roundTrip(text: string): Promise<string> {
    this.socket.write(`${text}\n`);
    return this.read(1);
  }
}

/** A port nothing listens on at `host` (free a moment ago). */
export async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** How many times each name occurs. */
export const count = (names: readonly string[]) =>
  names.reduce<Record<string, number>>((acc, n) => {
    acc[n] = (acc[n] ?? 0) + 1;
    return acc;
  }, {});
