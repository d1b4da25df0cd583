/**
 * Backends that die or turn unhealthy: retries, health checks, what every backend marked down means
 * for new and established connections.
 * The balancer end to end on loopback (test/helpers/loopback-proxy.ts): a vipd proxy on 127.0.0.20
 * in front of three stand-in apiservers on 127.0.0.21-23, with real sockets and 100ms health checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../src/lab/wait';
import { count, type HeldConnection, LoopbackProxy } from './helpers/loopback-proxy';

describe('failover', { timeout: 60_000 }, () => {
  it('a killed backend costs no client connection: connects are retried on the next backend', async () => {
    const bed = await LoopbackProxy.withStandIns({ retries: 3 });
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
            if ((await bed.who()) === '') failures.push('empty answer');
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
      await bed.fakes[1]?.kill();
      paused = false;
      await new Promise((r) => setTimeout(r, 1200));
      stop = true;
      await workers;
      assert.deepEqual(failures, []);
      assert.ok(ok > 100, `only ${ok} connections in 1.5s`);
      assert.equal(bed.backend('b2')?.state, 'down');
      const m = await bed.registry.getSingleMetric('vipd_proxy_connect_failures_total')?.get();
      const b2Failures = m?.values.find((v) => v.labels.backend === 'b2')?.value ?? 0;
      const retries = (await bed.registry.getSingleMetric('vipd_proxy_retries_total')?.get())?.values[0]?.value ?? 0;
      assert.ok(b2Failures > 0, 'some connects reached the dead backend before its check did');
      assert.ok(retries >= b2Failures, `every failed connect (${b2Failures}) was retried (${retries})`);
      assert.ok(bed.logs.some((l) => l.msg === 'backend down' && l.backend === 'b2'));
    } finally {
      await bed.close();
    }
  });

  it('an unhealthy backend (503) leaves rotation after fall failures and returns after rise successes', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      bed.fakes[0]?.setHealthy(false);
      const t0 = performance.now();
      await waitFor('b1 down', () => bed.backend('b1')?.state === 'down', { timeoutMs: 3000 });
      const tDown = performance.now() - t0;
      assert.ok(tDown >= 80, `down after ${tDown}ms: needs 2 failed checks 100ms apart`);
      assert.equal(bed.backend('b1')?.lastCheck?.detail, 'HTTP 503');
      const whileDown: string[] = [];
      for (let i = 0; i < 12; i++) whileDown.push(await bed.who());
      assert.deepEqual(count(whileDown), { b2: 6, b3: 6 });

      bed.fakes[0]?.setHealthy(true);
      await waitFor('b1 up', () => bed.backend('b1')?.state === 'up', { timeoutMs: 3000 });
      const afterUp: string[] = [];
      for (let i = 0; i < 12; i++) afterUp.push(await bed.who());
      assert.deepEqual(count(afterUp), { b1: 4, b2: 4, b3: 4 });
      const up = (await bed.registry.getSingleMetric('vipd_backend_up')?.get())?.values.map((v) => v.value);
      assert.deepEqual(up, [1, 1, 1]);
    } finally {
      await bed.close();
    }
  });

  it('still serves clients when every backend is marked down, rather than refusing them', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      for (const f of bed.fakes) f.setHealthy(false);
      await waitFor('all down', () => bed.states().every((s) => s === 'down'), { timeoutMs: 3000 });
      assert.match(await bed.who(), /^b[123]$/);
    } finally {
      await bed.close();
    }
  });

  it('closes a connection when no backend can be reached, and counts it', async () => {
    const bed = await LoopbackProxy.withStandIns({ retries: 2 });
    try {
      await Promise.all(bed.fakes.map((f) => f.kill()));
      await assert.rejects(
        bed.who().then((n) => {
          if (n === '') throw new Error('closed');
          return n;
        }),
      );
      assert.equal(await bed.metric('vipd_proxy_unserved_connections_total'), 1);
    } finally {
      await bed.close();
    }
  });

  it('on-marked-down: a backend marked down has its connections closed; others keep theirs', async () => {
    const bed = await LoopbackProxy.withStandIns({ shutdownOnMarkedDown: true });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 6; i++) held.push(await bed.echo());
      bed.fakes[0]?.setHealthy(false);
      await waitFor('b1 connections closed', () => held.filter((h) => h.backend === 'b1').every((h) => h.closed), {
        timeoutMs: 3000,
      });
      for (const h of held.filter((x) => x.backend !== 'b1')) {
        assert.equal(h.closed, false);
        assert.equal(await h.roundTrip('still here'), 'still here');
      }
      assert.ok(bed.logs.some((l) => l.msg === 'backend down' && l.closedConnections === 2));
    } finally {
      await bed.close();
    }
  });

  it('without shutdownOnMarkedDown, connections to a down backend stay open', async () => {
    const bed = await LoopbackProxy.withStandIns({ shutdownOnMarkedDown: false });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 3; i++) held.push(await bed.echo());
      bed.fakes[0]?.setHealthy(false);
      await waitFor('b1 down', () => bed.backend('b1')?.state === 'down', { timeoutMs: 3000 });
      const b1 = held.find((h) => h.backend === 'b1');
      assert.equal(await b1?.roundTrip('alive'), 'alive');
    } finally {
      await bed.close();
    }
  });
});
