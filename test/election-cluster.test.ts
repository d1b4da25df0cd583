/**
 * Whole clusters of 3 and 5 election state machines through seeded chaos (helpers/chaos.ts):
 * crashes that leave the VIP behind, power losses, quick restarts, graceful stops, stalls with
 * queued delivery, partitions, one-way cuts, random and per-link loss up to 80 %, reordering,
 * duplicates, replays, reloads, tracked faults and failing netlink, on hosts whose clocks drift and
 * whose timers fire late. After every single event the simulator checks the safety invariants
 * (at most one lease, at most one announced VIP, every other copy excused and bounded); after the
 * faults heal, one holder within the liveness bound, and then no movement. A failing seed prints
 * its trace and replays exactly: `node -e "require('./dist/test/helpers/chaos').chaos({members: 3, seed: N})"`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaos } from './helpers/chaos';

/** 2,000 schedules of 3 members (20 fault phases each) and 300 of 5 (15 phases): about 30 s on 2 cores. */
const PLAN: readonly {
  members: number;
  seeds: number;
  batch: number;
  rounds: number;
  bootstrap: boolean;
  witnesses?: readonly string[];
  ipv6?: boolean;
}[] = [
  { members: 3, seeds: 2000, batch: 250, rounds: 20, bootstrap: false },
  { members: 5, seeds: 300, batch: 100, rounds: 15, bootstrap: false },
  // New clusters: the first member alone, the others joining through partitions, cuts and crashes.
  { members: 3, seeds: 1000, batch: 250, rounds: 15, bootstrap: true },
  { members: 5, seeds: 200, batch: 100, rounds: 10, bootstrap: true },
  // Two members and a witness (n3): the same chaos, the witness's crashes, stalls and cuts included.
  { members: 3, seeds: 500, batch: 250, rounds: 20, bootstrap: false, witnesses: ['n3'] },
  { members: 3, seeds: 250, batch: 250, rounds: 15, bootstrap: true, witnesses: ['n3'] },
  // Members on IPv6 addresses: the sources, the tie-break by address, the same rules.
  { members: 3, seeds: 250, batch: 250, rounds: 20, bootstrap: false, ipv6: true },
];

describe('simulated clusters under chaos', () => {
  for (const { members, seeds, batch, rounds, bootstrap, witnesses, ipv6 } of PLAN) {
    for (let from = 1; from <= seeds; from += batch) {
      const to = from + batch - 1;
      const shape =
        witnesses === undefined ? `${members} members` : `${members - witnesses.length} members + a witness`;
      it(`${shape}${ipv6 === true ? ' on IPv6' : ''}${bootstrap ? ', a new cluster' : ''}, seeds ${from}-${to}`, () => {
        const totals: Record<string, number> = {};
        for (let seed = from; seed <= to; seed += 1) {
          const { faults } = chaos({
            members,
            seed,
            rounds,
            bootstrap,
            preempt: seed % 3 !== 0,
            preemptDelayMs: seed % 4 === 0 ? 500 : 0,
            ...(witnesses === undefined && ipv6 === undefined ? {} : { sim: { witnesses, ipv6 } }),
          });
          for (const [k, v] of Object.entries(faults)) totals[k] = (totals[k] ?? 0) + v;
        }
        // The schedules really exercised every fault class.
        const classes = [
          'crash',
          'restart',
          'stop',
          'start',
          'stall',
          'partition',
          'one-way',
          'loss',
          'link-loss',
          'replay',
          'reconfigure',
          'track',
          'netlink',
          'reorder',
        ];
        if (bootstrap) classes.push('join', 'join-partition', 'join-one-way', 'join-loss', 'join-restart-first');
        for (const f of classes) {
          assert.ok((totals[f] ?? 0) > 0, `no ${f} in seeds ${from}-${to}`);
        }
      });
    }
  }
});
