/**
 * The local apiserver tracker against the stand-in apiserver: it reports a TrackEffect only after
 * `fall` failures (never at start), and `ok` after `rise` successes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { trackApiserverSchema } from '../src/config/schema';
import { FakeApiserver } from '../src/lab/stand-in-apiserver';
import { sleep, waitFor } from '../src/lab/wait';
import { createLogger } from '../src/log/logger';
import { ApiserverTracker, TrackedApiserver } from '../src/track/apiserver';
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

describe('the tracked apiserver in force (what the daemon runs; a reload replaces it)', () => {
  it('logs each verdict and hands it to the election; retrack clears it and restarts with new settings', async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
    const verdicts: string[] = [];
    const election = { track: (name: string, effect: TrackEffect) => verdicts.push(`${name} ${effect.kind}`) };
    let checks = 0;
    const probe = async () => {
      checks += 1;
      return { ok: false, detail: 'ECONNREFUSED', at: Date.now(), durationMs: 0 };
    };
    const config = (over: Record<string, unknown>) => ({
      self: { name: 'cp1', address: HOST, role: 'member' as const },
      track: { apiserver: settings(over) },
    });
    const tracked = new TrackedApiserver(config({ mode: 'weight', weight: 40, fall: 1 }), {
      log: createLogger({ level: 'info', destination }),
      election,
      probe,
    });
    try {
      tracked.start();
      await waitFor('a verdict', () => verdicts.length === 1, { timeoutMs: 2000 });
      assert.deepEqual(verdicts, ['apiserver weight']);
      assert.ok(
        lines.some((l) => l.msg === 'apiserver check: weight' && l.track === 'apiserver' && l.effect === 'weight'),
        'the verdict is logged',
      );

      tracked.retrack(config({ mode: 'ineligible', fall: 1 }));
      // The new tracker reports nothing before `fall` failures: the old verdict must not outlive it.
      assert.deepEqual(verdicts, ['apiserver weight', 'apiserver ok']);
      await waitFor("the new tracker's verdict", () => verdicts.length === 3, { timeoutMs: 2000 });
      assert.equal(verdicts[2], 'apiserver fault');
      assert.deepEqual(tracked.status()?.effect, { kind: 'fault' });

      tracked.retrack(config({ enabled: false }));
      assert.deepEqual(verdicts.slice(3), ['apiserver ok']);
      assert.equal(tracked.status(), undefined);
      const n = checks;
      await sleep(300);
      assert.equal(checks, n, 'the replaced tracker stopped checking');
    } finally {
      tracked.close();
    }
  });
});
