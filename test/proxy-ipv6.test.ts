/**
 * The balancer over IPv6, with real sockets on loopback (::1 and 127.0.0.x only):
 * - the native relay (native/relay.cc) on a specific IPv6 address, on "::" (dual stack: an IPv4
 *   client is taken and reported as plain IPv4, as src/takeover needs it), and on IPv4 in front of
 *   an IPv6 backend; backends of both families in one rotation, a refused IPv6 connect retried;
 *   the kernel's view of which listeners collide, as config/address-rules.ts assumes it;
 * - the health checks (src/checks/probe.ts) and the local apiserver tracker against an IPv6
 *   apiserver, the Host header and the URL bracketed;
 * - a TcpProxy from a config bound to "[::1]:PORT" in front of stand-in apiservers on ::1: checked
 *   up, relayed to in turn, observed, and shown bracketed in its logs.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { probe } from '../src/checks/probe';
import type { CheckSettings } from '../src/checks/settings';
import { proxySchema, trackApiserverSchema } from '../src/config/schema';
import { type CertPair, FakeApiserver, generateCert } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import { createLogger } from '../src/log/logger';
import { registerProxyMetrics } from '../src/metrics/proxy-metrics';
import {
  type ClientConnection,
  dispatchRelayEvents,
  type EngineBackend,
  loadRelayBinding,
  type NativeRelayEngine,
  type NextStep,
  type RelayEvents,
} from '../src/native/relay-engine';
import { TcpProxy } from '../src/proxy/proxy';
import { ApiserverTracker } from '../src/track/apiserver';
import { rawCall } from './helpers/raw-client';

const V6 = '::1';

/** What the engine reported: connections opened and closed, failed connects. */
class Recorder implements RelayEvents {
  readonly opens: ClientConnection[] = [];
  readonly closes: ClientConnection[] = [];
  readonly failed: { backend: number; reason: string; next: NextStep }[] = [];
  opened(c: ClientConnection): void {
    this.opens.push(c);
  }
  closed(c: ClientConnection): void {
    this.closes.push(c);
  }
  connected(): void {}
  connectFailed(backend: number, reason: string, next: NextStep): void {
    this.failed.push({ backend, reason, next });
  }
  hedgeWon(): void {}
  unserved(): void {}
  backendIdle(): void {}
  drained(): void {}
  acceptError(): void {}
}

/** A backend that answers "<name>:<what it read>" once the client has sent its FIN; who it saw is kept. */
interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly server: net.Server;
  /** Each accepted connection's remote address: the relay's side of it. */
  readonly peers: string[];
  readonly sockets: Set<net.Socket>;
}

async function backend(name: string, host: string): Promise<Backend> {
  const peers: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    peers.push(s.remoteAddress ?? '');
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end(`${name}:${Buffer.concat(chunks).toString()}`));
  });
  server.listen(0, host);
  await once(server, 'listening');
  return { name, host, port: (server.address() as net.AddressInfo).port, server, peers, sockets };
}

async function closeBackend(b: Backend): Promise<void> {
  for (const s of b.sockets) s.destroy();
  await new Promise<void>((resolve) => b.server.close(() => resolve()));
}

/** Sends `text` and a FIN to host:port; the reply, and the client socket's own end of it. */
function call(
  host: string,
  port: number,
  text: string,
): Promise<{ reply: string; localAddress: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let local = { localAddress: '', localPort: 0 };
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${host}:${port} in 3 s`)), 3000);
    socket.once('connect', () => {
      local = { localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0 };
      socket.end(text);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve({ reply: Buffer.concat(chunks).toString(), ...local });
    });
  });
}

describe('native relay over IPv6', { timeout: 60_000 }, () => {
  const cleanup: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  /** An engine reporting connections, in front of `backends` (ids 1, 2, ...), listening on host. */
  function engine(host: string, backends: readonly { host: string; port: number }[], port = 0) {
    const { RelayEngine } = loadRelayBinding();
    const events = new Recorder();
    const e: NativeRelayEngine = new RelayEngine((batch) => dispatchRelayEvents(batch, events), 1, true);
    cleanup.push(() => e.close());
    e.configure(1000, 3, 0, 0, 30_000, false, 5000);
    e.setBackends(
      backends.map(
        (b, i): EngineBackend => ({ id: i + 1, address: b.host, port: b.port, routable: true, draining: false }),
      ),
    );
    return { engine: e, events, port: e.listen(host, port, 128) };
  }

  async function up(name: string, host: string): Promise<Backend> {
    const b = await backend(name, host);
    cleanup.push(() => closeBackend(b));
    return b;
  }

  it('a listener on [::1] relays to an IPv6 backend on ::1 and reports the client as IPv6', async () => {
    const b6 = await up('b6', V6);
    const { events, port } = engine(V6, [b6]);
    const r = await call(V6, port, 'hello');
    assert.equal(r.reply, 'b6:hello');
    assert.deepEqual(b6.peers, [V6], 'the relay connected to the backend over IPv6');
    const client = { localAddress: V6, localPort: port, remoteAddress: V6, remotePort: r.localPort };
    assert.deepEqual(events.opens, [client]);
    await waitFor('closed reported', () => events.closes.length === 1, { timeoutMs: 2000 });
    assert.deepEqual(events.closes, [client]);
  });

  it('a dual-stack [::] listener takes IPv4 clients, reported as plain IPv4 (not ::ffff:), and IPv6 ones', async () => {
    const b6 = await up('b6', V6);
    const { events, port } = engine('::', [b6]);
    const v4 = await call('127.0.0.1', port, 'four');
    const other = await call('127.0.0.71', port, 'four again');
    const v6 = await call(V6, port, 'six');
    assert.deepEqual([v4.reply, other.reply, v6.reply], ['b6:four', 'b6:four again', 'b6:six']);
    assert.deepEqual(events.opens, [
      { localAddress: '127.0.0.1', localPort: port, remoteAddress: '127.0.0.1', remotePort: v4.localPort },
      { localAddress: '127.0.0.71', localPort: port, remoteAddress: '127.0.0.1', remotePort: other.localPort },
      { localAddress: V6, localPort: port, remoteAddress: V6, remotePort: v6.localPort },
    ]);
    await waitFor('all closed', () => events.closes.length === 3, { timeoutMs: 2000 });
    assert.deepEqual(
      events.closes.map((c) => c.remoteAddress),
      ['127.0.0.1', '127.0.0.1', V6],
    );
  });

  it('an IPv4 listener relays to an IPv6 backend, and rotates over backends of both families', async () => {
    const b6 = await up('b6', V6);
    const b4 = await up('b4', '127.0.0.72');
    const { events, port } = engine('127.0.0.70', [b6, b4]);
    const replies: string[] = [];
    for (let i = 0; i < 4; i++) replies.push((await call('127.0.0.70', port, `n${i}`)).reply);
    assert.deepEqual(replies, ['b6:n0', 'b4:n1', 'b6:n2', 'b4:n3']);
    assert.deepEqual(b6.peers, [V6, V6], 'each backend connected with its own family');
    assert.deepEqual(b4.peers, ['127.0.0.1', '127.0.0.1'], "over IPv4, from lo's source address");
    assert.ok(
      events.opens.every((c) => c.localAddress === '127.0.0.70' && c.remoteAddress === '127.0.0.1'),
      JSON.stringify(events.opens),
    );
  });

  it('a refused IPv6 connect is reported by its errno and retried on the next backend', async () => {
    const gone = await backend('gone', V6);
    await closeBackend(gone); // its port on ::1 now refuses
    const b4 = await up('b4', '127.0.0.73');
    const { events, port } = engine(V6, [gone, b4]);
    assert.equal((await call(V6, port, 'x')).reply, 'b4:x');
    assert.deepEqual(events.failed, [{ backend: 1, reason: 'ECONNREFUSED', next: 'retry' }]);
  });

  it('the kernel agrees with the config rules: [::] collides with 0.0.0.0 on a port, [::1] does not', () => {
    const b = { host: V6, port: 9 }; // never connected to: no client comes
    const wild = engine('::', [b]);
    assert.throws(() => engine('0.0.0.0', [b], wild.port), { code: 'EADDRINUSE' });
    const four = engine('0.0.0.0', [b]);
    const six = engine(V6, [b], four.port);
    assert.equal(six.port, four.port, 'a specific IPv6 address beside the IPv4 wildcard');
    assert.throws(() => engine('::', [b], four.port), { code: 'EADDRINUSE' });
  });

  it('refuses an address that is neither family, or bracketed', () => {
    for (const host of ['[::1]', 'fd00::g', 'localhost']) {
      assert.throws(() => engine(host, []), { code: 'ERR_INVALID_ARG_TYPE', message: /IPv4 or IPv6 address/ }, host);
    }
  });
});

describe('health checks of an IPv6 apiserver', { timeout: 30_000 }, () => {
  let cert: CertPair;
  let fake: FakeApiserver;
  before(async () => {
    cert = await generateCert([V6]);
    fake = await FakeApiserver.start({ host: V6, name: 'six', cert, httpPort: 0 });
  });
  after(async () => {
    await fake.kill();
  });
  const check = (over: Partial<CheckSettings> = {}): CheckSettings => ({
    type: 'https',
    path: '/readyz',
    intervalMs: 100,
    timeoutMs: 1000,
    rise: 2,
    fall: 2,
    tls: { verify: false },
    ...over,
  });

  it('https, http and tcp checks pass against it, and fail by their reason', async () => {
    const target = { address: V6, port: fake.port };
    assert.deepEqual((({ ok, detail }) => [ok, detail])(await probe(target, check())), [true, 'HTTP 200']);
    const byIp = await probe(target, check({ tls: { verify: true, ca: Buffer.from(cert.cert) } }));
    assert.deepEqual(
      [byIp.ok, byIp.detail],
      [true, 'HTTP 200'],
      'verified against the IPv6 address in the certificate',
    );
    const http6 = await probe({ address: V6, port: fake.httpPort ?? 0 }, check({ type: 'http' }));
    assert.deepEqual([http6.ok, http6.detail], [true, 'HTTP 200']);
    fake.setHealthy(false);
    try {
      const sick = await probe(target, check());
      assert.deepEqual([sick.ok, sick.detail], [false, 'HTTP 503']);
    } finally {
      fake.setHealthy(true);
    }
    const closed = await backend('closed', V6);
    await closeBackend(closed);
    const refused = await probe({ address: V6, port: closed.port }, check({ type: 'tcp' }));
    assert.deepEqual([refused.ok, refused.detail], [false, 'ECONNREFUSED']);
  });

  it('asks with a bracketed Host header', async () => {
    const seen: { host: string | undefined; url: string | undefined }[] = [];
    const server = http.createServer((req, res) => {
      seen.push({ host: req.headers.host, url: req.url });
      res.end('ok');
    });
    server.listen(0, V6);
    await once(server, 'listening');
    try {
      const { port } = server.address() as net.AddressInfo;
      const r = await probe({ address: V6, port }, check({ type: 'http' }));
      assert.equal(r.ok, true, r.detail);
      assert.deepEqual(seen, [{ host: `[::1]:${port}`, url: '/readyz' }]);
    } finally {
      server.close();
    }
  });

  it('the local apiserver tracker checks it and names it by a bracketed URL', async () => {
    const settings = trackApiserverSchema.parse({ port: fake.port, interval: '100ms', timeout: '80ms' });
    const tracker = new ApiserverTracker({ address: V6, settings, log: pino({ level: 'silent' }) }, () => undefined);
    try {
      tracker.start();
      await waitFor('a check', () => tracker.status().lastCheck !== null, { timeoutMs: 3000 });
      assert.equal(tracker.status().lastCheck?.detail, 'HTTP 200');
      assert.equal(tracker.status().url, `https://[::1]:${fake.port}/readyz`);
    } finally {
      tracker.close();
    }
  });
});

describe('the balancer bound to "[::1]" from a config, IPv6 apiservers behind it', { timeout: 60_000 }, () => {
  it('checks them up, relays in turn, reports IPv6 clients, and shows every address bracketed', async () => {
    const cert = await generateCert([V6]);
    const fakes = await Promise.all(['b1', 'b2'].map((name) => FakeApiserver.start({ host: V6, name, cert })));
    const logs: Record<string, unknown>[] = [];
    const opened: ClientConnection[] = [];
    const parsed = proxySchema.parse({
      frontends: [
        {
          name: 'api',
          bind: '[::1]:6443',
          backends: fakes.map((f) => ({ name: f.name, address: f.host, port: f.port })),
          healthCheck: { interval: '100ms', timeout: '80ms', rise: 1, fall: 1 },
        },
      ],
    });
    // Port 0 (ephemeral), as test/helpers/loopback-proxy.ts does: not valid in a file.
    const frontends = parsed.frontends.map((f) => ({ ...f, bind: { ...f.bind, port: 0 } }));
    const proxy = new TcpProxy(
      { peers: [], proxy: { ...parsed, frontends } },
      {
        log: createLogger({
          level: 'info',
          destination: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
        }),
        metrics: registerProxyMetrics(new Registry()),
        connections: { opened: (c) => opened.push(c), closed: () => undefined },
      },
    );
    try {
      assert.deepEqual(parsed.frontends[0]?.bind, { host: V6, port: 6443 });
      await proxy.start();
      const port = proxy.address('api')?.port ?? 0;
      const backends = () => proxy.status().frontends[0]?.backends ?? [];
      await waitFor('both checked up over IPv6', () => backends().every((b) => b.state === 'up'), { timeoutMs: 5000 });

      const who: string[] = [];
      for (let i = 0; i < 4; i++) who.push((await rawCall(V6, port, 'WHO')).toString().trim());
      assert.deepEqual(who, ['b1', 'b2', 'b1', 'b2']);
      await waitFor('four observed', () => opened.length === 4, { timeoutMs: 2000 });
      assert.ok(
        opened.every((c) => c.localAddress === V6 && c.remoteAddress === V6 && c.localPort === port),
        JSON.stringify(opened),
      );

      const listening = logs.find((l) => l.msg === 'proxy frontend listening');
      assert.equal(listening?.bind, `[::1]:${port}`);
      assert.deepEqual(
        listening?.backends,
        fakes.map((f) => `${f.name}=[::1]:${f.port}`),
      );
      assert.deepEqual(
        backends().map((b) => [b.address, b.port]),
        fakes.map((f) => [V6, f.port]),
        'as the config has them: /status brackets them (admin-status.test.ts)',
      );

      fakes[1]?.setHealthy(false);
      await waitFor('b2 down', () => logs.some((l) => l.msg === 'backend down'), { timeoutMs: 3000 });
      const down = logs.find((l) => l.msg === 'backend down');
      assert.deepEqual([down?.backend, down?.address, down?.check], ['b2', `[::1]:${fakes[1]?.port}`, 'HTTP 503']);
      assert.equal((await rawCall(V6, port, 'WHO')).toString().trim(), 'b1', 'the one left up');
    } finally {
      await proxy.destroy();
      for (const f of fakes) await f.kill();
    }
  });
});
