/**
 * The balancer's life: a graceful close that drains, destroy(), reloads that change backends or the
 * bind address in place, and a reload refused before anything changes.
 * The balancer end to end on loopback (test/helpers/loopback-proxy.ts): a vipd proxy on 127.0.0.20
 * in front of three stand-in apiservers on 127.0.0.21-23, with real sockets and 100ms health checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { FakeApiserver } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import { TcpProxy } from '../src/proxy/proxy';
import {
  count,
  FAST_BASE,
  FRONT,
  freePort,
  HOSTS,
  LoopbackProxy,
  loopbackCert,
  spec,
  standIns,
} from './helpers/loopback-proxy';
import { rawCall } from './helpers/raw-client';

describe('shutdown', { timeout: 60_000 }, () => {
  it('graceful close stops accepting and lets open connections finish', async () => {
    const bed = await LoopbackProxy.withStandIns({}, { drainTimeout: '5s' });
    try {
      const held = await bed.echo();
      const t0 = performance.now();
      const closing = bed.proxy.close();
      await assert.rejects(rawCall(FRONT, bed.port, 'WHO', { timeoutMs: 1000 }), /ECONNREFUSED/);
      assert.equal(await held.roundTrip('draining'), 'draining');
      held.socket.end();
      await closing;
      assert.ok(performance.now() - t0 < 2000, 'close returned when the last connection ended, not at drainTimeout');
      await held.closedPromise;
      await bed.proxy.close();
    } finally {
      await bed.close();
    }
  });

  it('graceful close destroys what is left at drainTimeout; destroy() cuts it short', async () => {
    const bed = await LoopbackProxy.withStandIns({}, { drainTimeout: '400ms' });
    try {
      const held = await bed.echo();
      const t0 = performance.now();
      await bed.proxy.close();
      const took = performance.now() - t0;
      assert.ok(took >= 380 && took < 1500, `closed after ${took}ms`);
      await held.closedPromise;
      assert.ok(bed.logs.some((l) => l.msg === 'proxy frontend closed' && l.closedConnections === 1));
    } finally {
      await bed.close();
    }
  });

  it('destroy() during a long drain ends it at once', async () => {
    const bed = await LoopbackProxy.withStandIns({}, { drainTimeout: '30s' });
    try {
      const held = await bed.echo();
      const t0 = performance.now();
      const closing = bed.proxy.close();
      await new Promise((r) => setTimeout(r, 100));
      await bed.proxy.destroy();
      await closing;
      await held.closedPromise;
      assert.ok(performance.now() - t0 < 2000);
    } finally {
      await bed.close();
    }
  });
});

describe('reload', { timeout: 60_000 }, () => {
  it('adds and removes backends in place without touching the listener', async () => {
    const bed = await LoopbackProxy.withStandIns();
    const extra = await FakeApiserver.start({ host: HOSTS[0], name: 'b4', cert: await loopbackCert() });
    try {
      const held = await bed.echo();
      await bed.proxy.reload(bed.config({}, { backends: [...bed.fakes, extra].map(spec) }));
      await waitFor('b4 up', () => bed.backend('b4')?.state === 'up', { timeoutMs: 3000 });
      const names: string[] = [];
      for (let i = 0; i < 8; i++) names.push(await bed.who());
      assert.deepEqual(Object.keys(count(names)).sort(), ['b1', 'b2', 'b3', 'b4']);
      assert.equal(await held.roundTrip('unaffected'), 'unaffected');
      assert.equal(bed.proxy.address('api')?.port, bed.port);
    } finally {
      await extra.kill();
      await bed.close();
    }
  });

  it('a dry run (no listener) checks the backends a reload adds', async () => {
    const [b1, b2] = await standIns(['b1', 'b2']);
    const bed = await LoopbackProxy.start(
      [spec(b1 as FakeApiserver)],
      {},
      { base: FAST_BASE, listen: false, waitUp: ['b1'] },
    );
    for (const f of [b1, b2]) bed.own(() => f?.kill());
    try {
      assert.equal(bed.proxy.status().frontends[0]?.listening, false, 'nothing bound');
      await bed.proxy.reload(bed.config({}, { backends: [b1, b2].map((f) => spec(f as FakeApiserver)) }));
      await waitFor('b2 checked up', () => bed.backend('b2')?.state === 'up', { timeoutMs: 3000 });
    } finally {
      await bed.close();
    }
  });

  it('moves a frontend to a new port: the old listener drains, the new one serves', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      const held = await bed.echo();
      const newPort = await freePort(FRONT);
      const next = bed.config();
      const frontends = next.proxy.frontends.map((f) => ({ ...f, bind: { host: FRONT, port: newPort } }));
      await bed.proxy.reload({ ...next, proxy: { ...next.proxy, frontends } });
      assert.equal(bed.proxy.address('api')?.port, newPort);
      await assert.rejects(rawCall(FRONT, bed.port, 'WHO'), /ECONNREFUSED/, 'the old listener is closed');
      assert.match((await rawCall(FRONT, newPort, 'WHO')).toString(), /^b[123]\n$/);
      assert.equal(await held.roundTrip('old listener drains'), 'old listener drains');
    } finally {
      await bed.close();
    }
  });
});

describe('reload errors', { timeout: 60_000 }, () => {
  it('a config whose CA file cannot be read is refused before anything changes', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      const bad = bed.config({ healthCheck: { tls: { verify: true, caFile: '/nonexistent/ca.pem' } } });
      assert.throws(
        () => new TcpProxy(bad, { log: pino({ level: 'silent' }) }),
        /healthCheck\.tls\.caFile: cannot read/,
      );
      await assert.rejects(
        bed.proxy.reload(bad),
        /healthCheck\.tls\.caFile: cannot read "\/nonexistent\/ca\.pem": ENOENT/,
      );
      assert.match(await bed.who(), /^b[123]$/);
      assert.deepEqual(bed.states(), ['up', 'up', 'up']);
    } finally {
      await bed.close();
    }
  });
});
