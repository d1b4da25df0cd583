/**
 * The election runner (src/vrrp/runner.ts) with its real UDP socket on loopback and a scripted VIP
 * owner: what it does with VIP operations that fail, and with a stop that is asked for twice.
 * A one-member cluster (quorum: none) is master as soon as it starts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { sleep } from '../src/lab/wait';
import { createLogger } from '../src/log/logger';
import { createMetrics } from '../src/metrics/metrics';
import type { VipOwner } from '../src/vip/owner';
import { ElectionRunner } from '../src/vrrp/runner';
import type { ElectionSettings } from '../src/vrrp/types';

/** Records every call; `failRelease` makes the next releases throw. */
class ScriptedVip implements VipOwner {
  readonly calls: string[] = [];
  failRelease = 0;
  private holding = false;
  async prepare(): Promise<void> {
    this.calls.push('prepare');
  }
  async acquire(): Promise<void> {
    this.calls.push('acquire');
    this.holding = true;
  }
  async renew(): Promise<void> {
    this.calls.push('renew');
  }
  async release(): Promise<void> {
    this.calls.push('release');
    if (this.failRelease > 0) {
      this.failRelease -= 1;
      throw new Error('EBUSY (scripted)');
    }
    this.holding = false;
  }
  quiesce(): void {
    this.calls.push('quiesce');
  }
  announceUntil(): void {
    /* the deadline itself is the owner's business */
  }
  held(): boolean {
    return this.holding;
  }
  async close(): Promise<void> {
    this.calls.push('close');
  }
}

function runner(vip: ScriptedVip, port: number): ElectionRunner {
  const settings: ElectionSettings = {
    clusterId: 1,
    self: { name: 'solo', address: '127.0.0.21' },
    members: [{ name: 'solo', address: '127.0.0.21' }],
    intervalMs: 50,
    deadAfter: 3,
    maxDeadAfter: 30,
    priority: 100,
    preempt: true,
    preemptDelayMs: 0,
    quorum: 'none',
    vipLifetimeMs: 1000,
    bootstrap: 'solo',
    formed: false,
    observer: false,
  };
  const log = createLogger({ level: 'fatal', destination: new Writable({ write: (_c, _e, done) => done() }) });
  return new ElectionRunner({
    settings,
    secret: Buffer.from('runner-test-secret-0123'),
    port,
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    vip,
  });
}

describe('election runner', () => {
  it('a failed release is retried, but never after the VIP was taken again', async () => {
    const vip = new ScriptedVip();
    const r = runner(vip, 17900 + (process.pid % 50));
    try {
      await r.start();
      await sleep(100);
      assert.ok(vip.calls.includes('acquire'), vip.calls.join(','));
      vip.failRelease = 1;
      r.track('link:eth0', { kind: 'fault' }); // FAULT: release (fails)
      await sleep(20);
      r.track('link:eth0', { kind: 'ok' }); // master again: acquire, before the retry is due (200 ms)
      await sleep(600);
      const afterAcquire = vip.calls.slice(vip.calls.lastIndexOf('acquire') + 1);
      assert.ok(!afterAcquire.includes('release'), `no release after the new acquisition: ${vip.calls.join(',')}`);
      assert.equal(r.snapshot().role, 'MASTER');
    } finally {
      await r.close();
    }
  });

  it('a failed release with nothing after it is retried until it succeeds', async () => {
    const vip = new ScriptedVip();
    const r = runner(vip, 17950 + (process.pid % 50));
    try {
      await r.start();
      await sleep(100);
      vip.failRelease = 2;
      r.track('link:eth0', { kind: 'fault' });
      await sleep(1000); // retries after 200 and 400 ms
      assert.equal(vip.calls.filter((c) => c === 'release').length, 3, vip.calls.join(','));
      assert.equal(vip.held(), false);
    } finally {
      await r.close();
    }
  });

  it('stop() twice: both wait for the one stop; the VIP is released once, after a quiesce', async () => {
    const vip = new ScriptedVip();
    const r = runner(vip, 18000 + (process.pid % 50));
    await r.start();
    await sleep(100);
    let hookRan = 0;
    const first = r.stop(async () => {
      hookRan += 1;
    });
    const second = r.stop();
    await Promise.all([first, second]);
    assert.equal(vip.calls.filter((c) => c === 'release').length, 1, vip.calls.join(','));
    assert.ok(
      vip.calls.lastIndexOf('quiesce') < vip.calls.lastIndexOf('release'),
      'announcing stopped before the removal',
    );
    assert.equal(hookRan, 1, 'the before-release hook ran');
    assert.equal(r.liveness().running, false);
  });
});
