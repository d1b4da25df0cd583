/**
 * The balancer against backends that misbehave, on loopback with real sockets: a vipd proxy on
 * 127.0.0.20 in front of stand-in apiservers on 127.0.0.21-23 and odd backends on 127.0.0.31-32.
 * - hedged connects (a backend whose connects hang: test/helpers/stalled-listener.ts);
 * - passive checks (a refused or timed-out connect marks the backend down at once);
 * - retry before the first answer (a backend that resets or closes a connection it accepted);
 * - the FIN timeout (a peer that never closes after a FIN);
 * - the connection observer.
 * Active checks are slow here (10 min apart: QUIET_BASE in test/helpers/loopback-proxy.ts) unless a
 * test is about them, so that the choice of a backend is decided by what the test does.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { FakeApiserver } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import type { ClientConnection } from '../src/native/relay-engine';
import type { ConnectionObserver } from '../src/proxy/frontend';
import { ConnectTimes, derivedHedgeDelay } from '../src/proxy/hedge-delay';
import { FRONT, freePort, LoopbackProxy, loopbackCert, spec, standIns } from './helpers/loopback-proxy';
import { rawCall } from './helpers/raw-client';
import { StalledListener } from './helpers/stalled-listener';

const STALLED = ['127.0.0.31', '127.0.0.32'] as const;
const ODD = '127.0.0.32';

/** A plain TCP server on ODD whose connections `onConnection` handles; closed with its sockets. */
async function oddServer(
  onConnection: (s: net.Socket) => void,
): Promise<{ port: number; close(): Promise<void>; received: Buffer[] }> {
  const sockets = new Set<net.Socket>();
  const received: Buffer[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    onConnection(s);
  });
  server.on('connection', (s: net.Socket) => s.on('data', (c: Buffer) => received.push(c)));
  await new Promise<void>((r) => server.listen(0, ODD, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function httpsWho(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { host: FRONT, port, path: '/whoami', rejectUnauthorized: false, agent: false, timeout: 5000 };
    const req = https.get(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.once('end', () => resolve(body));
    });
    req.once('error', reject);
    req.once('timeout', () => req.destroy(new Error('no answer in 5s')));
  });
}

/**
 * A balancer with `frontend`'s settings over `slow` (connects hang: SYNs swallowed), then the
 * answering stand-ins `answering` (b2 and b3 by default), once those are up.
 */
async function slowBed(
  frontend: Record<string, unknown> = { hedgeDelay: '50ms' },
  answering: readonly string[] = ['b2', 'b3'],
): Promise<LoopbackProxy> {
  const slow = await StalledListener.start(STALLED[0], 'slow');
  const fakes = await standIns(answering);
  const bed = await LoopbackProxy.start(
    [{ name: 'slow', address: slow.host, port: slow.port }, ...fakes.map(spec)],
    frontend,
    { waitUp: answering },
  );
  bed.own(() => slow.close());
  for (const f of fakes) bed.own(() => f.kill());
  return bed;
}

describe('hedged connects', { timeout: 60_000 }, () => {
  it('a connect still pending after hedgeDelay gets a second one to the next backend; the first to connect wins', async () => {
    const bed = await slowBed();
    try {
      const took: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        assert.match(await bed.who(), /^b[23]$/);
        took.push(performance.now() - t0);
      }
      // Roundrobin offers "slow" to every third connection; each of those waits for the hedge.
      assert.equal(took.filter((ms) => ms >= 45).length, 2, `took ${took.map((t) => t.toFixed(0)).join(', ')} ms`);
      assert.ok(Math.max(...took) < 1000, `took ${took.map((t) => t.toFixed(0)).join(', ')} ms`);
      assert.equal(await bed.metric('vipd_proxy_hedges_total', 'slow'), 2);
      assert.equal(await bed.metric('vipd_proxy_hedge_wins_total'), 2, 'both hedges won');
      assert.equal(await bed.metric('vipd_proxy_hedge_wins_total', 'slow'), 0);
      // Overtaken is not failed: no failure counted, no mark-down, so a slow moment cannot flap it.
      assert.equal(await bed.metric('vipd_proxy_connect_failures_total'), 0);
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total'), 0);
      assert.equal(bed.backend('slow')?.passiveDown, false);
      assert.equal(bed.backend('slow')?.state, 'unknown');
      await waitFor('relays done', () => bed.active() === 0, { timeoutMs: 2000 });
    } finally {
      await bed.close();
    }
  });

  it('a backend whose connects are overtaken three times in a row is marked down (it swallows SYNs)', async () => {
    const bed = await slowBed();
    try {
      // Roundrobin offers "slow" to every third connection: the third overtaken connect marks it down.
      for (let i = 0; i < 9; i++) assert.match(await bed.who(), /^b[23]$/);
      assert.equal(await bed.metric('vipd_proxy_hedges_total', 'slow'), 3);
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total', 'slow'), 1);
      assert.equal(bed.backend('slow')?.passiveDown, true);
      assert.ok(
        bed.logs.some(
          (l) =>
            l.msg === 'backend marked down: connect failed' &&
            l.backend === 'slow' &&
            /overtaken by hedges/.test(String(l.reason)),
        ),
      );
      for (let i = 0; i < 6; i++) assert.match(await bed.who(), /^b[23]$/);
      assert.equal(await bed.metric('vipd_proxy_hedges_total', 'slow'), 3, 'no more hedges: it is out of rotation');
      await waitFor('relays done', () => bed.active() === 0, { timeoutMs: 2000 });
    } finally {
      await bed.close();
    }
  });

  it('the slow attempt keeps its chance: a backend that answers late can still win', async () => {
    const a = await StalledListener.start(STALLED[0], 'late');
    const b = await StalledListener.start(STALLED[1], 'never');
    const bed = await LoopbackProxy.start(
      [
        { name: 'late', address: a.host, port: a.port },
        { name: 'never', address: b.host, port: b.port },
      ],
      { hedgeDelay: '50ms', connectTimeout: '5s' },
    );
    bed.own(() => a.close());
    bed.own(() => b.close());
    try {
      const t0 = performance.now();
      const answer = rawCall(FRONT, bed.port, 'WHO', { timeoutMs: 5000 });
      // Past the hedge (at 50 ms), both attempts hang; then the first backend comes back.
      await new Promise((r) => setTimeout(r, 150));
      a.resume();
      assert.equal((await answer).toString(), 'late\n');
      const took = performance.now() - t0;
      // The first SYN was dropped; its retransmission, a second later, is what got through.
      assert.ok(took > 500 && took < 4000, `answered after ${took.toFixed(0)} ms`);
      assert.equal(await bed.metric('vipd_proxy_hedges_total', 'late'), 1);
      assert.equal(await bed.metric('vipd_proxy_hedge_wins_total'), 0, 'the hedge lost');
      assert.equal(
        await bed.metric('vipd_proxy_connect_failures_total'),
        0,
        'the overtaken hedge is not a failure either',
      );
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total'), 0);
    } finally {
      await bed.close();
    }
  });

  it('auto: a hanging connect is hedged after the derived delay (20 ms before any connect time is known)', async () => {
    const bed = await slowBed({}, ['b2']);
    try {
      assert.equal(bed.proxy.status().frontends[0]?.hedgeDelayMs, 20);
      const t0 = performance.now();
      assert.equal(await bed.who(), 'b2');
      const took = performance.now() - t0;
      assert.ok(took >= 18 && took < 500, `answered after ${took.toFixed(0)} ms`);
      assert.equal(await bed.metric('vipd_proxy_hedges_total', 'slow'), 1);
      assert.equal(await bed.metric('vipd_proxy_hedge_wins_total', 'b2'), 1);
    } finally {
      await bed.close();
    }
  });

  it('hedgeDelay "0s": no hedge; the connect times out, is retried, and the timeout marks the backend down', async () => {
    const bed = await slowBed({ hedgeDelay: '0s', connectTimeout: '300ms' }, ['b2']);
    try {
      const t0 = performance.now();
      assert.equal(await bed.who(), 'b2');
      const took = performance.now() - t0;
      assert.ok(took >= 290 && took < 1500, `answered after ${took.toFixed(0)} ms`);
      assert.equal(await bed.metric('vipd_proxy_hedges_total'), 0);
      assert.equal(await bed.metric('vipd_proxy_connect_failures_total', 'slow'), 1);
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total', 'slow'), 1);
      assert.equal(bed.backend('slow')?.state, 'down');
      const t1 = performance.now();
      for (let i = 0; i < 4; i++) assert.equal(await bed.who(), 'b2');
      assert.ok(performance.now() - t1 < 250, 'no connect waits for the marked-down backend');
      assert.ok(
        bed.logs.some(
          (l) =>
            l.msg === 'backend marked down: connect failed' && l.backend === 'slow' && l.reason === 'connect timeout',
        ),
      );
    } finally {
      await bed.close();
    }
  });
});

describe('debug logs', { timeout: 60_000 }, () => {
  it('--log-level debug adds a line per active check; info does not', async () => {
    const fakes = await standIns(['b1']);
    const checks = { healthCheck: { interval: '200ms', timeout: '150ms', rise: 1, fall: 1 } };
    const debug = await LoopbackProxy.start(fakes.map(spec), checks, { waitUp: ['b1'], level: 'debug' });
    const info = await LoopbackProxy.start(fakes.map(spec), checks, { waitUp: ['b1'] });
    for (const f of fakes) debug.own(() => f.kill());
    try {
      await waitFor('three checks logged', () => debug.logs.filter((l) => l.msg === 'backend checked').length >= 3, {
        timeoutMs: 5000,
      });
      const line = debug.logs.find((l) => l.msg === 'backend checked');
      assert.equal(line?.backend, 'b1');
      assert.equal(line?.ok, true);
      assert.equal(line?.check, 'HTTP 200');
      assert.equal(info.logs.filter((l) => l.msg === 'backend checked').length, 0);
    } finally {
      await info.close();
      await debug.close();
    }
  });
});

describe('passive checks', { timeout: 60_000 }, () => {
  const checks = { healthCheck: { interval: '1s', timeout: '500ms', rise: 2, fall: 3 } };

  it('a refused connect marks the backend down at once; rise passing checks bring it back', async () => {
    const fakes = await standIns(['b1', 'b2', 'b3']);
    const bed = await LoopbackProxy.start(fakes.map(spec), checks, { waitUp: ['b1', 'b2', 'b3'] });
    for (const f of fakes) bed.own(() => f.kill());
    try {
      const [b1] = fakes as [FakeApiserver];
      await b1.kill();
      const names: string[] = [];
      for (let i = 0; i < 9; i++) names.push(await bed.who());
      assert.ok(!names.includes('b1'), names.join(' '));
      assert.equal(
        await bed.metric('vipd_proxy_connect_failures_total', 'b1'),
        1,
        'one refused connect, then never offered again',
      );
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total', 'b1'), 1);
      assert.equal(await bed.metric('vipd_proxy_retries_total'), 1);
      assert.equal(
        await bed.metric('vipd_proxy_unanswered_retries_total'),
        0,
        'a refused connect is an ordinary retry',
      );
      assert.deepEqual([bed.backend('b1')?.state, bed.backend('b1')?.passiveDown], ['down', true]);
      const up = (await bed.registry.getSingleMetric('vipd_backend_up')?.get())?.values.find(
        (v) => v.labels.backend === 'b1',
      );
      assert.equal(up?.value, 0);
      assert.ok(
        bed.logs.some(
          (l) => l.msg === 'backend marked down: connect failed' && l.backend === 'b1' && l.reason === 'ECONNREFUSED',
        ),
      );

      const again = await FakeApiserver.start({ host: b1.host, port: b1.port, name: 'b1', cert: await loopbackCert() });
      bed.own(() => again.kill());
      await waitFor('b1 back', () => bed.backend('b1')?.passiveDown === false, { timeoutMs: 6000 });
      assert.equal(bed.backend('b1')?.state, 'up');
      assert.ok(bed.logs.some((l) => l.msg === 'backend back up' && l.backend === 'b1'));
      const after: string[] = [];
      for (let i = 0; i < 3; i++) after.push(await bed.who());
      assert.deepEqual(after.sort(), ['b1', 'b2', 'b3']);
    } finally {
      await bed.close();
    }
  });

  it('observe: false leaves the choice to the active checks; turning it off by reload clears a mark', async () => {
    const fakes = await standIns(['b1', 'b2', 'b3']);
    const bed = await LoopbackProxy.start(
      fakes.map(spec),
      { healthCheck: { ...checks.healthCheck, observe: false } },
      { waitUp: ['b1', 'b2', 'b3'] },
    );
    for (const f of fakes) bed.own(() => f.kill());
    try {
      await fakes[0]?.kill();
      for (let i = 0; i < 6; i++) assert.match(await bed.who(), /^b[23]$/);
      // A retry takes the next turn (b1 -> b2, then b3), so b1 is offered every second connection.
      assert.equal(
        await bed.metric('vipd_proxy_connect_failures_total', 'b1'),
        3,
        'offered thrice in six, retried each time',
      );
      assert.equal(await bed.metric('vipd_proxy_passive_markdowns_total'), 0);
      assert.equal(bed.backend('b1')?.passiveDown, false);

      await bed.proxy.reload(bed.config(checks));
      for (let i = 0; i < 3; i++) await bed.who();
      assert.equal(bed.backend('b1')?.passiveDown, true, 'observe on after the reload');
      await bed.proxy.reload(bed.config({ healthCheck: { ...checks.healthCheck, observe: false } }));
      assert.equal(bed.backend('b1')?.passiveDown, false, 'and the mark gone with it');
    } finally {
      await bed.close();
    }
  });
});

describe('retry before the first answer', { timeout: 60_000 }, () => {
  const tcpChecks = { healthCheck: { type: 'tcp' } };

  for (const how of ['reset', 'FIN'] as const) {
    const does = how === 'reset' ? 'resets' : 'closes';
    it(`a TLS client whose backend ${does} after its ClientHello is replayed to the next backend`, async () => {
      const dying = await oddServer((s) => s.once('data', () => (how === 'reset' ? s.resetAndDestroy() : s.end())));
      const fakes = await standIns(['b2', 'b3']);
      const bed = await LoopbackProxy.start(
        [{ name: 'dying', address: ODD, port: dying.port }, ...fakes.map(spec)],
        tcpChecks,
        { waitUp: ['dying', 'b2', 'b3'] },
      );
      bed.own(() => dying.close());
      for (const f of fakes) bed.own(() => f.kill());
      try {
        assert.equal(await httpsWho(bed.port), 'b2');
        assert.equal(dying.received[0]?.[0], 0x16, 'the dying backend got the ClientHello before it went');
        assert.equal(await bed.metric('vipd_proxy_retries_total'), 1);
        assert.equal(await bed.metric('vipd_proxy_unanswered_retries_total'), 1);
        assert.equal(await bed.metric('vipd_proxy_connect_failures_total', 'dying'), 1);
        assert.equal(
          await bed.metric('vipd_proxy_passive_markdowns_total'),
          0,
          'a connect that worked marks nothing down',
        );
        assert.ok(
          bed.logs.some(
            (l) =>
              l.msg === 'connect to backend failed' &&
              l.backend === 'dying' &&
              /closed before answering/.test(String(l.reason)),
          ),
        );
        await waitFor('relays done', () => bed.active() === 0, { timeoutMs: 2000 });
        assert.equal(bed.backend('dying')?.activeConnections, 0);
      } finally {
        await bed.close();
      }
    });
  }

  it('a plain-text client whose bytes were forwarded is not replayed: it sees the close', async () => {
    const dying = await oddServer((s) => s.once('data', () => s.resetAndDestroy()));
    const fakes = await standIns(['b2']);
    const bed = await LoopbackProxy.start(
      [{ name: 'dying', address: ODD, port: dying.port }, ...fakes.map(spec)],
      tcpChecks,
      { waitUp: ['dying', 'b2'] },
    );
    bed.own(() => dying.close());
    for (const f of fakes) bed.own(() => f.kill());
    try {
      const answer = await rawCall(FRONT, bed.port, 'WHO', { timeoutMs: 3000 }).then(
        (b) => b.toString(),
        (err: Error) => err.message,
      );
      assert.doesNotMatch(answer, /^b2/);
      assert.equal(await bed.metric('vipd_proxy_retries_total'), 0);
    } finally {
      await bed.close();
    }
  });

  it('a backend that resets before the client sent anything is swapped silently', async () => {
    // A moment after accepting: an immediate reset can beat the check's connect and fail it.
    const dying = await oddServer((s) => setTimeout(() => s.resetAndDestroy(), 30));
    const fakes = await standIns(['b2']);
    const bed = await LoopbackProxy.start(
      [{ name: 'dying', address: ODD, port: dying.port }, ...fakes.map(spec)],
      tcpChecks,
      { waitUp: ['dying', 'b2'] },
    );
    bed.own(() => dying.close());
    for (const f of fakes) bed.own(() => f.kill());
    try {
      const socket = net.connect({ host: FRONT, port: bed.port, allowHalfOpen: true });
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      await waitFor('the retry', () => bed.logs.some((l) => l.msg === 'connect to backend failed'), {
        timeoutMs: 2000,
      });
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => {
        got += c;
      });
      socket.end('WHO\n');
      await once(socket, 'close');
      assert.equal(got, 'b2\n');
      assert.equal(await bed.metric('vipd_proxy_retries_total'), 1);
      assert.equal(await bed.metric('vipd_proxy_unanswered_retries_total'), 1);
    } finally {
      await bed.close();
    }
  });
});

describe('half-close timeout', { timeout: 60_000 }, () => {
  /** A backend that keeps every connection open and never ends it; `onEnd` runs at the client's FIN. */
  const holder = (onEnd: (s: net.Socket) => void = () => undefined) =>
    oddServer((s) => {
      s.resume();
      s.once('end', () => onEnd(s));
    });

  async function clientFin(port: number): Promise<{ socket: net.Socket; chunks: number[]; closed: Promise<number> }> {
    const socket = net.connect({ host: FRONT, port, allowHalfOpen: true });
    socket.on('error', () => undefined);
    const chunks: number[] = [];
    socket.on('data', () => chunks.push(performance.now()));
    await once(socket, 'connect');
    socket.write('hello');
    const closed = once(socket, 'close').then(() => performance.now());
    // Let the relay connect before the FIN, so the FIN is relayed rather than met at connect.
    await new Promise((r) => setTimeout(r, 50));
    socket.end();
    return { socket, chunks, closed };
  }

  it('a backend that never closes after the client FIN is cut after finTimeout', async () => {
    const backend = await holder();
    const bed = await LoopbackProxy.start([{ name: 'holder', address: ODD, port: backend.port }], {
      finTimeout: '300ms',
      healthCheck: { type: 'tcp' },
    });
    bed.own(() => backend.close());
    try {
      const t0 = performance.now() + 50;
      const { closed } = await clientFin(bed.port);
      const took = (await closed) - t0;
      assert.ok(took >= 250 && took < 2000, `closed ${took.toFixed(0)} ms after the FIN`);
      await waitFor('relay done', () => bed.active() === 0, { timeoutMs: 1000 });
      assert.equal(await bed.metric('vipd_proxy_fin_timeouts_total'), 1);
    } finally {
      await bed.close();
    }
  });

  it('only silence counts: data still flowing back after the client FIN keeps the pair', async () => {
    const backend = await holder((s) => {
      let n = 0;
      const timer = setInterval(() => {
        if (s.destroyed || ++n > 8) return clearInterval(timer);
        s.write('tick');
      }, 100);
    });
    const bed = await LoopbackProxy.start([{ name: 'holder', address: ODD, port: backend.port }], {
      finTimeout: '300ms',
      healthCheck: { type: 'tcp' },
    });
    bed.own(() => backend.close());
    try {
      const { chunks, closed } = await clientFin(bed.port);
      const end = await closed;
      assert.equal(chunks.length, 8, 'every tick of 800 ms arrived, past the 300 ms finTimeout');
      const quiet = end - (chunks[7] as number);
      assert.ok(quiet >= 250 && quiet < 2000, `closed ${quiet.toFixed(0)} ms after the last tick`);
      assert.equal(await bed.metric('vipd_proxy_fin_timeouts_total'), 1);
    } finally {
      await bed.close();
    }
  });

  it('backend FIN first: a client that never closes is cut after finTimeout; "0s" waits forever', async () => {
    const fakes = await standIns(['b1']);
    const bed = await LoopbackProxy.start(fakes.map(spec), { finTimeout: '300ms' }, { waitUp: ['b1'] });
    for (const f of fakes) bed.own(() => f.kill());
    const sockets: net.Socket[] = [];
    try {
      const sourceThenWait = async () => {
        const socket = net.connect({ host: FRONT, port: bed.port, allowHalfOpen: true });
        sockets.push(socket);
        socket.on('error', () => undefined);
        socket.resume();
        socket.write('SOURCE 10\n');
        await once(socket, 'end');
        return performance.now();
      };
      await sourceThenWait();
      const t0 = performance.now();
      await waitFor('relay cut', () => bed.active() === 0, { timeoutMs: 3000, everyMs: 5 });
      const took = performance.now() - t0;
      assert.ok(took >= 250 && took < 2000, `cut ${took.toFixed(0)} ms after the backend's FIN`);
      assert.equal(await bed.metric('vipd_proxy_fin_timeouts_total'), 1);

      await bed.proxy.reload(bed.config({ finTimeout: '0s' }));
      await sourceThenWait();
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(bed.active(), 1, 'no FIN timeout: the half-closed pair stays');
      assert.equal(await bed.metric('vipd_proxy_fin_timeouts_total'), 1);
    } finally {
      for (const s of sockets) s.destroy();
      await bed.close();
    }
  });
});

describe('connection observer', { timeout: 60_000 }, () => {
  class Recorder {
    readonly opened: ClientConnection[] = [];
    readonly closed: ClientConnection[] = [];
    readonly observer: ConnectionObserver = { opened: (c) => this.opened.push(c), closed: (c) => this.closed.push(c) };
  }
  let fakes: FakeApiserver[] = [];
  before(async () => {
    fakes = await standIns(['b1', 'b2']);
  });
  after(async () => {
    for (const f of fakes) await f.kill();
  });

  it('opened once at accept and closed once when done, with the addresses, in every path', async () => {
    const rec = new Recorder();
    const bed = await LoopbackProxy.start(
      fakes.map(spec),
      {},
      { waitUp: ['b1', 'b2'], observer: rec.observer, drainTimeout: '5s' },
    );
    const clients: Array<{ localAddress: string; localPort: number }> = [];
    try {
      // Relayed.
      for (let i = 0; i < 3; i++) {
        const s = net.connect({ host: FRONT, port: bed.port });
        s.on('error', () => undefined);
        await once(s, 'connect');
        clients.push({ localAddress: s.localAddress ?? '', localPort: s.localPort ?? 0 });
        s.resume();
        s.end('WHO\n');
        await once(s, 'close');
      }
      await waitFor('three closed', () => rec.closed.length === 3, { timeoutMs: 2000 });
      assert.equal(rec.opened.length, 3);
      for (const [i, c] of rec.opened.entries()) {
        const client = clients[i];
        assert.deepEqual(
          { ...c },
          {
            localAddress: FRONT,
            localPort: bed.port,
            remoteAddress: client?.localAddress,
            remotePort: client?.localPort,
          },
        );
        assert.ok(
          rec.closed.some((x) => isDeepStrictEqual(x, c)),
          'closed() names the connection opened() named',
        );
      }
      // Drained by a graceful close.
      const held = net.connect({ host: FRONT, port: bed.port, allowHalfOpen: true });
      held.on('error', () => undefined);
      held.write('ECHO\n');
      await once(held, 'data');
      const closing = bed.proxy.close();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(rec.closed.length, 3, 'still draining');
      held.end();
      await closing;
      assert.deepEqual([rec.opened.length, rec.closed.length], [4, 4]);
    } finally {
      await bed.close();
    }
  });

  it('destroyed, unserved and retried connections are closed once too', async () => {
    const rec = new Recorder();
    const dead = await freePort(ODD);
    const bed = await LoopbackProxy.start(
      [{ name: 'dead', address: ODD, port: dead }, ...fakes.map(spec)],
      { retries: 0 },
      { waitUp: ['b1', 'b2'], observer: rec.observer },
    );
    try {
      // Unserved: the dead backend refuses and retries: 0 gives up.
      await rawCall(FRONT, bed.port, 'WHO', { timeoutMs: 2000 }).catch(() => undefined);
      await waitFor('unserved closed', () => rec.closed.length === 1, { timeoutMs: 2000 });
      // Relayed, then destroyed with the proxy.
      const held: net.Socket[] = [];
      for (let i = 0; i < 2; i++) {
        const s = net.connect({ host: FRONT, port: bed.port });
        s.on('error', () => undefined);
        held.push(s);
        s.write('ECHO\n');
        await once(s, 'data');
      }
      await bed.proxy.destroy();
      await waitFor('all closed', () => rec.closed.length === 3, { timeoutMs: 2000 });
      assert.equal(rec.opened.length, 3);
      assert.equal(new Set(rec.closed).size, 3, 'each once');
      for (const s of held) s.destroy();
    } finally {
      await bed.close();
    }
  });
});

describe('the derived hedge delay (pure)', () => {
  it('is 2 x the p99 of recent connect times, within 20 ms and connectTimeout / 4', () => {
    const times = new ConnectTimes();
    assert.equal(times.p99Ms, undefined, 'unknown before a round of samples');
    assert.equal(derivedHedgeDelay(times.p99Ms, 5000), 20, 'the floor until then');
    for (let i = 0; i < 64; i++) times.record(40);
    const p99 = times.p99Ms ?? 0;
    assert.ok(p99 >= 40 && p99 < 48, `p99 ${p99} ms: the upper bound of the bucket that holds 40 ms`);
    assert.equal(derivedHedgeDelay(p99, 5000), Math.round(2 * p99));
    assert.equal(derivedHedgeDelay(p99, 100), 25, 'capped at connectTimeout / 4');
    for (let i = 0; i < 64; i++) times.record(1);
    assert.equal(derivedHedgeDelay(times.p99Ms, 5000), Math.round(2 * (times.p99Ms ?? 0)));
    // Fast connects from now on: old slow samples decay, and the delay falls back to the floor.
    for (let i = 0; i < 64 * 40; i++) times.record(1);
    assert.equal(derivedHedgeDelay(times.p99Ms, 5000), 20);
  });
});
