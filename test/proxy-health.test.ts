/**
 * Health checks against the stand-in apiserver on loopback: each check type, TLS verification,
 * timeouts, and the checker's timing (first result at once, rise/fall, no overlapping checks).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HealthChecker } from '../src/checks/health-checker';
import { type CheckRecord, probe } from '../src/checks/probe';
import type { HealthState } from '../src/checks/rise-fall';
import type { CheckSettings } from '../src/checks/settings';
import { FakeApiserver, generateCert } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';

const HOST = '127.0.0.21';
const check = (over: Partial<CheckSettings> = {}): CheckSettings => ({
  type: 'https',
  path: '/readyz',
  intervalMs: 100,
  timeoutMs: 500,
  rise: 2,
  fall: 2,
  tls: { verify: false },
  ...over,
});

let fake: FakeApiserver;
/** Accepts connections and never answers: a hung apiserver. */
let silent: net.Server;
const silentSockets = new Set<net.Socket>();
let closedPort = 0;

before(async () => {
  fake = await FakeApiserver.start({ host: HOST, name: 'fake', httpPort: 0, cert: await generateCert([HOST]) });
  silent = net.createServer((s) => {
    silentSockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, HOST, r));
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, HOST, r));
  closedPort = (tmp.address() as net.AddressInfo).port;
  await new Promise<void>((r) => tmp.close(() => r()));
});

after(async () => {
  for (const s of silentSockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
  await fake.kill();
});

const target = () => ({ address: HOST, port: fake.port });

describe('probe', () => {
  it('passes on an HTTPS 200 without verifying the certificate by default', async () => {
    fake.setHealthy(true);
    const r = await probe(target(), check());
    assert.equal(r.ok, true, r.detail);
    assert.equal(r.detail, 'HTTP 200');
  });

  it('fails on a 503 from /readyz', async () => {
    fake.setHealthy(false);
    try {
      const r = await probe(target(), check());
      assert.deepEqual([r.ok, r.detail], [false, 'HTTP 503']);
    } finally {
      fake.setHealthy(true);
    }
  });

  it('fails on a 404 (wrong path)', async () => {
    const r = await probe(target(), check({ path: '/nope' }));
    assert.deepEqual([r.ok, r.detail], [false, 'HTTP 404']);
  });

  it('verifies against a CA file and a server name when asked', async () => {
    const ca = Buffer.from(fake.cert.cert);
    const good = await probe(target(), check({ tls: { verify: true, ca, serverName: 'fake-apiserver' } }));
    assert.equal(good.ok, true, good.detail);
    const byIp = await probe(target(), check({ tls: { verify: true, ca } }));
    assert.equal(byIp.ok, true, byIp.detail);
    const wrongName = await probe(target(), check({ tls: { verify: true, ca, serverName: 'other-name' } }));
    assert.deepEqual([wrongName.ok, wrongName.detail], [false, 'ERR_TLS_CERT_ALTNAME_INVALID']);
    const noCa = await probe(target(), check({ tls: { verify: true } }));
    assert.equal(noCa.ok, false);
    assert.match(noCa.detail, /SELF_SIGNED|UNABLE_TO/);
  });

  it('speaks plain HTTP for type http', async () => {
    const r = await probe({ address: HOST, port: fake.httpPort ?? 0 }, check({ type: 'http' }));
    assert.deepEqual([r.ok, r.detail], [true, 'HTTP 200']);
  });

  it('connects only, for type tcp', async () => {
    const up = await probe(target(), check({ type: 'tcp' }));
    assert.deepEqual([up.ok, up.detail], [true, 'connected']);
    const down = await probe({ address: HOST, port: closedPort }, check({ type: 'tcp' }));
    assert.deepEqual([down.ok, down.detail], [false, 'ECONNREFUSED']);
  });

  it('reports a refused HTTPS connect by its code', async () => {
    const r = await probe({ address: HOST, port: closedPort }, check());
    assert.deepEqual([r.ok, r.detail], [false, 'ECONNREFUSED']);
  });

  it('times out a server that accepts and never answers', async () => {
    const port = (silent.address() as net.AddressInfo).port;
    const r = await probe({ address: HOST, port }, check({ timeoutMs: 150 }));
    assert.deepEqual([r.ok, r.detail], [false, 'timeout after 150ms']);
    assert.ok(r.durationMs >= 140 && r.durationMs < 1000, `took ${r.durationMs}ms`);
  });

  it('stops when aborted', async () => {
    const port = (silent.address() as net.AddressInfo).port;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const r = await probe({ address: HOST, port }, check({ timeoutMs: 5000 }), controller.signal);
    assert.deepEqual([r.ok, r.detail], [false, 'aborted']);
  });
});

describe('health checker', () => {
  const collect = () => {
    const changes: { state: HealthState; at: number }[] = [];
    const records: CheckRecord[] = [];
    const start = performance.now();
    const listener = (r: CheckRecord, change: HealthState | undefined) => {
      records.push(r);
      if (change !== undefined) changes.push({ state: change, at: performance.now() - start });
    };
    return { changes, records, listener };
  };

  it('decides the first state at once, then needs fall failures and rise successes', async () => {
    fake.setHealthy(true);
    const c = collect();
    const checker = new HealthChecker(target(), check({ intervalMs: 100, rise: 2, fall: 3 }), c.listener);
    try {
      checker.start();
      await waitFor('first result', () => c.changes.length === 1, { timeoutMs: 2000 });
      assert.equal(c.changes[0]?.state, 'up');
      assert.ok(
        (c.changes[0]?.at ?? 1e9) < 100,
        `first state after ${c.changes[0]?.at}ms, expected before the first interval`,
      );

      const before = c.records.length;
      fake.setHealthy(false);
      await waitFor('down', () => checker.state === 'down', { timeoutMs: 3000 });
      const failures = c.records.slice(before).filter((r) => !r.ok).length;
      assert.equal(failures, 3, 'down after exactly `fall` failures');

      const mark = c.records.length;
      fake.setHealthy(true);
      await waitFor('up again', () => checker.state === 'up', { timeoutMs: 3000 });
      assert.equal(c.records.slice(mark).filter((r) => r.ok).length, 2, 'up after exactly `rise` successes');
    } finally {
      checker.close();
      fake.setHealthy(true);
    }
  });

  it('marks an unreachable target down on its first check', async () => {
    const c = collect();
    const checker = new HealthChecker({ address: HOST, port: closedPort }, check(), c.listener);
    try {
      checker.start();
      await waitFor('down', () => checker.state === 'down', { timeoutMs: 1000 });
      assert.equal(c.records.length, 1);
    } finally {
      checker.close();
    }
  });

  it('spaces checks by the interval and never overlaps them, even when a check is slow', async () => {
    let running = 0;
    let overlapped = false;
    const starts: number[] = [];
    const slow = async (): Promise<CheckRecord> => {
      running += 1;
      overlapped ||= running > 1;
      starts.push(performance.now());
      await new Promise((r) => setTimeout(r, 150));
      running -= 1;
      return { ok: true, detail: 'fake', at: Date.now(), durationMs: 150 };
    };
    const checker = new HealthChecker(target(), check({ intervalMs: 100 }), () => undefined, { probe: slow });
    try {
      checker.start();
      await waitFor('4 checks', () => starts.length >= 4, { timeoutMs: 3000 });
    } finally {
      checker.close();
    }
    assert.equal(overlapped, false);
    for (let i = 1; i < starts.length; i++) {
      const gap = (starts[i] ?? 0) - (starts[i - 1] ?? 0);
      assert.ok(gap >= 145 && gap < 400, `gap ${gap}ms: a slow check delays the next, no more`);
    }
  });

  it('reports nothing after close, even for a check in flight', async () => {
    const c = collect();
    const checker = new HealthChecker(
      { address: HOST, port: (silent.address() as net.AddressInfo).port },
      check({ timeoutMs: 200 }),
      c.listener,
    );
    checker.start();
    await new Promise((r) => setTimeout(r, 50));
    checker.close();
    checker.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.records.length, 0);
  });

  it('counts a probe that throws as a failed check', async () => {
    const c = collect();
    const checker = new HealthChecker(target(), check(), c.listener, {
      probe: () => Promise.reject(new Error('boom')),
    });
    try {
      checker.start();
      await waitFor('a result', () => c.records.length > 0, { timeoutMs: 1000 });
      assert.deepEqual([c.records[0]?.ok, c.records[0]?.detail, checker.state], [false, 'boom', 'down']);
    } finally {
      checker.close();
    }
  });
});
