/**
 * The admin endpoint (`health.listen`): /healthz, /readyz, /metrics, /status and POST /-/reload over
 * plain HTTP, on loopback by default (it is not authenticated). The static pod's probes use it.
 * Nothing here decides anything: it asks the daemon (AdminSource) and answers.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort } from '../config/host-port';
import { describeError, VipdError } from '../errors';
import { VERSION } from '../version';
import type { AdminSource } from './status';

/** The Server header: `vipd status` and `vipd reload` check it before they trust an answer. */
const SERVER = `vipd/${VERSION}`;

export class AdminServer {
  private readonly server: http.Server;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly source: AdminSource,
    private readonly listen: { host: string; port: number },
  ) {
    this.server = http.createServer((req, res) => {
      void this.handle(req, res);
    });
    // Probes and scrapes are short; a stuck client must not hold a socket forever.
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const where = formatHostPort(this.listen.host, this.listen.port);
      const onError = (err: Error) =>
        reject(
          new VipdError(
            'VIPD_BIND_FAILED',
            `cannot listen on ${where} for the health endpoint: ${err.message} (health.listen)`,
            { cause: err },
          ),
        );
      this.server.once('error', onError);
      this.server.listen(this.listen.port, this.listen.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops listening and closes idle and open connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/-/reload') {
      // Prometheus' convention. POST only, so a crawler or a probe can never trigger it.
      if (req.method !== 'POST') return this.send(res, 405, 'text/plain', 'use POST\n');
      const c = await this.source.reload();
      return this.send(
        res,
        c.ok ? 200 : 400,
        'text/plain',
        `${c.ok ? 'reloaded' : 'kept the running config'}: ${c.reason}\n`,
      );
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return this.send(res, 405, 'text/plain', 'method not allowed\n');
    }
    try {
      switch (path) {
        case '/healthz':
        case '/livez': {
          const c = this.source.healthy();
          return this.send(res, c.ok ? 200 : 503, 'text/plain', `${c.ok ? 'ok' : 'unhealthy'}: ${c.reason}\n`);
        }
        case '/readyz': {
          const c = this.source.ready();
          return this.send(res, c.ok ? 200 : 503, 'text/plain', `${c.ok ? 'ok' : 'not ready'}: ${c.reason}\n`);
        }
        case '/metrics': {
          const m = await this.source.metricsText();
          return this.send(res, 200, m.contentType, m.body);
        }
        case '/status':
          return this.send(res, 200, 'application/json', `${JSON.stringify(this.source.status(), null, 2)}\n`);
        default:
          return this.send(res, 404, 'text/plain', 'not found: try /healthz, /readyz, /metrics or /status\n');
      }
    } catch (err) {
      return this.send(res, 500, 'text/plain', `error: ${describeError(err)}\n`);
    }
  }

  private send(res: http.ServerResponse, code: number, type: string, body: string): void {
    res.writeHead(code, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      server: SERVER,
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }
}
