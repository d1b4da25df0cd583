import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_SILENCE, nextSilence, type PeerHearing, REPEAT_MS, WARN_AFTER_MS } from '../src/vrrp/silence-report';

const peer = (name: string, alive: boolean, lastHeard: number | undefined): PeerHearing => ({
  name,
  address: `10.0.0.${name.slice(-1)}`,
  alive,
  lastHeard,
});

describe('silence report', () => {
  it('names a peer silent for 5 s once, repeats every minute, and says when it is back', () => {
    let state = NO_SILENCE;
    const step = (peers: PeerHearing[], now: number) => {
      const r = nextSilence(state, peers, now);
      state = r.state;
      return r.lines;
    };
    // cp2 heard at 1000 then silent; cp3 never heard at all.
    assert.deepEqual(step([peer('cp2', true, 1000), peer('cp3', false, undefined)], 1000).silent, []);
    assert.deepEqual(
      step([peer('cp2', false, 1000), peer('cp3', false, undefined)], 1000 + WARN_AFTER_MS - 1).silent,
      [],
    );
    const first = step([peer('cp2', false, 1000), peer('cp3', false, undefined)], 1000 + WARN_AFTER_MS);
    assert.deepEqual(
      first.silent.map((p) => [p.name, p.silentForMs, p.everHeard]),
      [
        ['cp2', WARN_AFTER_MS, true],
        ['cp3', WARN_AFTER_MS, false],
      ],
    );
    assert.deepEqual(
      step([peer('cp2', false, 1000), peer('cp3', false, undefined)], 1000 + WARN_AFTER_MS + 1000).silent,
      [],
      'not every second',
    );
    const again = step([peer('cp2', false, 1000), peer('cp3', false, undefined)], 1000 + WARN_AFTER_MS + REPEAT_MS);
    assert.equal(again.silent.length, 2, 'again after a minute');
    const back = step([peer('cp2', true, 70_000), peer('cp3', false, undefined)], 70_500);
    assert.deepEqual(back.back, ['cp2']);
    assert.deepEqual(back.silent, []);
    assert.deepEqual(step([peer('cp2', true, 71_000), peer('cp3', false, undefined)], 71_000).back, [], 'once');
  });

  it('a member that hears everyone says nothing', () => {
    const r = nextSilence(NO_SILENCE, [peer('cp2', true, 5), peer('cp3', true, 5)], 100_000);
    assert.deepEqual(r.lines, { silent: [], back: [] });
  });
});
