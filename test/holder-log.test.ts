/**
 * The drill's holder figures (src/lab/holder-log.ts) on made-up logs: what counts as a takeover,
 * an addition, two holders and no holder, and where a window cuts a stretch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { firstHeldByOther, type HolderChange, HolderLog, holderStats, holdersAt } from '../src/lab/holder-log';

const log = (...changes: [number, string][]): HolderChange[] =>
  changes.map(([t, h]) => ({ t, holders: h === '' ? [] : h.split('+') }));

describe('holder figures', () => {
  it('a takeover through two holders: one takeover, one addition, the overlap as two-holder time', () => {
    const s = holderStats(log([0, 'a'], [100, 'a+b'], [350, 'b']), 50, 1000);
    assert.deepEqual(s, { changes: 2, additions: 1, takeovers: 1, multiMs: 250, longestMultiMs: 250, noneMs: 0 });
  });

  it('the VIP back on the same node is no takeover, through two holders or through none', () => {
    const s = holderStats(log([0, 'a'], [100, 'a+b'], [200, 'a'], [300, ''], [340, 'a']), 0, 400);
    assert.deepEqual(s, { changes: 4, additions: 2, takeovers: 0, multiMs: 100, longestMultiMs: 100, noneMs: 40 });
  });

  it('a takeover through no holder, and back: two takeovers', () => {
    const s = holderStats(log([0, 'a'], [100, ''], [130, 'b'], [500, 'a+b'], [510, 'a']), 0, 600);
    assert.equal(s.takeovers, 2);
    assert.equal(s.noneMs, 30);
    assert.equal(s.multiMs, 10);
  });

  it('a window cuts stretches at its ends and starts from the holders at its start', () => {
    const l = log([0, 'a'], [100, 'a+b'], [300, 'b'], [400, 'a+b'], [900, 'a']);
    assert.deepEqual(holdersAt(l, 150), ['a', 'b']);
    assert.deepEqual(holdersAt(l, -1), []);
    const s = holderStats(l, 200, 600);
    assert.deepEqual(s, { changes: 2, additions: 1, takeovers: 0, multiMs: 300, longestMultiMs: 200, noneMs: 0 });
  });

  it('the first change that gives the VIP to another node, within a window', () => {
    const l = log([0, 'a'], [100, 'a+b'], [300, 'b']);
    assert.equal(firstHeldByOther(l, 'a', 50)?.t, 100);
    assert.equal(firstHeldByOther(l, 'a', 50, 90), undefined);
    assert.equal(firstHeldByOther(l, 'b', 0)?.t, 0);
    assert.equal(firstHeldByOther(l, 'b', 200), undefined); // from 300 on, b alone
  });

  it('the live log records real changes only and wakes its waiters', async () => {
    const h = new HolderLog();
    const waited = h.waitFor((s) => s.has('b'), 1000);
    h.set('a', true, 1);
    h.set('a', true, 2); // an address refreshed: no change
    h.set('b', true, 3);
    h.set('a', false, 4);
    assert.deepEqual(h.log, log([1, 'a'], [3, 'a+b'], [4, 'b']));
    assert.equal(h.list(), 'b');
    assert.notEqual(await waited, undefined);
    assert.equal(await h.waitFor((s) => s.size === 2, 20), undefined);
  });
});
