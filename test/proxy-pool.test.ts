/**
 * The balancer's pure rules, without sockets: backend choice (roundrobin, leastconn, skipping down
 * and draining backends, the all-down fallback, retries excluding tried backends), rise/fall
 * counting, and resolving settings from a config.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RiseFall } from '../src/checks/rise-fall';
import { proxySchema } from '../src/config/schema';
import { ConfigError } from '../src/errors';
import { Backend, type Relay } from '../src/proxy/backend';
import { BackendPool } from '../src/proxy/backend-pool';
import { proxySettings } from '../src/proxy/settings';

const backends = (n: number) =>
  Array.from({ length: n }, (_, i) => new Backend({ name: `b${i + 1}`, address: `10.0.0.${i + 1}`, port: 9443 }));
const poolOf = (list: Backend[], balance: 'roundrobin' | 'leastconn' = 'roundrobin') => {
  const pool = new BackendPool(balance);
  for (const b of list) pool.add(b);
  return pool;
};
const names = (pool: BackendPool, n: number) => Array.from({ length: n }, () => pool.pick()?.name ?? '-');
const fakeRelay = (): Relay => ({ destroy: () => undefined });

describe('backend pool: roundrobin', () => {
  it('takes each backend in turn', () => {
    assert.deepEqual(names(poolOf(backends(3)), 7), ['b1', 'b2', 'b3', 'b1', 'b2', 'b3', 'b1']);
  });

  it('treats unchecked backends as up, like HAProxy at start', () => {
    const list = backends(2);
    assert.equal(list[0]?.health, 'unknown');
    assert.deepEqual(names(poolOf(list), 2), ['b1', 'b2']);
  });

  it('skips down and draining backends', () => {
    const list = backends(4);
    list[1]?.setHealth('down');
    list[2]!.draining = true;
    assert.deepEqual(names(poolOf(list), 4), ['b1', 'b4', 'b1', 'b4']);
  });

  it('resumes the rotation where it was when a backend comes back', () => {
    const list = backends(3);
    const pool = poolOf(list);
    list[1]?.setHealth('down');
    assert.deepEqual(names(pool, 2), ['b1', 'b3']);
    list[1]?.setHealth('up');
    assert.deepEqual(names(pool, 3), ['b1', 'b2', 'b3']);
  });

  it('falls back to down backends when none is up, but never to draining ones', () => {
    const list = backends(3);
    for (const b of list) b.setHealth('down');
    list[2]!.draining = true;
    assert.deepEqual(names(poolOf(list), 3), ['b1', 'b2', 'b1']);
  });

  it('never offers a backend already tried for this connection; then none', () => {
    const list = backends(3);
    const pool = poolOf(list);
    const tried: Backend[] = [];
    for (let i = 0; i < 3; i++) {
      const b = pool.pick(tried);
      assert.ok(b !== undefined && !tried.includes(b));
      tried.push(b);
    }
    assert.equal(pool.pick(tried), undefined);
  });

  it('prefers untried up backends to down ones on a retry, then tries down ones', () => {
    const list = backends(3);
    list[2]?.setHealth('down');
    const pool = poolOf(list);
    assert.equal(pool.pick([list[0]!])?.name, 'b2');
    assert.equal(pool.pick([list[0]!, list[1]!])?.name, 'b3');
  });

  it('survives removing members, including the one under the cursor', () => {
    const list = backends(3);
    const pool = poolOf(list);
    assert.deepEqual(names(pool, 2), ['b1', 'b2']);
    pool.remove(list[2]!);
    assert.deepEqual(names(pool, 3), ['b1', 'b2', 'b1']);
    pool.remove(list[0]!);
    pool.remove(list[1]!);
    assert.equal(pool.pick(), undefined);
  });
});

describe('backend pool: leastconn', () => {
  it('takes the backend with the fewest connections', () => {
    const list = backends(3);
    list[0]?.attach(fakeRelay());
    list[0]?.attach(fakeRelay());
    list[1]?.attach(fakeRelay());
    assert.equal(poolOf(list, 'leastconn').pick()?.name, 'b3');
  });

  it('takes ties in turn', () => {
    assert.deepEqual(names(poolOf(backends(3), 'leastconn'), 4), ['b1', 'b2', 'b3', 'b1']);
  });

  it('balances connections that stay open', () => {
    const list = backends(3);
    const pool = poolOf(list, 'leastconn');
    for (let i = 0; i < 30; i++) pool.pick()?.attach(fakeRelay());
    assert.deepEqual(
      list.map((b) => b.active),
      [10, 10, 10],
    );
  });

  it('skips down backends however idle they are', () => {
    const list = backends(2);
    list[0]?.attach(fakeRelay());
    list[1]?.setHealth('down');
    assert.equal(poolOf(list, 'leastconn').pick()?.name, 'b1');
  });
});

describe('backend connections', () => {
  it('counts attached relays and destroys them all on request', () => {
    const [b] = backends(1);
    let destroyed = 0;
    const relays = [0, 1, 2].map(() => ({
      destroy: () => {
        destroyed += 1;
      },
    }));
    for (const r of relays) b!.attach(r);
    b!.detach(relays[0]!);
    b!.detach(relays[0]!);
    assert.equal(b!.active, 2);
    assert.equal(b!.total, 3);
    assert.equal(b!.destroyRelays(), 2);
    assert.equal(destroyed, 2);
  });
});

describe('rise/fall', () => {
  it('lets the first result decide from unknown', () => {
    const up = new RiseFall(2, 3);
    assert.equal(up.record(true), 'up');
    const down = new RiseFall(2, 3);
    assert.equal(down.record(false), 'down');
  });

  it('goes down only after `fall` consecutive failures', () => {
    const rf = new RiseFall(2, 3, 'up');
    assert.equal(rf.record(false), undefined);
    assert.equal(rf.record(false), undefined);
    assert.equal(rf.record(false), 'down');
    assert.equal(rf.state, 'down');
  });

  it('comes back only after `rise` consecutive successes', () => {
    const rf = new RiseFall(2, 3, 'down');
    assert.equal(rf.record(true), undefined);
    assert.equal(rf.record(true), 'up');
  });

  it('restarts the count when a result agrees with the state', () => {
    const rf = new RiseFall(2, 3, 'up');
    const seq = [false, false, true, false, false, true, false, false, false];
    const changes = seq.map((ok) => rf.record(ok));
    assert.deepEqual(changes, [
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      'down',
    ]);
  });

  it('applies new thresholds to the streak in progress', () => {
    const rf = new RiseFall(2, 5, 'up');
    rf.record(false);
    rf.record(false);
    rf.setThresholds(2, 3);
    assert.equal(rf.record(false), 'down');
  });

  it('with rise = fall = 1 follows every result', () => {
    const rf = new RiseFall(1, 1, 'up');
    assert.deepEqual(
      [false, true, true, false].map((ok) => rf.record(ok)),
      ['down', 'up', undefined, 'down'],
    );
  });
});

describe('proxy settings from config', () => {
  const peers = [
    { name: 'cp1', address: '192.168.10.11' },
    { name: 'cp2', address: '192.168.10.12' },
    { name: 'cp3', address: '192.168.10.13' },
  ];

  it('by default balances :6443 over every peer on :9443 with /readyz checks', () => {
    const s = proxySettings({ proxy: proxySchema.parse({}), peers });
    assert.equal(s.drainTimeoutMs, 20_000);
    assert.equal(s.frontends.length, 1);
    const f = s.frontends[0]!;
    assert.deepEqual(f.bind, { host: '0.0.0.0', port: 6443 });
    assert.deepEqual(
      f.backends,
      peers.map((p) => ({ ...p, port: 9443 })),
    );
    assert.equal(f.balance, 'roundrobin');
    assert.equal(f.idleTimeoutMs, 0);
    assert.equal(f.retries, 3);
    assert.equal(f.shutdownOnMarkedDown, true);
    assert.deepEqual(
      { ...f.check, tls: { ...f.check.tls } },
      {
        type: 'https',
        path: '/readyz',
        intervalMs: 2000,
        timeoutMs: 1000,
        rise: 2,
        fall: 3,
        tls: { verify: false },
      },
    );
  });

  it('uses explicit backends when listed', () => {
    const proxy = proxySchema.parse({
      frontends: [{ name: 'x', bind: '127.0.0.1:7000', backends: [{ name: 'a', address: '10.1.1.1', port: 80 }] }],
    });
    assert.deepEqual(proxySettings({ proxy, peers }).frontends[0]?.backends, [
      { name: 'a', address: '10.1.1.1', port: 80 },
    ]);
  });

  it('has no frontends when the proxy is disabled', () => {
    assert.equal(proxySettings({ proxy: proxySchema.parse({ enabled: false }), peers }).frontends.length, 0);
  });

  it('reads the CA file, and names the field when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-proxy-'));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'PEM');
    const ok = proxySchema.parse({
      frontends: [
        { name: 'x', bind: '127.0.0.1:7000', healthCheck: { tls: { verify: false, caFile: ca, serverName: 'cp1' } } },
      ],
    });
    const tls = proxySettings({ proxy: ok, peers }).frontends[0]?.check.tls;
    assert.equal(tls?.ca?.toString(), 'PEM');
    assert.equal(tls?.serverName, 'cp1');
    // Verified against, a bundle without a certificate is refused (Node would ignore it, and fail every check).
    const verified = proxySchema.parse({
      frontends: [{ name: 'x', bind: '127.0.0.1:7000', healthCheck: { tls: { verify: true, caFile: ca } } }],
    });
    assert.throws(() => proxySettings({ proxy: verified, peers }), /tls\.caFile: ".*" holds no PEM certificate/);
    const bad = proxySchema.parse({
      frontends: [{ name: 'x', bind: '127.0.0.1:7000', healthCheck: { tls: { caFile: join(dir, 'missing.pem') } } }],
    });
    assert.throws(
      () => proxySettings({ proxy: bad, peers }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /proxy\.frontends\[0\]\.healthCheck\.tls\.caFile: cannot read ".*missing\.pem": ENOENT/.test(
          err.problems[0] ?? '',
        ),
    );
  });
});
