import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { liveness, livenessLimitMs, type ReadinessInput, readiness } from '../src/admin/liveness';
import { stallMs } from '../src/vrrp/timing';

const running = (sinceLastStepMs: number) => ({ running: true, sinceLastStepMs });
const DEFAULTS = { intervalMs: 100, deadAfter: 3 };

describe('/healthz: liveness', () => {
  it('is alive while starting, and while the election steps', () => {
    const limitMs = livenessLimitMs(DEFAULTS);
    assert.deepEqual(liveness({ phase: 'starting', election: { running: false, sinceLastStepMs: 0 }, limitMs }), {
      ok: true,
      reason: 'starting',
    });
    assert.deepEqual(liveness({ phase: 'running', election: running(100), limitMs }), {
      ok: true,
      reason: 'election running',
    });
  });

  it('fails once the election stopped, or has not stepped for longer than the limit', () => {
    const limitMs = livenessLimitMs(DEFAULTS);
    assert.deepEqual(liveness({ phase: 'stopping', election: { running: false, sinceLastStepMs: 10 }, limitMs }), {
      ok: false,
      reason: 'election stopped',
    });
    assert.deepEqual(liveness({ phase: 'running', election: running(limitMs + 0.4), limitMs }), {
      ok: false,
      reason: `the election has not run for ${limitMs} ms`,
    });
    assert.equal(liveness({ phase: 'running', election: running(limitMs), limitMs }).ok, true);
  });

  it('allows 5 s without a step at the default interval', () => {
    assert.equal(livenessLimitMs(DEFAULTS), 5_000);
  });

  it('6 s without a step is alive at election.interval 10s (a lone member steps once per interval)', () => {
    const timing = { intervalMs: 10_000, deadAfter: 3 };
    const limitMs = livenessLimitMs(timing);
    assert.equal(liveness({ phase: 'running', election: running(6_000), limitMs }).ok, true);
    // A tick one interval away that wakes a stall's margin late is still a live loop.
    const late = timing.intervalMs + stallMs(timing);
    assert.equal(liveness({ phase: 'running', election: running(late), limitMs }).ok, true);
    assert.equal(liveness({ phase: 'running', election: running(4 * late), limitMs }).ok, false);
  });

  it('at every interval the config allows, the limit outlasts a late tick, and is never under 5 s', () => {
    for (let intervalMs = 20; intervalMs <= 10_000; intervalMs += 10) {
      for (const deadAfter of [2, 3, 100]) {
        const timing = { intervalMs, deadAfter };
        const limitMs = livenessLimitMs(timing);
        assert.ok(limitMs >= 5_000, `${intervalMs} ms, deadAfter ${deadAfter}: ${limitMs}`);
        assert.ok(limitMs > 2 * intervalMs + stallMs(timing), `${intervalMs} ms, deadAfter ${deadAfter}: ${limitMs}`);
      }
    }
  });
});

describe('/readyz: readiness', () => {
  const base: ReadinessInput = {
    phase: 'running',
    live: { ok: true, reason: 'election running' },
    role: 'BACKUP',
    dryRun: false,
    frontends: [{ name: 'apiserver', listening: true }],
  };

  it('is ready once running, alive and listening, and says so', () => {
    assert.deepEqual(readiness(base), {
      ok: true,
      reason: 'config loaded, election running (BACKUP), proxy listening',
    });
    assert.deepEqual(readiness({ ...base, frontends: undefined, role: 'MASTER' }), {
      ok: true,
      reason: 'config loaded, election running (MASTER)',
    });
  });

  it('is not ready while starting or stopping, nor when not alive', () => {
    assert.deepEqual(readiness({ ...base, phase: 'starting' }), { ok: false, reason: 'starting' });
    assert.deepEqual(readiness({ ...base, phase: 'stopping' }), { ok: false, reason: 'stopping' });
    const dead = { ok: false, reason: 'the election has not run for 6000 ms' };
    assert.deepEqual(readiness({ ...base, live: dead }), dead);
  });

  it('names the frontends not listening; a dry run listens on nothing and is ready anyway', () => {
    const frontends = [
      { name: 'apiserver', listening: false },
      { name: 'b', listening: true },
      { name: 'c', listening: false },
    ];
    assert.deepEqual(readiness({ ...base, frontends }), { ok: false, reason: 'frontends not listening: apiserver, c' });
    assert.deepEqual(readiness({ ...base, frontends, dryRun: true }), {
      ok: true,
      reason: 'config loaded, election running (BACKUP), proxy checking backends (dry run)',
    });
  });
});
