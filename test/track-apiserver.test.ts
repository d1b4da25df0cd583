/**
 * The local apiserver tracker against the stand-in apiserver: it reports a TrackEffect only after
 * `fall` failures (never at start), and `ok` after `rise` successes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { trackApiserverSchema } from '../src/config/schema';
import { FakeApiserver } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import { ApiserverTracker } from '../src/track/apiserver';
import type { TrackEffect } from '../src/vrrp/types';

const HOST = '127.0.0.22';
const log = pino({ level: 'silent' });
let fake: FakeApiserver;

before(async () => {
  fake = await FakeApiserver.start({ host: HOST, name: 'local' });
});
after(async () => {
  await fake.kill();
});

const settings = (over: Record<string, unknown> = {}) =>
  trackApiserverSchema.parse({ port: fake.port, interval: '100ms', timeout: '80ms', rise: 2, fall: 3, ...over });

describe('apiserver tracker', () => {
  it('lowers the weight after fall failures and clears it after rise successes', async () => {
    fake.setHealthy(true);
    const effects: TrackEffect[] = [];
    const tracker = new ApiserverTracker(
      { address: HOST, settings: settings({ mode: 'weight', weight: 40 }), log },
      (e) => effects.push(e),
    );
    try {
      tracker.start();
      await new Promise((r) => setTimeout(r, 250));
      assert.deepEqual(effects, [], 'a healthy apiserver reports nothing');
      assert.equal(tracker.status().lastCheck?.detail, 'HTTP 200');
      assert.equal(tracker.status().url, `https://${HOST}:${fake.port}/readyz`);

      fake.setHealthy(false);
      const t0 = performance.now();
      await waitFor('weight', () => effects.length === 1, { timeoutMs: 3000 });
      const t = performance.now() - t0;
      assert.deepEqual(effects[0], { kind: 'weight', weight: 40 });
      assert.ok(t >= 150, `reported after ${t}ms: needs 3 failures 100ms apart`);

      fake.setHealthy(true);
      await waitFor('ok', () => effects.length === 2, { timeoutMs: 3000 });
      assert.deepEqual(effects[1], { kind: 'ok' });
      assert.deepEqual(tracker.status().effect, { kind: 'ok' });
    } finally {
      tracker.close();
      fake.setHealthy(true);
    }
  });

  it('reports a fault in ineligible mode', async () => {
    fake.setHealthy(false);
    const effects: TrackEffect[] = [];
    const tracker = new ApiserverTracker(
      { address: HOST, settings: settings({ mode: 'ineligible', fall: 2 }), log },
      (e) => effects.push(e),
    );
    try {
      tracker.start();
      await waitFor('fault', () => effects.length === 1, { timeoutMs: 3000 });
      assert.deepEqual(effects, [{ kind: 'fault' }]);
    } finally {
      tracker.close();
      fake.setHealthy(true);
    }
  });

  it('does not report an absent apiserver before fall checks (boot: the kubelet starts it after vipd)', async () => {
    const effects: TrackEffect[] = [];
    let checks = 0;
    const tracker = new ApiserverTracker(
      {
        address: HOST,
        settings: settings({ fall: 3 }),
        log,
        probe: async () => {
          checks += 1;
          return { ok: false, detail: 'ECONNREFUSED', at: Date.now(), durationMs: 0 };
        },
      },
      (e) => effects.push(e),
    );
    try {
      tracker.start();
      await waitFor('2 checks', () => checks >= 2, { timeoutMs: 2000 });
      assert.deepEqual(effects, []);
      await waitFor('3rd check', () => effects.length === 1, { timeoutMs: 2000 });
      assert.equal(checks, 3);
    } finally {
      tracker.close();
    }
  });

  it('stops checking on close', async () => {
    const effects: TrackEffect[] = [];
    let checks = 0;
    const tracker = new ApiserverTracker(
      {
        address: HOST,
        settings: settings({ fall: 1 }),
        log,
        probe: async () => {
          checks += 1;
          return { ok: false, detail: 'x', at: Date.now(), durationMs: 0 };
        },
      },
      (e) => effects.push(e),
    );
    tracker.start();
    await waitFor('a check', () => checks >= 1, { timeoutMs: 1000 });
    tracker.close();
    tracker.close();
    const n = checks;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(checks, n);
  });
});
