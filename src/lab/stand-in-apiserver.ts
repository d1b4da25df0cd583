/**
 * A stand-in kube-apiserver for the balancer's tests and the lab.
 *
 * One port serves two protocols, told apart by the first byte a client sends (0x16 opens every TLS
 * handshake), so a health check and the data-plane tests reach the same backend port, as they do
 * against a real apiserver:
 * - HTTPS (self-signed EC certificate made at start): /readyz, /livez, /healthz (503 while
 *   unhealthy), /version, a watch (/api/v1/watch/... or ?watch=1|true) that writes an event every
 *   few ms until closed, as the apiserver frames them (one `{"type":"ADDED","object":{...}}` line
 *   each, with a resourceVersion), so @kubernetes/client-node's Watch reads it; a watch of one
 *   named object (`fieldSelector=metadata.name=X`, as a kubelet watches its own Node) stays quiet,
 *   as it does while that object does not change; POST /upload (answers the sha256 of the body),
 *   /whoami.
 * - A raw line protocol for byte-exact tests (their client: test/helpers/raw-client.ts), the
 *   command being the first line:
 *     WHO          -> "<name>\n", then close.
 *     ECHO         -> "<name>\n", then echoes every byte; ends after the client ends (half-close).
 *     SINK         -> reads to the client's FIN, answers "<sha256> <bytes>\n", ends.
 *     SOURCE <n>   -> writes n pattern bytes and ends its side first, keeps reading to the
 *                     client's FIN, then emits 'sourceDone' with the bytes it got after its FIN.
 * A plain-HTTP listener with the same routes is available on `httpPort` for `type: http` checks.
 *
 * Standalone (the lab starts it inside network namespaces):
 *   node dist/src/lab/stand-in-apiserver.js --host H --port P [--name N] [--http-port P2] [--unhealthy]
 * prints one JSON line {"event":"listening",...}; SIGUSR1 makes it unhealthy, SIGUSR2 healthy,
 * SIGTERM/SIGINT close it.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { describeError } from '../errors';
import { waitFor } from './wait';

export interface CertPair {
  readonly key: string;
  readonly cert: string;
}

export interface FakeApiserverOptions {
  readonly host: string;
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  readonly name?: string;
  readonly healthy?: boolean;
  /** Shared by fixtures in one test run; generated for `host` when absent. */
  readonly cert?: CertPair;
  /** Also serve plain HTTP on this port (0 for any free port). */
  readonly httpPort?: number;
  readonly watchIntervalMs?: number;
}

const certCache = new Map<string, Promise<CertPair>>();

/** A self-signed EC certificate for these IP addresses (and "fake-apiserver"). Cached per set. */
export function generateCert(ips: readonly string[]): Promise<CertPair> {
  const key = [...ips].sort().join(',');
  let pending = certCache.get(key);
  if (pending === undefined) {
    pending = generate([{ name: 'commonName', value: 'kube-apiserver' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'keyUsage', digitalSignature: true, keyCertSign: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [{ type: 2, value: 'fake-apiserver' }, ...ips.map((ip) => ({ type: 7 as const, ip }))],
        },
      ],
    }).then((pems) => ({ key: pems.private, cert: pems.cert }));
    certCache.set(key, pending);
  }
  return pending;
}

interface FakeApiserverEvents {
  sourceDone: [received: number];
}

export class FakeApiserver extends EventEmitter<FakeApiserverEvents> {
  readonly name: string;
  readonly host: string;
  readonly cert: CertPair;
  port = 0;
  httpPort: number | undefined;
  /** TCP connections accepted on the main port, ever. */
  connectionCount = 0;
  requestCount = 0;
  private healthy: boolean;
  private readonly watchIntervalMs: number;
  private readonly server: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly https: http.Server;
  private plain: http.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly watches = new Set<http.ServerResponse>();
  private closing: Promise<void> | undefined;

  private constructor(opts: FakeApiserverOptions, cert: CertPair) {
    super();
    this.name = opts.name ?? `apiserver-${opts.host}`;
    this.host = opts.host;
    this.cert = cert;
    this.healthy = opts.healthy ?? true;
    this.watchIntervalMs = opts.watchIntervalMs ?? 5;
    this.https = http.createServer((req, res) => this.route(req, res));
    this.tlsServer = tls.createServer({ key: cert.key, cert: cert.cert }, (socket) =>
      this.https.emit('connection', socket),
    );
    this.tlsServer.on('tlsClientError', () => undefined);
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  static async start(opts: FakeApiserverOptions): Promise<FakeApiserver> {
    const cert = opts.cert ?? (await generateCert([opts.host]));
    const fake = new FakeApiserver(opts, cert);
    await listen(fake.server, opts.host, opts.port ?? 0);
    fake.port = (fake.server.address() as net.AddressInfo).port;
    if (opts.httpPort !== undefined) {
      fake.plain = http.createServer((req, res) => fake.route(req, res));
      fake.plain.on('connection', (s: net.Socket) => fake.track(s));
      await listen(fake.plain, opts.host, opts.httpPort);
      fake.httpPort = (fake.plain.address() as net.AddressInfo).port;
    }
    return fake;
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  setHealthy(healthy: boolean): void {
    this.healthy = healthy;
  }

  get activeConnections(): number {
    return this.sockets.size;
  }

  /** Graceful: stop listening, end watches, give connections a moment, then destroy them. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopListening();
      for (const res of this.watches) res.end();
      this.watches.clear();
      // A second for the connections to close on their own; whatever is still open then is destroyed.
      await waitFor('connections to close', () => this.sockets.size === 0, { timeoutMs: 1000 }).catch(() => undefined);
      this.destroySockets();
    })();
    return this.closing;
  }

  /** Like kill -9: stop listening and destroy every connection at once. Idempotent. */
  kill(): Promise<void> {
    this.stopListening();
    this.destroySockets();
    this.closing ??= Promise.resolve();
    return this.closing;
  }

  private stopListening(): void {
    if (this.server.listening) this.server.close();
    if (this.plain?.listening === true) this.plain.close();
    for (const res of this.watches) clearInterval(watchTimers.get(res));
  }

  private destroySockets(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
  }

  private accept(socket: net.Socket): void {
    this.connectionCount += 1;
    this.track(socket);
    // A client that ends before saying anything (a connect-only probe) is done: close, as the real
    // apiserver does, rather than leave a half-closed connection (and the balancer's relay) behind.
    const onEarlyEnd = () => socket.end();
    socket.once('end', onEarlyEnd);
    socket.once('data', (first: Buffer) => {
      socket.off('end', onEarlyEnd);
      if (first[0] === 0x16) {
        // tls.Server re-reads bytes unshifted into a socket it is handed (TLSSocket._init).
        socket.pause();
        socket.unshift(first);
        this.tlsServer.emit('connection', socket);
        return;
      }
      this.rawCommand(socket, first);
    });
  }

  private rawCommand(socket: net.Socket, first: Buffer): void {
    let head = first;
    const parsed = (): boolean => {
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > 256) socket.destroy();
        return head.length > 256;
      }
      const [command = '', arg] = head.subarray(0, nl).toString('latin1').trim().split(/\s+/);
      this.runRaw(socket, command, arg, head.subarray(nl + 1));
      return true;
    };
    if (parsed()) return;
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (parsed()) socket.off('data', onData);
    };
    socket.on('data', onData);
  }

  private runRaw(socket: net.Socket, command: string, arg: string | undefined, rest: Buffer): void {
    switch (command) {
      case 'WHO':
        socket.end(`${this.name}\n`);
        socket.resume();
        return;
      case 'ECHO':
        socket.write(`${this.name}\n`);
        if (rest.length > 0) socket.write(rest);
        socket.pipe(socket);
        return;
      case 'SINK': {
        const hash = createHash('sha256').update(rest);
        let bytes = rest.length;
        socket.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        socket.once('end', () => socket.end(`${hash.digest('hex')} ${bytes}\n`));
        return;
      }
      case 'SOURCE': {
        let received = rest.length;
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
        socket.once('end', () => {
          this.emit('sourceDone', received);
          socket.end();
        });
        void writePattern(socket, Number(arg ?? 0)).then(
          () => socket.end(),
          () => socket.destroy(),
        );
        return;
      }
      default:
        socket.end('ERR unknown command\n');
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requestCount += 1;
    const url = new URL(req.url ?? '/', 'https://fake');
    const path = url.pathname;
    if (path === '/readyz' || path === '/livez' || path === '/healthz') {
      res.writeHead(this.healthy ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(this.healthy ? 'ok' : `[-]etcd failed: reason withheld\n${path.slice(1)} check failed`);
      return;
    }
    if (path === '/version') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          major: '1',
          minor: '31',
          gitVersion: 'v1.31.0-vipd-fixture',
          platform: 'linux/amd64',
          server: this.name,
        }),
      );
      return;
    }
    if (path === '/whoami') {
      res.end(this.name);
      return;
    }
    if (path === '/upload' && req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      req.once('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ sha256: hash.digest('hex'), bytes }));
      });
      return;
    }
    if (
      path.startsWith('/api/v1/watch') ||
      url.searchParams.get('watch') === '1' ||
      url.searchParams.get('watch') === 'true'
    ) {
      this.watch(res, /(^|,)metadata\.name=/.test(url.searchParams.get('fieldSelector') ?? ''));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('404 page not found');
  }

  private watch(res: http.ServerResponse, quiet: boolean): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    // A quiet watch has nothing to send until the client or the server goes away.
    res.flushHeaders();
    let seq = 0;
    const timer = quiet
      ? undefined
      : setInterval(() => {
          seq += 1;
          const metadata = {
            name: `vipd-lab.${this.name}.${seq}`,
            namespace: 'default',
            resourceVersion: nextResourceVersion(),
          };
          const object = { apiVersion: 'v1', kind: 'Event', metadata, seq, server: this.name };
          res.write(`${JSON.stringify({ type: 'ADDED', object })}\n`);
        }, this.watchIntervalMs);
    if (timer !== undefined) watchTimers.set(res, timer);
    this.watches.add(res);
    res.once('close', () => {
      clearInterval(timer);
      this.watches.delete(res);
    });
  }
}

const watchTimers = new WeakMap<http.ServerResponse, NodeJS.Timeout>();

/**
 * etcd's revision stands behind every resourceVersion of a real cluster, one counter for all
 * apiservers; the stand-ins share none, so the clock in microseconds stands in for it: it grows
 * across the three of them and across restarts, which is all a watching client relies on.
 */
let lastResourceVersion = 0;
function nextResourceVersion(): string {
  lastResourceVersion = Math.max(lastResourceVersion + 1, Date.now() * 1000);
  return String(lastResourceVersion);
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

// --- the deterministic byte pattern SOURCE writes (the tests check it) -----------------------

const BLOCK = 1 << 20;
let baseBlock: Buffer | undefined;

/** Block i of the pattern: a fixed pseudo-random MiB, its first 8 bytes replaced by i. */
function patternBlock(index: number): Buffer {
  if (baseBlock === undefined) {
    baseBlock = Buffer.allocUnsafe(BLOCK);
    for (let off = 0, n = 0; off < BLOCK; off += 32, n++)
      createHash('sha256').update(`vipd-${n}`).digest().copy(baseBlock, off);
  }
  const block = Buffer.allocUnsafe(BLOCK);
  baseBlock.copy(block);
  block.writeBigUInt64BE(BigInt(index), 0);
  return block;
}

/** The first `bytes` bytes of the pattern, in blocks. */
export function* pattern(bytes: number): Generator<Buffer> {
  for (let i = 0, left = bytes; left > 0; i++, left -= BLOCK) {
    const block = patternBlock(i);
    yield left >= BLOCK ? block : block.subarray(0, left);
  }
}

/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Writes the pattern with backpressure; resolves when the last byte is queued. */
async function writePattern(socket: net.Socket, bytes: number): Promise<void> {
  for (const block of pattern(bytes)) {
    if (socket.destroyed) throw new Error('socket destroyed while writing');
    if (!socket.write(block)) await drained(socket);
  }
}

// --- standalone -----------------------------------------------------------------------------

function argValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: readonly string[]): Promise<void> {
  const host = argValue(args, '--host');
  const port = Number(argValue(args, '--port'));
  if (host === undefined || !(port >= 0 && port <= 65535)) {
    process.stderr.write(
      'usage: node dist/src/lab/stand-in-apiserver.js --host ADDRESS --port PORT [--name NAME] [--http-port PORT] [--unhealthy]\n',
    );
    process.exit(2);
  }
  const httpPortArg = argValue(args, '--http-port');
  const fake = await FakeApiserver.start({
    host,
    port,
    healthy: !args.includes('--unhealthy'),
    ...(argValue(args, '--name') === undefined ? {} : { name: argValue(args, '--name') as string }),
    ...(httpPortArg === undefined ? {} : { httpPort: Number(httpPortArg) }),
  });
  const say = (event: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ ...event, name: fake.name, pid: process.pid })}\n`);
  say({
    event: 'listening',
    host: fake.host,
    port: fake.port,
    ...(fake.httpPort === undefined ? {} : { httpPort: fake.httpPort }),
    healthy: fake.isHealthy,
  });
  process.on('SIGUSR1', () => {
    fake.setHealthy(false);
    say({ event: 'health', healthy: false });
  });
  process.on('SIGUSR2', () => {
    fake.setHealthy(true);
    say({ event: 'health', healthy: true });
  });
  const stop = () =>
    void fake.close().then(() => {
      say({ event: 'closed' });
      process.exit(0);
    });
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${JSON.stringify({ event: 'error', message: describeError(err) })}\n`);
    process.exit(1);
  });
}
