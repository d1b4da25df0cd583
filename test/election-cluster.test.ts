/**
 * Whole clusters of 3 and 5 election state machines over a simulated network with delays, drops,
 * partitions, crashes, restarts and graceful stops (helpers/sim-cluster.ts), checking the
 * invariants docs/election.md promises:
 * - with quorum, two members never hold the VIP at once for longer than one interval (plus the
 *   network delay): the overlap a message in flight allows;
 * - whenever the network is whole and a majority is up, exactly one master within
 *   deadAfter x interval + preemptDelay (plus a few intervals for the messages).
 * Seeded, so a failure prints its seed and replays exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimCluster } from './helpers/sim-cluster';

function rngFor(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Scenario { members: number; seed: number; dropRate: number; preempt: boolean; preemptDelayMs: number }

function chaos(sc: Scenario): void {
  const interval = 100;
  const maxDelay = 5;
  const sim = new SimCluster({
    members: sc.members, seed: sc.seed, intervalMs: interval, deadAfter: 3, delayMs: 1, jitterMs: maxDelay - 1,
    dropRate: 0, preempt: sc.preempt, preemptDelayMs: sc.preemptDelayMs,
    priorities: Array.from({ length: sc.members }, (_, i) => 100 + ((i * 37) % 3) * 10),
  });
  const rnd = rngFor(sc.seed * 7919);
  const names = [...sim.nodes.keys()];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;
  const ctx = () => `seed ${sc.seed}, members ${sc.members}, t=${sim.now}`;

  sim.start();
  sim.run(2000);
  for (let round = 0; round < 40; round += 1) {
    const up = names.filter((n) => sim.node(n).up);
    const down = names.filter((n) => !sim.node(n).up);
    const r = rnd();
    if (r < 0.2 && up.length > 0) sim.crash(pick(up));
    else if (r < 0.35 && up.length > 0) sim.stop(pick(up));
    else if (r < 0.55 && down.length > 0) sim.start(pick(down));
    else if (r < 0.75) {
      const shuffled = [...names].sort(() => rnd() - 0.5);
      const cut = 1 + Math.floor(rnd() * (names.length - 1));
      sim.heal();
      sim.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (r < 0.85) sim.dropRate = rnd() * 0.2;
    else sim.heal();
    sim.run(200 + Math.floor(rnd() * 1500));
    const overlap = sim.longestOverlap();
    assert.ok(overlap <= interval + maxDelay, `two holders for ${overlap} ms (${ctx()})`);
  }

  // Heal everything, bring a majority up, and the cluster must settle on one master.
  sim.heal();
  sim.dropRate = 0;
  const down = names.filter((n) => !sim.node(n).up);
  for (const n of down) sim.start(n);
  const settleBy = 3 * interval + sc.preemptDelayMs + 5 * interval;
  const settled = sim.runUntil(() => sim.masters().length === 1 && sim.holders().length === 1, settleBy + 3000);
  assert.ok(settled !== undefined, `no single master after healing (${ctx()}): masters ${sim.masters().join(',')}`);
  // Then it stays settled.
  sim.run(3000);
  assert.equal(sim.masters().length, 1, `unstable after settling (${ctx()})`);
  assert.ok(sim.longestOverlap() <= interval + maxDelay, `two holders for ${sim.longestOverlap()} ms (${ctx()})`);
}

describe('simulated clusters under chaos (quorum: majority)', () => {
  for (const members of [3, 5]) {
    for (let seed = 1; seed <= 40; seed += 1) {
      it(`${members} members, seed ${seed}`, () => {
        chaos({ members, seed, dropRate: 0.05, preempt: seed % 3 !== 0, preemptDelayMs: seed % 4 === 0 ? 500 : 0 });
      });
    }
  }
});

describe('simulated clusters without disruption', () => {
  for (const members of [3, 5]) {
    it(`${members} members elect exactly one master within deadAfter x interval + preemptDelay`, () => {
      const sim = new SimCluster({ members, preemptDelayMs: 200, delayMs: 1, jitterMs: 3 });
      sim.start();
      const took = sim.runUntil(() => sim.masters().length === 1, 5000);
      assert.ok(took !== undefined && took <= 3 * 100 + 200 + 10, `took ${took} ms`);
      sim.run(5000);
      assert.equal(sim.masters().length, 1);
      assert.equal(sim.holderHistory.length, 2, 'no flapping: nobody, then the one master');
    });

    it(`${members} members: repeated master crashes and restarts keep one master`, () => {
      const sim = new SimCluster({ members, delayMs: 1, jitterMs: 3 });
      sim.start();
      sim.run(2000);
      for (let i = 0; i < 10; i += 1) {
        const [master] = sim.masters();
        assert.ok(master !== undefined, `round ${i}: a master`);
        sim.crash(master);
        const took = sim.runUntil(() => sim.masters().length === 1 && sim.masters()[0] !== master, 2000);
        assert.ok(took !== undefined && took <= 3 * 100 + 10, `round ${i}: failover took ${took} ms`);
        sim.start(master);
        sim.run(1000);
        assert.equal(sim.masters().length, 1);
      }
      assert.equal(sim.longestOverlap(), 0);
    });
  }
});
