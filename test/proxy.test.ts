/**
 * The balancer end to end on loopback: a vipd proxy on 127.0.0.20 in front of three stand-in
 * apiservers on 127.0.0.21-23, with real sockets and 100ms health checks.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { proxySchema } from '../src/config/schema';
import { createLogger } from '../src/log/logger';
import { registerProxyMetrics, type ProxyMetrics } from '../src/metrics/proxy-metrics';
import { TcpProxy } from '../src/proxy/proxy';
import { FakeApiserver, generateCert, pattern, type CertPair } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import { patternSha256, rawCall } from './helpers/raw-client';

const FRONT = '127.0.0.20';
const HOSTS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'] as const;
let cert: CertPair;

before(async () => {
  cert = await generateCert([...HOSTS]);
});

type FrontendInput = Record<string, unknown>;

/** Three fakes, a proxy in front of them, and everything closed by close(). */
class Lab {
  readonly logs: Record<string, unknown>[] = [];
  readonly registry = new Registry();
  readonly metrics: ProxyMetrics = registerProxyMetrics(this.registry);
  fakes: FakeApiserver[] = [];
  proxy!: TcpProxy;
  port = 0;
  private readonly opened = new Set<net.Socket>();

  static async start(frontend: FrontendInput = {}, proxyOver: Record<string, unknown> = {}): Promise<Lab> {
    const lab = new Lab();
    try {
      lab.fakes = await Promise.all(HOSTS.map((host, i) => FakeApiserver.start({ host, name: `b${i + 1}`, cert })));
      lab.proxy = new TcpProxy(lab.config(frontend, proxyOver), {
        log: createLogger({ level: 'info', destination: { write: (line: string) => { lab.logs.push(JSON.parse(line) as Record<string, unknown>); } } }),
        metrics: lab.metrics,
      });
      await lab.proxy.start();
      lab.port = lab.proxy.address('api')?.port ?? 0;
      await waitFor('all backends up', () => lab.states().every((s) => s === 'up'), { timeoutMs: 3000 });
      return lab;
    } catch (err) {
      await lab.close();
      throw err;
    }
  }

  /** A config as the loader would produce it, bound to an ephemeral port on FRONT. */
  config(frontend: FrontendInput = {}, proxyOver: Record<string, unknown> = {}, fakes = this.fakes) {
    const parsed = proxySchema.parse({
      drainTimeout: '2s',
      ...proxyOver,
      frontends: [{
        name: 'api',
        bind: `${FRONT}:6443`,
        backends: fakes.map((f) => ({ name: f.name, address: f.host, port: f.port })),
        connectTimeout: '1s',
        ...frontend,
        healthCheck: { interval: '100ms', timeout: '80ms', rise: 2, fall: 2, ...(frontend.healthCheck as object | undefined) },
      }],
    });
    // Port 0 (ephemeral) is not valid in a config file but is what the tests need; every reload
    // passes 0 again, so the bind address counts as unchanged.
    return { peers: [], proxy: { ...parsed, frontends: parsed.frontends.map((f) => ({ ...f, bind: { host: FRONT, port: 0 } })) } };
  }

  states(): string[] {
    return this.proxy.status().frontends[0]?.backends.map((b) => b.state) ?? [];
  }

  backend(name: string) {
    return this.proxy.status().frontends[0]?.backends.find((b) => b.name === name);
  }

  who(): Promise<string> {
    return rawCall(FRONT, this.port, 'WHO', { timeoutMs: 3000 }).then((b) => b.toString().trim());
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
    await Promise.all(this.fakes.map((f) => f.kill()));
  }
}

class HeldConnection {
  backend = '';
  private data = '';
  closed = false;
  readonly closedPromise: Promise<void>;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => { this.data += c; });
    socket.on('error', () => undefined);
    this.closedPromise = once(socket, 'close').then(() => { this.closed = true; });
  }

  /** Waits for `lines` more newline-terminated lines; returns them. */
  async read(lines: number, timeoutMs = 3000): Promise<string> {
    await waitFor('echo', () => (this.data.match(/\n/g)?.length ?? 0) >= lines || this.closed, { timeoutMs, everyMs: 2 });
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

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const count = (names: string[]) => names.reduce<Record<string, number>>((acc, n) => ({ ...acc, [n]: (acc[n] ?? 0) + 1 }), {});

describe('distribution', { timeout: 60_000 }, () => {
  it('roundrobin spreads new connections evenly over the backends', async () => {
    const lab = await Lab.start();
    try {
      const names: string[] = [];
      for (let i = 0; i < 30; i++) names.push(await lab.who());
      assert.deepEqual(count(names), { b1: 10, b2: 10, b3: 10 });
    } finally {
      await lab.close();
    }
  });

  it('leastconn sends held connections where there are fewest', async () => {
    const lab = await Lab.start({ balance: 'leastconn' });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 4; i++) held.push(await lab.echo());
      assert.deepEqual(held.map((h) => h.backend), ['b1', 'b2', 'b3', 'b1']);
      held[1]?.socket.destroy();
      await waitFor('one closed', () => lab.proxy.status().frontends[0]?.activeConnections === 3, { timeoutMs: 2000 });
      assert.equal((await lab.echo()).backend, 'b2', 'the backend with no connection left gets the next one');
      assert.equal((await lab.echo()).backend, 'b3', 'then a tie (b2 and b3 at 1) is taken in turn');
    } finally {
      await lab.close();
    }
  });
});

describe('failover', { timeout: 60_000 }, () => {
  it('a killed backend costs no client connection: connects are retried on the next backend', async () => {
    const lab = await Lab.start({ retries: 3 });
    try {
      let ok = 0;
      const failures: string[] = [];
      let inFlight = 0;
      let paused = false;
      let stop = false;
      const worker = async () => {
        for (let i = 0; i < 5000 && !stop; i++) {
          if (paused) {
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          inFlight += 1;
          try {
            if ((await lab.who()) === '') failures.push('empty answer');
            else ok += 1;
          } catch (err) {
            failures.push((err as Error).message);
          } finally {
            inFlight -= 1;
          }
        }
      };
      const workers = Promise.all(Array.from({ length: 8 }, worker));
      await new Promise((r) => setTimeout(r, 300));
      // Kill between requests: a request in flight on the killed backend is lost with it (as with
      // any balancer); the claim is about every connection made after.
      paused = true;
      await waitFor('no request in flight', () => inFlight === 0, { timeoutMs: 3000, everyMs: 1 });
      await lab.fakes[1]?.kill();
      paused = false;
      await new Promise((r) => setTimeout(r, 1200));
      stop = true;
      await workers;
      assert.deepEqual(failures, []);
      assert.ok(ok > 100, `only ${ok} connections in 1.5s`);
      assert.equal(lab.backend('b2')?.state, 'down');
      const m = await lab.registry.getSingleMetric('vipd_proxy_connect_failures_total')?.get();
      const b2Failures = m?.values.find((v) => v.labels.backend === 'b2')?.value ?? 0;
      const retries = (await lab.registry.getSingleMetric('vipd_proxy_retries_total')?.get())?.values[0]?.value ?? 0;
      assert.ok(b2Failures > 0, 'some connects reached the dead backend before its check did');
      assert.ok(retries >= b2Failures, `every failed connect (${b2Failures}) was retried (${retries})`);
      assert.ok(lab.logs.some((l) => l.msg === 'backend down' && l.backend === 'b2'));
    } finally {
      await lab.close();
    }
  });

  it('an unhealthy backend (503) leaves rotation after fall failures and returns after rise successes', async () => {
    const lab = await Lab.start();
    try {
      lab.fakes[0]?.setHealthy(false);
      const t0 = performance.now();
      await waitFor('b1 down', () => lab.backend('b1')?.state === 'down', { timeoutMs: 3000 });
      const tDown = performance.now() - t0;
      assert.ok(tDown >= 80, `down after ${tDown}ms: needs 2 failed checks 100ms apart`);
      assert.equal(lab.backend('b1')?.lastCheck?.detail, 'HTTP 503');
      const whileDown: string[] = [];
      for (let i = 0; i < 12; i++) whileDown.push(await lab.who());
      assert.deepEqual(count(whileDown), { b2: 6, b3: 6 });

      lab.fakes[0]?.setHealthy(true);
      await waitFor('b1 up', () => lab.backend('b1')?.state === 'up', { timeoutMs: 3000 });
      const afterUp: string[] = [];
      for (let i = 0; i < 12; i++) afterUp.push(await lab.who());
      assert.deepEqual(count(afterUp), { b1: 4, b2: 4, b3: 4 });
      const up = (await lab.registry.getSingleMetric('vipd_backend_up')?.get())?.values.map((v) => v.value);
      assert.deepEqual(up, [1, 1, 1]);
    } finally {
      await lab.close();
    }
  });

  it('still serves clients when every backend is marked down, rather than refusing them', async () => {
    const lab = await Lab.start();
    try {
      for (const f of lab.fakes) f.setHealthy(false);
      await waitFor('all down', () => lab.states().every((s) => s === 'down'), { timeoutMs: 3000 });
      assert.match(await lab.who(), /^b[123]$/);
    } finally {
      await lab.close();
    }
  });

  it('closes a connection when no backend can be reached, and counts it', async () => {
    const lab = await Lab.start({ retries: 2 });
    try {
      await Promise.all(lab.fakes.map((f) => f.kill()));
      await assert.rejects(lab.who().then((n) => { if (n === '') throw new Error('closed'); return n; }));
      const unserved = (await lab.registry.getSingleMetric('vipd_proxy_unserved_connections_total')?.get())?.values[0]?.value;
      assert.equal(unserved, 1);
    } finally {
      await lab.close();
    }
  });

  it('on-marked-down: a backend marked down has its connections closed; others keep theirs', async () => {
    const lab = await Lab.start({ shutdownOnMarkedDown: true });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 6; i++) held.push(await lab.echo());
      lab.fakes[0]?.setHealthy(false);
      await waitFor('b1 connections closed', () => held.filter((h) => h.backend === 'b1').every((h) => h.closed), { timeoutMs: 3000 });
      for (const h of held.filter((x) => x.backend !== 'b1')) {
        assert.equal(h.closed, false);
        assert.equal(await h.roundTrip('still here'), 'still here');
      }
      assert.ok(lab.logs.some((l) => l.msg === 'backend down' && l.closedConnections === 2));
    } finally {
      await lab.close();
    }
  });

  it('without shutdownOnMarkedDown, connections to a down backend stay open', async () => {
    const lab = await Lab.start({ shutdownOnMarkedDown: false });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 3; i++) held.push(await lab.echo());
      lab.fakes[0]?.setHealthy(false);
      await waitFor('b1 down', () => lab.backend('b1')?.state === 'down', { timeoutMs: 3000 });
      const b1 = held.find((h) => h.backend === 'b1');
      assert.equal(await b1?.roundTrip('alive'), 'alive');
    } finally {
      await lab.close();
    }
  });
});

describe('long-lived streams', { timeout: 60_000 }, () => {
  it('a watch stays open across many health-check cycles and across reloads', async () => {
    const lab = await Lab.start();
    let req: ReturnType<typeof https.get> | undefined;
    try {
      const arrivals: number[] = [];
      let ended = false;
      req = https.get({ host: FRONT, port: lab.port, path: '/api/v1/watch/events?watch=1', rejectUnauthorized: false, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => { for (const _ of chunk.matchAll(/\n/g)) arrivals.push(performance.now()); });
        res.on('close', () => { ended = true; });
      });
      req.on('error', () => { ended = true; });
      await waitFor('first event', () => arrivals.length > 0, { timeoutMs: 3000 });
      const watchBackend = lab.proxy.status().frontends[0]?.backends.find((b) => b.activeConnections === 1)?.name;
      assert.ok(watchBackend !== undefined);
      const checksBefore = lab.fakes.find((f) => f.name === watchBackend)?.requestCount ?? 0;

      await new Promise((r) => setTimeout(r, 1000));
      assert.ok((lab.fakes.find((f) => f.name === watchBackend)?.requestCount ?? 0) - checksBefore >= 6, 'several check cycles ran meanwhile');

      // Reload 1: new check timings and balance, same backends.
      await lab.proxy.reload(lab.config({ balance: 'leastconn', healthCheck: { interval: '150ms', timeout: '100ms' } }));
      await new Promise((r) => setTimeout(r, 400));
      // Reload 2: the watch's backend removed from the config; it drains, the watch keeps going.
      const others = lab.fakes.filter((f) => f.name !== watchBackend);
      await lab.proxy.reload(lab.config({}, {}, others));
      const countAtReload = arrivals.length;
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(ended, false, 'the watch was not cut');
      assert.ok(arrivals.length > countAtReload + 20, 'events kept flowing after the reload');
      const gaps = arrivals.slice(1).map((t, i) => t - (arrivals[i] ?? t));
      assert.ok(Math.max(...gaps) < 300, `longest pause between events ${Math.max(...gaps)}ms`);
      assert.equal(lab.backend(watchBackend)?.draining, true);
      for (let i = 0; i < 6; i++) assert.notEqual(await lab.who(), watchBackend, 'a draining backend gets no new connections');

      req.destroy();
      await waitFor('drained backend retired', () => lab.backend(watchBackend) === undefined, { timeoutMs: 2000 });
    } finally {
      req?.destroy();
      await lab.close();
    }
  });

  it('has no idle timeout by default, and honours one when configured', async () => {
    const lab = await Lab.start({ idleTimeout: '300ms' });
    try {
      const idle = await lab.echo();
      const t0 = performance.now();
      await waitFor('idle connection closed', () => idle.closed, { timeoutMs: 2000 });
      assert.ok(performance.now() - t0 >= 250);
      await lab.proxy.reload(lab.config({ idleTimeout: '0s' }));
      const forever = await lab.echo();
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(forever.closed, false);
      assert.equal(await forever.roundTrip('x'), 'x');
    } finally {
      await lab.close();
    }
  });
});

describe('byte integrity', { timeout: 60_000 }, () => {
  const SIZE = 256 * 1024 * 1024;
  // Proxy, backends and client share one event loop here; relaxed checks keep a loop stall during
  // the transfer from marking the backend down (and on-marked-down from cutting the transfer).
  const relaxed = { healthCheck: { interval: '1s', timeout: '800ms' } };

  it('256 MiB client -> backend arrives intact (sha256)', async () => {
    const lab = await Lab.start(relaxed);
    try {
      const reply = (await rawCall(FRONT, lab.port, 'SINK', { payload: pattern(SIZE), timeoutMs: 60_000 })).toString().trim();
      assert.equal(reply, `${patternSha256(SIZE)} ${SIZE}`);
    } finally {
      await lab.close();
    }
  });

  it('256 MiB backend -> client arrives intact (sha256), and the peer FIN comes through', async () => {
    const lab = await Lab.start(relaxed);
    try {
      const socket = net.connect({ host: FRONT, port: lab.port, allowHalfOpen: true });
      const hash = createHash('sha256');
      let bytes = 0;
      socket.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; });
      socket.write(`SOURCE ${SIZE}\n`);
      await Promise.race([once(socket, 'end'), new Promise((_, rej) => setTimeout(() => rej(new Error('no FIN within 60s')), 60_000).unref())]);
      assert.equal(bytes, SIZE);
      assert.equal(hash.digest('hex'), patternSha256(SIZE));
      socket.destroy();
      const bytesMetric = await lab.registry.getSingleMetric('vipd_proxy_bytes_total')?.get();
      const out = bytesMetric?.values.find((v) => v.labels.direction === 'out')?.value ?? 0;
      assert.ok(out >= SIZE, `vipd_proxy_bytes_total{direction="out"} = ${out}`);
    } finally {
      await lab.close();
    }
  });
});

describe('half-close', { timeout: 60_000 }, () => {
  it('client FIN first: the backend sees it and still answers', async () => {
    const lab = await Lab.start();
    try {
      const reply = await rawCall(FRONT, lab.port, 'ECHO', { payload: [Buffer.from('hello after which I FIN')] });
      assert.match(reply.toString(), /^b[123]\nhello after which I FIN$/);
    } finally {
      await lab.close();
    }
  });

  it('backend FIN first: the client still gets to send afterwards', async () => {
    const lab = await Lab.start();
    try {
      const socket = net.connect({ host: FRONT, port: lab.port, allowHalfOpen: true });
      let got = 0;
      socket.on('data', (c: Buffer) => { got += c.length; });
      const closed = once(socket, 'close');
      socket.write('SOURCE 1000\n');
      await once(socket, 'end');
      assert.equal(got, 1000);
      const done = Promise.race(lab.fakes.map((f) => once(f, 'sourceDone')));
      socket.end('sent after the server FIN');
      const [received] = (await done) as [number];
      assert.equal(received, 'sent after the server FIN'.length);
      await closed;
    } finally {
      await lab.close();
    }
  });
});

describe('scale', { timeout: 60_000 }, () => {
  it('serves 2,000 concurrent connections', async () => {
    const lab = await Lab.start();
    const sockets: net.Socket[] = [];
    try {
      const N = 2000;
      let echoed = 0;
      const connectOne = () => new Promise<void>((resolve, reject) => {
        const s = net.connect({ host: FRONT, port: lab.port });
        sockets.push(s);
        let buf = '';
        s.setEncoding('latin1');
        s.on('data', (c: string) => {
          buf += c;
          if (buf.endsWith('ping\n')) { echoed += 1; resolve(); }
        });
        s.once('error', reject);
        s.write('ECHO\nping\n');
      });
      for (let i = 0; i < N; i += 250) {
        await Promise.all(Array.from({ length: Math.min(250, N - i) }, connectOne));
      }
      assert.equal(echoed, N);
      const st = lab.proxy.status().frontends[0];
      assert.equal(st?.activeConnections, N);
      assert.deepEqual(st?.backends.map((b) => b.activeConnections), [667, 667, 666]);
      const active = (await lab.registry.getSingleMetric('vipd_proxy_connections_active')?.get())?.values.reduce((a, v) => a + v.value, 0);
      assert.equal(active, N);
      for (const s of sockets) s.end();
      await waitFor('all closed', () => lab.proxy.status().frontends[0]?.activeConnections === 0, { timeoutMs: 10_000 });
    } finally {
      for (const s of sockets) s.destroy();
      await lab.close();
    }
  });
});

describe('shutdown', { timeout: 60_000 }, () => {
  it('graceful close stops accepting and lets open connections finish', async () => {
    const lab = await Lab.start({}, { drainTimeout: '5s' });
    try {
      const held = await lab.echo();
      const t0 = performance.now();
      const closing = lab.proxy.close();
      await assert.rejects(rawCall(FRONT, lab.port, 'WHO', { timeoutMs: 1000 }), /ECONNREFUSED/);
      assert.equal(await held.roundTrip('draining'), 'draining');
      held.socket.end();
      await closing;
      assert.ok(performance.now() - t0 < 2000, 'close returned when the last connection ended, not at drainTimeout');
      assert.equal(held.closed || (await held.closedPromise.then(() => true)), true);
      await lab.proxy.close();
    } finally {
      await lab.close();
    }
  });

  it('graceful close destroys what is left at drainTimeout; destroy() cuts it short', async () => {
    const lab = await Lab.start({}, { drainTimeout: '400ms' });
    try {
      const held = await lab.echo();
      const t0 = performance.now();
      await lab.proxy.close();
      const took = performance.now() - t0;
      assert.ok(took >= 380 && took < 1500, `closed after ${took}ms`);
      await held.closedPromise;
      assert.ok(lab.logs.some((l) => l.msg === 'proxy frontend closed' && l.closedConnections === 1));
    } finally {
      await lab.close();
    }
  });

  it('destroy() during a long drain ends it at once', async () => {
    const lab = await Lab.start({}, { drainTimeout: '30s' });
    try {
      const held = await lab.echo();
      const t0 = performance.now();
      const closing = lab.proxy.close();
      await new Promise((r) => setTimeout(r, 100));
      await lab.proxy.destroy();
      await closing;
      await held.closedPromise;
      assert.ok(performance.now() - t0 < 2000);
    } finally {
      await lab.close();
    }
  });
});

describe('reload', { timeout: 60_000 }, () => {
  it('adds and removes backends in place without touching the listener', async () => {
    const lab = await Lab.start();
    const extra = await FakeApiserver.start({ host: HOSTS[0], name: 'b4', cert });
    try {
      const held = await lab.echo();
      await lab.proxy.reload(lab.config({}, {}, [...lab.fakes, extra]));
      await waitFor('b4 up', () => lab.backend('b4')?.state === 'up', { timeoutMs: 3000 });
      const names: string[] = [];
      for (let i = 0; i < 8; i++) names.push(await lab.who());
      assert.deepEqual(Object.keys(count(names)).sort(), ['b1', 'b2', 'b3', 'b4']);
      assert.equal(await held.roundTrip('unaffected'), 'unaffected');
      assert.equal(lab.proxy.address('api')?.port, lab.port);
    } finally {
      await extra.kill();
      await lab.close();
    }
  });

  it('moves a frontend to a new port: the old listener drains, the new one serves', async () => {
    const lab = await Lab.start();
    try {
      const held = await lab.echo();
      const newPort = await freePort(FRONT);
      const next = lab.config();
      await lab.proxy.reload({ ...next, proxy: { ...next.proxy, frontends: next.proxy.frontends.map((f) => ({ ...f, bind: { host: FRONT, port: newPort } })) } });
      assert.equal(lab.proxy.address('api')?.port, newPort);
      await assert.rejects(rawCall(FRONT, lab.port, 'WHO'), /ECONNREFUSED/, 'the old listener is closed');
      assert.match((await rawCall(FRONT, newPort, 'WHO')).toString(), /^b[123]\n$/);
      assert.equal(await held.roundTrip('old listener drains'), 'old listener drains');
    } finally {
      await lab.close();
    }
  });
});

describe('reload errors', { timeout: 60_000 }, () => {
  it('a config whose CA file cannot be read is refused before anything changes', async () => {
    const lab = await Lab.start();
    try {
      const bad = lab.config({ healthCheck: { tls: { verify: true, caFile: '/nonexistent/ca.pem' } } });
      assert.throws(() => new TcpProxy(bad, { log: pino({ level: 'silent' }) }), /healthCheck\.tls\.caFile: cannot read/);
      await assert.rejects(lab.proxy.reload(bad), /healthCheck\.tls\.caFile: cannot read "\/nonexistent\/ca\.pem": ENOENT/);
      assert.match(await lab.who(), /^b[123]$/);
      assert.deepEqual(lab.states(), ['up', 'up', 'up']);
    } finally {
      await lab.close();
    }
  });
});

describe('metrics', { timeout: 60_000 }, () => {
  it('exports the vipd_ proxy series', async () => {
    const lab = await Lab.start();
    try {
      await lab.who();
      const text = await lab.registry.metrics();
      for (const name of ['vipd_backend_up', 'vipd_proxy_connections_active', 'vipd_proxy_connections_total', 'vipd_proxy_connect_failures_total',
        'vipd_proxy_retries_total', 'vipd_proxy_bytes_total', 'vipd_health_checks_total']) {
        assert.match(text, new RegExp(`^${name}\\{`, 'm'), name);
      }
      assert.match(text, /^vipd_proxy_connections_total\{frontend="api",backend="b1"\} 1$/m);
      assert.match(text, /^vipd_health_checks_total\{frontend="api",backend="b1",result="success"\} [1-9]/m);
      assert.match(text, /^vipd_proxy_bytes_total\{frontend="api",direction="in"\} 4$/m);
    } finally {
      await lab.close();
    }
  });
});
