/**
 * The balancer on a thread of its own (worker_threads), as the daemon runs it: the election's
 * heartbeats, leases and netlink calls stay on the main thread's event loop, and the balancer's
 * load (thousands of connects, or of closes, at once after a failover) runs beside it instead of
 * delaying it. Measured before: 5,000 clients closing at once kept the shared loop busy for
 * 130-300 ms, long enough for the master's lease to lapse (docs/election.md, known limits).
 *
 * The same surface as TcpProxy for the daemon: start, reload, close, destroy and status (the
 * status the thread last pushed: every second and after each request), plus the thread's metrics
 * as exposition text, and the client connections told to `connections` in the order they happened.
 * A thread that fails or exits on its own is a crash of the daemon: the error is rethrown.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type ErrorCode, type ExitCode, VipdError } from '../errors';
import type { LogLevel } from '../log/logger';
import type { ConnectionObserver } from './frontend';
import type { ProxyStatus } from './proxy';
import { type ProxyConfigSource, proxySettings } from './settings';
import {
  fromEvent,
  type RequestOp,
  type SerializedError,
  type ThreadData,
  type ThreadMessage,
} from './thread-protocol';

export interface ProxyThreadOptions {
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'text';
  readonly node: string | undefined;
  readonly connections?: ConnectionObserver;
  /** Bind the listeners (default true); a dry run checks the backends only. */
  readonly listen?: boolean;
}

export class ProxyThread {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: string | undefined) => void; reject: (e: Error) => void }
  >();
  private last: ProxyStatus = { frontends: [] };
  private ending: Promise<void> | undefined;
  private exited = false;
  private crashed = false;

  /** Throws a ConfigError when the config's CA files cannot be read (checked here, before the thread). */
  constructor(
    config: ProxyConfigSource,
    private readonly options: ProxyThreadOptions,
  ) {
    proxySettings(config);
    const data: ThreadData = {
      config,
      logLevel: options.logLevel,
      logFormat: options.logFormat,
      node: options.node,
      observe: options.connections !== undefined,
      listen: options.listen ?? true,
    };
    this.worker = new Worker(join(__dirname, 'thread-main.js'), { workerData: data });
    this.worker.on('message', (m: ThreadMessage) => this.onMessage(m));
    this.worker.on('error', (err) => this.failed(err));
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (this.ending === undefined) this.failed(new Error(`the balancer's thread exited (code ${code})`));
      for (const p of this.pending.values()) p.reject(new Error("the balancer's thread is gone"));
      this.pending.clear();
    });
  }

  async start(): Promise<void> {
    await this.request('start');
  }

  async reload(config: ProxyConfigSource): Promise<void> {
    proxySettings(config);
    await this.request('reload', config);
  }

  /** The status as the thread last pushed it (at most a second old; fresh after each request). */
  status(): ProxyStatus {
    return this.last;
  }

  /** The thread's metrics (the vipd_proxy_* and vipd_backend_* families) as exposition text. */
  async metricsText(): Promise<string> {
    if (this.ending !== undefined) return '';
    return (await this.request('metrics')) ?? '';
  }

  /** Graceful: drain up to drainTimeout, destroy the rest, end the thread. Idempotent. */
  close(): Promise<void> {
    return this.end('close');
  }

  /** Abort every connection now and end the thread. Idempotent; also cuts a running close() short. */
  destroy(): Promise<void> {
    if (this.ending !== undefined && !this.exited) void this.request('destroy').catch(() => undefined);
    return this.end('destroy');
  }

  private end(op: 'close' | 'destroy'): Promise<void> {
    this.ending ??= this.request(op)
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => this.worker.terminate().then(() => undefined));
    return this.ending;
  }

  private request(op: RequestOp, config?: ProxyConfigSource): Promise<string | undefined> {
    if (this.exited) return Promise.reject(new Error("the balancer's thread is gone"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, config });
    });
  }

  private onMessage(m: ThreadMessage): void {
    switch (m.kind) {
      case 'status':
        this.last = m.status;
        return;
      case 'connections': {
        const observer = this.options.connections;
        if (observer === undefined) return;
        for (const e of m.events) {
          const { opened, connection } = fromEvent(e);
          if (opened) observer.opened(connection);
          else observer.closed(connection);
        }
        return;
      }
      case 'reply': {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(revive(m.error));
      }
    }
  }

  /** An unexpected failure of the thread: a crash of the daemon (cli/main.ts handles it). */
  private failed(err: Error): void {
    if (this.crashed) return;
    this.crashed = true;
    setImmediate(() => {
      throw err;
    });
  }
}

function revive(e: SerializedError): Error {
  if (e.code === undefined || !e.code.startsWith('VIPD_')) return new Error(e.message);
  return new VipdError(e.code as ErrorCode, e.message, { exitCode: e.exitCode as ExitCode | undefined });
}
