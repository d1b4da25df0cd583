/**
 * MultiVipOwner (src/vip/multi-owner.ts), a dual-stack pair as one VipOwner, over fake owners that
 * record their calls and fail on demand: every call reaches both, a failure is rethrown once both
 * settled, and a failed acquire leaves neither address held.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MultiVipOwner } from '../src/vip/multi-owner';
import type { VipOwner } from '../src/vip/owner';

class FakeOwner implements VipOwner {
  readonly calls: string[] = [];
  holding = false;
  failAcquire = false;
  failRelease = false;
  deadline = 0;
  async prepare(): Promise<void> {
    this.calls.push('prepare');
  }
  async acquire(): Promise<void> {
    this.calls.push('acquire');
    if (this.failAcquire) throw new Error('EADDRNOTAVAIL');
    this.holding = true;
  }
  async renew(): Promise<void> {
    this.calls.push('renew');
  }
  async release(): Promise<void> {
    this.calls.push('release');
    if (this.failRelease) throw new Error('ENOBUFS');
    this.holding = false;
  }
  quiesce(): void {
    this.calls.push('quiesce');
  }
  announceUntil(deadline: number): void {
    this.deadline = deadline;
  }
  held(): boolean {
    return this.holding;
  }
  async close(): Promise<void> {
    this.calls.push('close');
    this.holding = false;
  }
}

describe('MultiVipOwner', () => {
  it('passes every call to both owners', async () => {
    const [a, b] = [new FakeOwner(), new FakeOwner()];
    const pair = new MultiVipOwner([a, b]);
    await pair.prepare();
    await pair.acquire();
    assert.ok(pair.held());
    await pair.renew();
    pair.quiesce();
    pair.announceUntil(1234);
    await pair.release();
    assert.ok(!pair.held());
    await pair.close();
    for (const o of [a, b]) {
      assert.deepEqual(o.calls, ['prepare', 'acquire', 'renew', 'quiesce', 'release', 'close']);
      assert.equal(o.deadline, 1234);
    }
  });

  it('one address failing to be added: the other is released again, nothing is held, the error is rethrown', async () => {
    const [v4, v6] = [new FakeOwner(), new FakeOwner()];
    v6.failAcquire = true;
    const pair = new MultiVipOwner([v4, v6]);
    await assert.rejects(pair.acquire(), /EADDRNOTAVAIL/);
    assert.equal(pair.held(), false, 'no half pair held');
    assert.deepEqual(v4.calls, ['acquire', 'release']);
    assert.deepEqual(v6.calls, ['acquire'], 'the owner that failed is not released (it added nothing)');
  });

  it('a failed release still releases the other and rethrows; held() says so until a retry succeeds', async () => {
    const [v4, v6] = [new FakeOwner(), new FakeOwner()];
    const pair = new MultiVipOwner([v4, v6]);
    await pair.acquire();
    v4.failRelease = true;
    await assert.rejects(pair.release(), /ENOBUFS/);
    assert.equal(v6.held(), false);
    assert.equal(pair.held(), true, 'the address still there is reported, so the runner retries');
    v4.failRelease = false;
    await pair.release();
    assert.equal(pair.held(), false);
  });

  it('refuses an empty list', () => {
    assert.throws(() => new MultiVipOwner([]), RangeError);
  });
});
