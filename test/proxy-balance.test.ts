/**
 * Which backend a connection goes to, and the series the balancer exports for it.
 * The balancer end to end on loopback (test/helpers/loopback-proxy.ts): a vipd proxy on 127.0.0.20
 * in front of three stand-in apiservers on 127.0.0.21-23, with real sockets and 100ms health checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../src/lab/wait';
import { count, type HeldConnection, LoopbackProxy } from './helpers/loopback-proxy';

describe('distribution', { timeout: 60_000 }, () => {
  it('roundrobin spreads new connections evenly over the backends', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      const names: string[] = [];
      for (let i = 0; i < 30; i++) names.push(await bed.who());
      assert.deepEqual(count(names), { b1: 10, b2: 10, b3: 10 });
    } finally {
      await bed.close();
    }
  });

  it('leastconn sends held connections where there are fewest', async () => {
    const bed = await LoopbackProxy.withStandIns({ balance: 'leastconn' });
    try {
      const held: HeldConnection[] = [];
      for (let i = 0; i < 4; i++) held.push(await bed.echo());
      assert.deepEqual(
        held.map((h) => h.backend),
        ['b1', 'b2', 'b3', 'b1'],
      );
      held[1]?.socket.destroy();
      await waitFor('one closed', () => bed.proxy.status().frontends[0]?.activeConnections === 3, { timeoutMs: 2000 });
      assert.equal((await bed.echo()).backend, 'b2', 'the backend with no connection left gets the next one');
      assert.equal((await bed.echo()).backend, 'b3', 'then a tie (b2 and b3 at 1) is taken in turn');
    } finally {
      await bed.close();
    }
  });
});

describe('metrics', { timeout: 60_000 }, () => {
  it('exports the vipd_ proxy series', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      await bed.who();
      const text = await bed.registry.metrics();
      for (const name of [
        'vipd_backend_up',
        'vipd_proxy_connections_active',
        'vipd_proxy_connections_total',
        'vipd_proxy_connect_failures_total',
        'vipd_proxy_retries_total',
        'vipd_proxy_bytes_total',
        'vipd_health_checks_total',
      ]) {
        assert.match(text, new RegExp(`^${name}\\{`, 'm'), name);
      }
      assert.match(text, /^vipd_proxy_connections_total\{frontend="api",backend="b1"\} 1$/m);
      assert.match(text, /^vipd_health_checks_total\{frontend="api",backend="b1",result="success"\} [1-9]/m);
      assert.match(text, /^vipd_proxy_bytes_total\{frontend="api",direction="in"\} 4$/m);
    } finally {
      await bed.close();
    }
  });
});
