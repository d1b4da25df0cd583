/**
 * The balancer's pure rules, without sockets: rise/fall counting, and resolving settings from a
 * config. The backend choice is the native engine's: test/proxy-choice.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RiseFall } from '../src/checks/rise-fall';
import { proxySchema } from '../src/config/schema';
import { ConfigError } from '../src/errors';
import { proxySettings } from '../src/proxy/settings';

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
    { name: 'cp1', address: '192.168.10.11', role: 'member' as const },
    { name: 'cp2', address: '192.168.10.12', role: 'member' as const },
    { name: 'cp3', address: '192.168.10.13', role: 'member' as const },
  ];

  it('by default balances :6443 over every peer on :9443 with /readyz checks', () => {
    const s = proxySettings({ proxy: proxySchema.parse({}), peers });
    assert.equal(s.drainTimeoutMs, 20_000);
    assert.equal(s.frontends.length, 1);
    const f = s.frontends[0]!;
    assert.deepEqual(f.bind, { host: '0.0.0.0', port: 6443 });
    assert.deepEqual(
      f.backends,
      peers.map((p) => ({ name: p.name, address: p.address, port: 9443 })),
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
