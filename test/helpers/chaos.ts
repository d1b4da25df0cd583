/**
 * Seeded chaos schedules for the simulator: random faults of every class the election must
 * survive, with the safety invariants checked after every event (SimCluster.checkSafety) and
 * liveness checked whenever a majority has been up and connected long enough.
 */

import { isFaulted, isLearning } from '../../src/vrrp/state-machine';
import { claimTimeoutMs, maxDeadMs, restartQuietMs, VIP_RETRY_MS } from '../../src/vrrp/timing';
import { mulberry32, SimCluster, type SimOptions } from './sim-cluster';

export interface ChaosOptions {
  readonly members: number;
  readonly seed: number;
  /** Fault phases before the final heal. */
  readonly rounds?: number;
  readonly preempt?: boolean;
  readonly preemptDelayMs?: number;
  /**
   * A new cluster, built the way kubeadm builds one: the bootstrap member starts alone and must
   * serve; the others join one at a time while partitions, one-way cuts, crashes and loss come and go.
   */
  readonly bootstrap?: boolean;
  /** Overrides of the simulated network and hosts (delays, drift, timer lateness...). */
  readonly sim?: Partial<SimOptions>;
}

export interface ChaosResult {
  readonly sim: SimCluster;
  readonly faults: Record<string, number>;
}

/** How long a majority must have been up, running and connected without loss before a holder must exist. */
export function livenessBoundMs(sim: SimCluster): number {
  const s = { intervalMs: sim.interval, deadAfter: sim.opts.deadAfter ?? 3, maxDeadAfter: sim.opts.maxDeadAfter ?? 30 };
  return (
    restartQuietMs(s) + 2 * maxDeadMs(s) + claimTimeoutMs(s) + (sim.opts.netlinkFailRate ? VIP_RETRY_MS : 0) + 1000
  );
}

export function chaos(o: ChaosOptions): ChaosResult {
  const sim = new SimCluster({
    members: o.members,
    seed: o.seed,
    delayMs: 0.5,
    jitterMs: 4,
    drift: 0.0005,
    timerLatenessMs: 5,
    duplicateRate: 0.02,
    preempt: o.preempt ?? true,
    preemptDelayMs: o.preemptDelayMs ?? 0,
    priorities: Array.from({ length: o.members }, (_, i) => 100 + ((i * 37) % 3) * 10),
    bootstrap: o.bootstrap,
    ...o.sim,
  });
  const rnd = mulberry32(o.seed * 7919 + 13);
  const names = sim.names();
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;
  const faults: Record<string, number> = {};
  const did = (f: string) => {
    faults[f] = (faults[f] ?? 0) + 1;
  };
  const bound = livenessBoundMs(sim);

  if (o.bootstrap === true) bootstrap(sim, rnd, did, bound);
  else {
    sim.start();
    expectHolder(sim, bound, 'after the first start');
  }
  const rounds = o.rounds ?? 30;
  for (let round = 0; round < rounds; round += 1) {
    const up = names.filter((n) => sim.node(n).proc === 'up');
    const down = names.filter((n) => sim.node(n).proc === 'down');
    const r = rnd();
    if (r < 0.08 && up.length > 0) {
      sim.crash(pick(up), rnd() < 0.3);
      did('crash');
    } else if (r < 0.14 && up.length > 0) {
      sim.stop(pick(up));
      did('stop');
    } else if (r < 0.22 && down.length > 0) {
      sim.start(pick(down));
      did('start');
    } else if (r < 0.26 && up.length > 0) {
      // A crash-looping or restarted daemon: back within a grant's lifetime, with no memory of it.
      const victim = pick(up);
      sim.crash(victim);
      sim.run(20 + Math.floor(rnd() * 400));
      sim.start(victim);
      did('restart');
    } else if (r < 0.36 && up.length > 0) {
      sim.stall(pick(masterFirst(sim, up, rnd)), 50 + Math.floor(rnd() * 4000));
      did('stall');
    } else if (r < 0.46) {
      const shuffled = [...names].sort(() => rnd() - 0.5);
      const cut = 1 + Math.floor(rnd() * (names.length - 1));
      sim.heal();
      sim.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      did('partition');
    } else if (r < 0.56) {
      const a = pick(names);
      const b = pick(names.filter((n) => n !== a));
      sim.block(a, b);
      did('one-way');
    } else if (r < 0.66) {
      sim.dropRate = rnd() * 0.5;
      did('loss');
    } else if (r < 0.72) {
      const a = pick(names);
      const b = pick(names.filter((n) => n !== a));
      sim.setLoss(a, b, rnd() * 0.8);
      did('link-loss');
    } else if (r < 0.76) {
      sim.replay(pick(names), 20);
      did('replay');
    } else if (r < 0.82 && up.length > 0) {
      sim.reconfigure(pick(up), {
        priority: 90 + Math.floor(rnd() * 30),
        preempt: rnd() < 0.7,
        preemptDelayMs: rnd() < 0.5 ? 0 : 300,
      });
      did('reconfigure');
    } else if (r < 0.88 && up.length > 0) {
      sim.track(
        pick(up),
        'apiserver',
        rnd() < 0.5 ? { kind: 'ok' } : rnd() < 0.5 ? { kind: 'weight', weight: 30 } : { kind: 'fault' },
      );
      did('track');
    } else if (r < 0.92) {
      sim.netlinkFailRate = rnd() < 0.5 ? 0 : rnd() * 0.3;
      did('netlink');
    } else if (r < 0.95) {
      sim.reorder = !sim.reorder;
      did('reorder');
    } else {
      sim.heal();
      did('heal');
    }
    sim.run(100 + Math.floor(rnd() * 3000));
  }

  // Heal everything, start everyone: the cluster must settle on one holder, and stay settled.
  sim.heal();
  sim.netlinkFailRate = 0;
  for (const n of names) if (sim.node(n).proc === 'down') sim.start(n);
  for (const n of names) sim.track(n, 'apiserver', { kind: 'ok' });
  sim.run(500); // stalls end
  expectHolder(sim, bound, 'after healing');
  // Stalls end, faults clear, restarted members finish their quiet time, a preferred member may take
  // over (by handover): once every member runs settled (not FAULT, not learning) and the VIP has not moved for
  // 2 s (at most the liveness bound), nothing moves any more.
  const calm = () =>
    sim.activeHolders().length === 1 &&
    names.every((n) => {
      const node = sim.node(n);
      const now = sim.localTime(node);
      return (
        node.proc === 'up' && !isFaulted(node.state, now) && !isLearning(node.state, now) && node.state.role !== 'INIT'
      );
    });
  for (let waited = 0, still = 0, before = sim.acquisitions(); waited < bound && still < 2000; waited += 500) {
    sim.run(500);
    still = sim.acquisitions() === before && calm() ? still + 500 : 0;
    before = sim.acquisitions();
  }
  const settledAt = sim.now;
  const acquisitions = sim.acquisitions();
  sim.run(3000);
  if (sim.activeHolders().length !== 1)
    throw sim.failure(`no single holder 3 s after settling (holders ${sim.holders().join(',') || 'none'})`);
  if (sim.acquisitions() !== acquisitions)
    throw sim.failure(`the VIP moved after settling at t=${settledAt.toFixed(0)}`);
  return { sim, faults };
}

/** The first member alone (it must serve), then the others join one by one through faults. */
function bootstrap(sim: SimCluster, rnd: () => number, did: (f: string) => void, bound: number): void {
  const names = sim.names();
  const [first, ...rest] = names as [string, ...string[]];
  sim.start(first);
  expectHolder(sim, bound, 'with the bootstrap member alone');
  for (const joining of rest) {
    const r = rnd();
    const shuffled = [...names].sort(() => rnd() - 0.5);
    if (r < 0.3) {
      // Most often the dangerous one: the newcomers hear each other but not the first member.
      const cut = rnd() < 0.6 ? 1 : 1 + Math.floor(rnd() * (names.length - 1));
      sim.heal();
      sim.partition(rnd() < 0.6 ? [first] : shuffled.slice(0, cut), rnd() < 0.6 ? rest : shuffled.slice(cut));
      did('join-partition');
    } else if (r < 0.45) {
      sim.block(first, joining);
      did('join-one-way');
    } else if (r < 0.55) {
      sim.block(joining, first);
      did('join-one-way');
    } else if (r < 0.65) {
      sim.dropRate = rnd() * 0.4;
      did('join-loss');
    } else if (r < 0.72 && sim.node(first).proc === 'up') {
      sim.crash(first, rnd() < 0.5);
      sim.run(20 + Math.floor(rnd() * 1000));
      sim.start(first);
      did('join-restart-first');
    } else if (r < 0.8) {
      sim.heal();
    }
    sim.start(joining);
    did('join');
    sim.run(100 + Math.floor(rnd() * 3000));
  }
}

function expectHolder(sim: SimCluster, bound: number, when: string): void {
  const took = sim.runUntil(() => sim.activeHolders().length === 1, bound);
  if (took === undefined)
    throw sim.failure(
      `no holder within ${bound} ms ${when} (roles ${sim
        .names()
        .map((n) => `${n}:${sim.role(n)}`)
        .join(' ')})`,
    );
}

/** Stalls hit the master half the time: that is the case that matters. */
function masterFirst(sim: SimCluster, up: readonly string[], rnd: () => number): readonly string[] {
  const masters = sim.masters();
  return masters.length > 0 && rnd() < 0.5 ? masters : up;
}
