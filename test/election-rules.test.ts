/**
 * One test per election rule (docs/election.md), on the pure state machine with a virtual clock,
 * or on whole simulated clusters (helpers/sim-cluster.ts) where a rule is about several members.
 * Every simulated cluster checks the safety invariants after every event as it runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ElectionState, initialState, isBetter, leaseUntil, snapshot, step } from '../src/vrrp/state-machine';
import { adaptiveDeadMs, baseDeadMs, restartQuietMs, stallMs, VIP_RETRY_MS } from '../src/vrrp/timing';
import type { ElectionAction, ElectionEvent, ElectionSettings, Heartbeat } from '../src/vrrp/types';
import { sampleHeartbeat } from './helpers/heartbeat';
import { mulberry32 as mulberry, SimCluster } from './helpers/sim-cluster';

const members = [
  { name: 'n1', address: '10.0.0.1' },
  { name: 'n2', address: '10.0.0.2' },
  { name: 'n3', address: '10.0.0.3' },
];
const settings = (over: Partial<ElectionSettings> = {}): ElectionSettings => ({
  clusterId: 1,
  self: members[0]!,
  members,
  intervalMs: 100,
  deadAfter: 3,
  maxDeadAfter: 30,
  priority: 100,
  preempt: true,
  preemptDelayMs: 0,
  quorum: 'majority',
  vipLifetimeMs: 1000,
  bootstrap: 'n1',
  formed: true,
  observer: false,
  ...over,
});
const EPOCH = 5_000;

/** Drives one machine, collecting its actions. */
class One {
  state: ElectionState;
  actions: ElectionAction[] = [];
  constructor(s: ElectionSettings) {
    this.state = initialState(s);
  }
  feed(event: ElectionEvent): ElectionAction[] {
    this.lastNow = event.now;
    const r = step(this.state, event);
    this.state = r.state;
    this.actions.push(...r.actions);
    return [...r.actions];
  }
  start(now = 0): ElectionAction[] {
    return this.feed({ type: 'start', now, epoch: EPOCH });
  }
  /** Feeds the ticks the machine asks for, up to `to` (jumping the clock would look like a stall). */
  advance(to: number): ElectionAction[] {
    const out: ElectionAction[] = [];
    for (let i = 0; i < 100_000; i += 1) {
      const sched = this.actions.filter((a) => a.type === 'schedule').pop();
      if (sched?.type !== 'schedule' || sched.at > to) break;
      out.push(...this.feed({ type: 'tick', now: Math.max(sched.at, this.now) }));
    }
    out.push(...this.feed({ type: 'tick', now: to }));
    return out;
  }
  get now(): number {
    return this.actions.length === 0 ? 0 : this.lastNow;
  }
  lastNow = 0;
  /** A heartbeat from `sender` that echoes our current epoch unless told otherwise. */
  hear(now: number, sender: string, over: Partial<Heartbeat> = {}): ElectionAction[] {
    return this.feed({ type: 'heartbeat', now, heartbeat: hb(sender, this.state, over) });
  }
  sends(list = this.actions) {
    return list.filter((a): a is Extract<ElectionAction, { type: 'send' }> => a.type === 'send');
  }
  lastSent(): Heartbeat {
    const s = this.sends();
    return s[s.length - 1]!.heartbeat;
  }
}

let seqs = 0;
function hb(sender: string, us: ElectionState, over: Partial<Heartbeat> = {}): Heartbeat {
  seqs += 1;
  return sampleHeartbeat({
    sender,
    epoch: 7,
    seq: seqs,
    digest: us.digest,
    echoes: { [us.settings.self.name]: { epoch: us.epoch, seq: us.seq, ts: 0 } },
    ...over,
  });
}

/** A started 3-member simulation with one master, settled. */
function settled(opts: Partial<ConstructorParameters<typeof SimCluster>[0]> = {}): SimCluster {
  const sim = new SimCluster({ members: 3, delayMs: 0.5, jitterMs: 1, ...opts });
  sim.start();
  const took = sim.runUntil(() => sim.activeHolders().length === 1, 5000);
  assert.ok(took !== undefined, 'a master within 5 s');
  sim.run(1500);
  return sim;
}
const master = (sim: SimCluster): string => {
  const [m] = sim.masters();
  assert.ok(m !== undefined, 'a master');
  return m;
};
const grantOf = (m: One) => m.state.grant;
const actionsOf = (sim: SimCluster, node: string, type: ElectionAction['type'], since = 0) =>
  sim.log.filter((e) => e.node === node && e.at >= since && e.action.type === type);

describe('heartbeats and liveness', () => {
  it('sends a heartbeat at start and then once per interval', () => {
    const m = new One(settings());
    assert.equal(m.sends(m.start(0)).length, 1);
    assert.equal(m.sends(m.feed({ type: 'tick', now: 50 })).length, 0, 'not before the interval');
    assert.equal(m.sends(m.feed({ type: 'tick', now: 100 })).length, 1);
  });

  it('counts a peer only while its heartbeats echo our current epoch (queued, replayed or pre-restart ones do not)', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(10, 'n2', { echoes: { n1: { epoch: EPOCH - 1, seq: 9, ts: 0 } } });
    assert.equal(snapshot(m.state, 20).peers.find((p) => p.name === 'n2')?.alive, false, 'an older epoch of ours');
    m.hear(30, 'n2');
    assert.equal(snapshot(m.state, 40).peers.find((p) => p.name === 'n2')?.alive, true);
  });

  it('a peer is dead after deadAfter missing heartbeats plus a quarter interval (not deadAfter - 1)', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(10, 'n2');
    assert.equal(baseDeadMs(settings()), 325);
    assert.equal(snapshot(m.state, 10 + 324).peers.find((p) => p.name === 'n2')?.alive, true);
    assert.equal(snapshot(m.state, 10 + 325).peers.find((p) => p.name === 'n2')?.alive, false);
  });

  it('a lossy link stretches the dead interval, up to maxDeadAfter', () => {
    const s = settings();
    assert.equal(adaptiveDeadMs(s, 100, 0), 325);
    const at10 = adaptiveDeadMs(s, 100, 0.1);
    const at30 = adaptiveDeadMs(s, 100, 0.3);
    assert.ok(at10 > 325 && at30 > at10, `${at10} ${at30}`);
    assert.equal(adaptiveDeadMs(s, 100, 0.9), 30 * 100 + 25);
    // Heard with gaps in its sequence numbers, a peer gets a longer dead interval.
    const m = new One(s);
    m.start(0);
    for (let i = 0; i < 30; i += 1) m.hear(i * 100, 'n2', { seq: 1000 + i * 2 });
    const dead = snapshot(m.state, 3000).peers.find((p) => p.name === 'n2')!.deadMs;
    assert.ok(dead > 1000, `half the messages lost: dead after ${dead} ms`);
  });

  it('asks to be woken when a peer would die, not only at the next heartbeat', () => {
    const m = new One(settings({ intervalMs: 1000 }));
    m.start(0);
    m.feed({ type: 'tick', now: 3300 });
    const acts = m.hear(3310, 'n2', { intervalMs: 100 });
    const sched = acts.filter((a) => a.type === 'schedule').pop();
    assert.ok(sched?.type === 'schedule');
    assert.equal(sched.at, 3310 + 325, 'n2 times out after its own dead interval, before our next heartbeat');
  });

  it('answers at once a peer that has not heard our current epoch', () => {
    const m = new One(settings());
    m.start(0);
    m.feed({ type: 'tick', now: 1 });
    const acts = m.hear(20, 'n2', { echoes: {} });
    assert.equal(m.sends(acts).length, 1);
  });
});

describe('grants and leases', () => {
  it('a follower acknowledges only its leader, and says how long it promised to', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(1, 'n2');
    m.hear(2, 'n3', { role: 'MASTER', term: 4, leader: 'n3', leaderTerm: 4, ts: 777 });
    const beat = m.lastSent();
    assert.equal(beat.leader, 'n3');
    assert.equal(beat.leaderTerm, 4);
    assert.equal(beat.grantMs, 325, 'a dead interval from the arrival of the acknowledged heartbeat');
    assert.deepEqual(beat.echoes.n3, { epoch: 7, seq: seqs, ts: 777 });
    assert.equal(beat.vote, 'n3');
  });

  it('a master holds its lease only while a majority acknowledged a recent heartbeat', () => {
    const m = new One(settings({ priority: 200 }));
    m.start(0);
    m.hear(1, 'n2');
    m.hear(2, 'n3');
    assert.equal(m.state.role, 'BACKUP');
    // n2 and n3 vote for n1 (their echoes answer n1's current state): it claims.
    m.hear(5, 'n2', { vote: 'n1', echoes: { n1: { epoch: EPOCH, seq: m.state.seq, ts: 5 } } });
    assert.equal(m.state.role, 'CANDIDATE');
    const claimTs = m.lastSent().ts;
    m.hear(7, 'n2', {
      leader: 'n1',
      leaderTerm: m.state.term,
      grantMs: 325,
      echoes: { n1: { epoch: EPOCH, seq: m.state.seq, ts: claimTs } },
    });
    assert.equal(m.state.role, 'MASTER');
    assert.ok(m.actions.some((a) => a.type === 'acquireVip'));
    const until = leaseUntil(m.state);
    assert.ok(Math.abs(until - (claimTs + 325 * (1 - 0.001) - stallMs(settings()))) < 1e-9, `lease until ${until}`);
    // It still hears n2 (not acknowledging anything new) and n3: the lease lapses anyway.
    m.advance(until - 10);
    m.hear(until - 10, 'n3');
    assert.equal(m.state.role, 'MASTER');
    const acts = m.advance(until);
    assert.equal(m.state.role, 'BACKUP');
    assert.ok(
      acts.some((a) => a.type === 'releaseVip'),
      'releases when the lease lapses',
    );
    assert.ok(acts.some((a) => a.type === 'transition' && a.reason === 'lease lapsed'));
  });

  it('grants one leader per term', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(1, 'n2');
    m.hear(2, 'n3', { role: 'CANDIDATE', term: 3, leader: 'n3', leaderTerm: 3 });
    assert.equal(grantOf(m)?.leader, 'n3');
    // n3 gives up (its followers are free), and n2 claims the same term: refused.
    m.hear(3, 'n3', { role: 'BACKUP', term: 3 });
    assert.equal(m.state.grant, undefined);
    m.hear(4, 'n2', { role: 'CANDIDATE', term: 3, leader: 'n2', leaderTerm: 3 });
    assert.equal(m.state.grant, undefined, 'no second leader in term 3');
    m.hear(5, 'n2', { role: 'CANDIDATE', term: 4, leader: 'n2', leaderTerm: 4 });
    assert.equal(grantOf(m)?.leader, 'n2');
  });

  it('a follower keeps its promise: a claim of a higher term waits until the grant has run out', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(0, 'n2');
    m.hear(1, 'n3', { role: 'MASTER', term: 2, leader: 'n3', leaderTerm: 2 });
    m.hear(2, 'n2', { role: 'CANDIDATE', term: 3, leader: 'n2', leaderTerm: 3 });
    assert.equal(m.state.grant?.leader, 'n3', 'still n3');
    assert.equal(m.state.term, 3, 'the term is adopted');
    m.advance(50);
    m.hear(50, 'n3', { role: 'MASTER', term: 2, leader: 'n3', leaderTerm: 2 });
    assert.equal(m.state.grant?.until, 1 + 325, 'a leader of a lower term is not renewed');
    m.advance(1 + 325);
    m.hear(1 + 325, 'n2', { role: 'CANDIDATE', term: 3, leader: 'n2', leaderTerm: 3 });
    assert.equal(grantOf(m)?.leader, 'n2');
  });

  it('a master that sees a higher term steps down at once, whatever its priority', () => {
    const sim = settled({ priorities: [100, 100, 150] });
    const m = master(sim);
    assert.equal(m, 'n3');
    const other = 'n1';
    // Make n1 claim a higher term (as after a partition it was on the majority side of).
    const n = sim.node(other);
    n.state = { ...n.state, term: n.state.term + 5 };
    sim.run(300);
    assert.ok(
      actionsOf(sim, m, 'transition').some((e) => e.action.type === 'transition' && e.action.reason === 'higher term'),
    );
  });
});

describe('startup and restarts', () => {
  it('goes to BACKUP as soon as every peer echoes its epoch, or at once on hearing a master', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(5, 'n2');
    assert.equal(m.state.role, 'INIT');
    m.hear(6, 'n3');
    assert.equal(m.state.role, 'BACKUP');
    const k = new One(settings());
    k.start(0);
    k.hear(5, 'n3', { role: 'MASTER', term: 1, leader: 'n3', leaderTerm: 1 });
    assert.equal(k.state.role, 'BACKUP');
  });

  it('a restarted member grants nothing until every peer echoes its epoch, or its old grants have run out', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(5, 'n3', { role: 'MASTER', term: 1, leader: 'n3', leaderTerm: 1 });
    assert.equal(m.state.grant, undefined, 'n2 has not heard us: a grant of our previous run may still be counted');
    assert.equal(m.lastSent().learning, true);
    m.advance(restartQuietMs(settings()));
    m.hear(restartQuietMs(settings()) + 1, 'n3', { role: 'MASTER', term: 1, leader: 'n3', leaderTerm: 1 });
    assert.equal(grantOf(m)?.leader, 'n3', 'after the quiet time');
  });

  it('a member that restarts within its own grant never gives two leases (one-way cut, partition)', () => {
    let ran = 0;
    for (let seed = 1; seed <= 20; seed += 1) {
      const sim = settled({ seed, delayMs: 0.5, jitterMs: 1 });
      const m = master(sim);
      const [x, c] = sim.names().filter((n) => n !== m) as [string, string];
      sim.partition([m], [c]);
      sim.run(600);
      if (sim.masters()[0] !== m) continue;
      sim.block(x, m);
      sim.run(seed * 5);
      sim.crash(x);
      sim.run(1);
      sim.start(x);
      sim.run(3000); // the invariants are checked at every event
      ran += 1;
    }
    assert.ok(ran >= 10, `the scenario ran ${ran} times`);
  });

  it('replayed heartbeats of a dead peer do not block a restarted member', () => {
    const sim = settled({ seed: 3 });
    const m = master(sim);
    sim.crash(m, true);
    const [a, b] = sim.names().filter((n) => n !== m) as [string, string];
    sim.runUntil(() => sim.activeHolders().length === 1, 3000);
    sim.crash(a);
    sim.crash(b);
    sim.run(500);
    sim.start(a, b);
    // The dead member never echoes their new epochs: they wait out the restart quiet time (3.1 s).
    for (let i = 0; i < 40; i += 1) {
      sim.replay(a, 20);
      sim.replay(b, 20);
      sim.run(100);
    }
    assert.equal(sim.activeHolders().length, 1, 'the two live members elected one of them');
  });

  it('a member whose wall clock stepped back across a restart (a lower epoch) is counted again within a round trip', () => {
    const sim = settled({ priorities: [100, 100, 200] });
    sim.crash('n3', true);
    sim.runUntil(() => sim.activeHolders().length === 1, 2000);
    sim.run(500);
    sim.startClockBack('n3');
    sim.run(1000);
    for (const n of ['n1', 'n2']) {
      const node = sim.node(n);
      assert.equal(
        snapshot(node.state, sim.localTime(node)).peers.find((p) => p.name === 'n3')?.alive,
        true,
        `${n} counts n3`,
      );
    }
    sim.run(2000);
    assert.deepEqual(sim.masters(), ['n3'], 'and, the best, it takes the VIP back by handover');
  });

  it('members with different timing settings do not count each other (the lease math needs one timing)', () => {
    // The reviewer's schedule: n3 at 1 s intervals, the others at 20 ms; n3 master, partitioned
    // from n2, its lease resting on n1; n1 restarts at once. With one timing per counted set, n3
    // is never counted, never master, and nothing gives two leases.
    const sim = new SimCluster({
      members: 3,
      intervalMs: 20,
      delayMs: 0.5,
      jitterMs: 0.5,
      priorities: [100, 150, 200],
    });
    sim.node('n3').settings = { ...sim.node('n3').settings, intervalMs: 1000 };
    sim.start();
    sim.run(3000);
    assert.notDeepEqual(sim.masters(), ['n3']);
    sim.partition(['n2'], ['n3']);
    sim.run(5000);
    sim.block('n1', 'n3');
    sim.crash('n1');
    sim.run(1);
    sim.start('n1');
    sim.run(4000); // the invariants are checked at every event
  });

  it('starts a new epoch before the sequence number wraps', () => {
    const m = new One(settings());
    m.start(0);
    m.state = { ...m.state, seq: 0xffffffff - 1 };
    m.feed({ type: 'tick', now: 100 });
    m.feed({ type: 'tick', now: 200 });
    const beat = m.lastSent();
    assert.equal(beat.epoch, EPOCH + 1);
    assert.ok(beat.seq >= 1 && beat.seq < 10);
  });
});

describe('who is master', () => {
  it('the highest priority wins', () => {
    const sim = settled({ priorities: [100, 200, 150] });
    assert.deepEqual(sim.masters(), ['n2']);
  });

  it('equal priorities: the higher address wins', () => {
    assert.deepEqual(settled().masters(), ['n3']);
  });

  it('equal priorities on IPv6: the higher address as a 128-bit number, whatever the text', () => {
    assert.deepEqual(settled({ ipv6: true }).masters(), ['n3']);
    const c = (address: string) => ({ name: address, address, priority: 100 });
    // Text order would get each of these wrong: "::" expands, groups are hexadecimal numbers.
    assert.ok(isBetter(c('fd00::a'), c('fd00::9')));
    assert.ok(isBetter(c('fd00::1:0'), c('fd00::ffff')));
    assert.ok(isBetter(c('fd00::'), c('2001:db8::ffff')));
    assert.ok(isBetter(c('fd00:0:0:1::'), c('fd00::1')));
    assert.ok(!isBetter(c('fd00::1'), c('fd00::1')));
    assert.ok(isBetter(c('10.0.0.10'), c('10.0.0.9')), 'IPv4 as before');
  });

  it('a master that dies is replaced by the best remaining member after the dead interval', () => {
    const sim = settled({ priorities: [100, 150, 200] });
    sim.crash('n3', true);
    const took = sim.runUntil(() => sim.activeHolders().length === 1, 2000);
    assert.deepEqual(sim.masters(), ['n2']);
    assert.ok(took !== undefined && took <= 325 + 50, `took ${took} ms`);
  });
});

describe('preemption (make-before-break)', () => {
  /** The successor added the VIP before the old master removed it. */
  function madeBeforeBreak(sim: SimCluster, from: string, to: string, since: number): void {
    const acquired = actionsOf(sim, to, 'acquireVip', since)[0]?.at;
    const released = actionsOf(sim, from, 'releaseVip', since)[0]?.at;
    assert.ok(acquired !== undefined && released !== undefined, `${to} acquired, ${from} released`);
    assert.ok(acquired <= released, `acquired ${acquired} before released ${released}`);
    assert.ok(actionsOf(sim, from, 'quiesceVip', since).length > 0, 'the old master went quiet first');
  }

  it('preempt on: a member with a higher priority takes over when it joins, by handover', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 100, 200], delayMs: 0.5, jitterMs: 1 });
    sim.start('n1', 'n2');
    sim.runUntil(() => sim.activeHolders().length === 1, 5000);
    sim.run(500);
    const old = master(sim);
    const t = sim.now;
    sim.start('n3');
    sim.run(4000);
    assert.deepEqual(sim.masters(), ['n3']);
    madeBeforeBreak(sim, old, 'n3', t);
  });

  it('preempt on with a delay: the better member waits preemptDelay first', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 100, 200], preemptDelayMs: 1000, delayMs: 0.5 });
    sim.start('n1', 'n2');
    sim.runUntil(() => sim.activeHolders().length === 1, 5000);
    sim.start('n3');
    sim.run(800);
    assert.notDeepEqual(sim.masters(), ['n3'], 'not before the delay');
    sim.run(1500);
    assert.deepEqual(sim.masters(), ['n3']);
  });

  it('equal priority never preempts (a restarted node does not pull the VIP back)', () => {
    const sim = settled();
    const m = master(sim);
    sim.crash(m, true);
    sim.runUntil(() => sim.activeHolders().length === 1, 2000);
    const next = master(sim);
    sim.start(m);
    sim.run(5000);
    assert.deepEqual(sim.masters(), [next]);
  });

  it('preempt off: a better member that joins does not take over', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 100, 200], preempt: false, delayMs: 0.5 });
    sim.start('n1', 'n2');
    sim.runUntil(() => sim.activeHolders().length === 1, 5000);
    const m = master(sim);
    sim.start('n3');
    sim.run(5000);
    assert.deepEqual(sim.masters(), [m]);
  });

  it('a master whose priority drops (a tracked check) hands over at once, whatever preempt says, and make-before-break', () => {
    const sim = settled({ priorities: [100, 150, 200], preempt: false });
    const t = sim.now;
    sim.track('n3', 'apiserver', { kind: 'weight', weight: 100 });
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    madeBeforeBreak(sim, 'n3', 'n2', t);
  });

  it('a reload that lowers the priority hands over make-before-break; a higher one preempts back', () => {
    const sim = settled({ priorities: [100, 150, 200] });
    const t = sim.now;
    sim.reconfigure('n3', { priority: 120, preempt: true, preemptDelayMs: 0 });
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    madeBeforeBreak(sim, 'n3', 'n2', t);
    const t2 = sim.now;
    sim.reconfigure('n3', { priority: 250, preempt: true, preemptDelayMs: 0 });
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    madeBeforeBreak(sim, 'n2', 'n3', t2);
  });
});

describe('quorum', () => {
  it('majority: an isolated master releases before anyone else may take over; the majority elects another', () => {
    const sim = settled();
    const m = master(sim);
    const rest = sim.names().filter((n) => n !== m);
    const t = sim.now;
    sim.partition([m], rest);
    sim.run(2000);
    assert.equal(sim.masters().length, 1);
    assert.notEqual(master(sim), m);
    assert.equal(sim.longestOverlap(), 0, 'never two holders');
    const released = actionsOf(sim, m, 'releaseVip', t)[0]!.at;
    const acquired = actionsOf(sim, master(sim), 'acquireVip', t)[0]!.at;
    assert.ok(released < acquired, `released ${released} before the other acquired ${acquired}`);
  });

  it('majority: a member alone never takes the role', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start('n1');
    sim.run(10_000);
    assert.deepEqual(sim.masters(), []);
  });

  it('none (keepalived-like): an isolated member becomes master; on heal the lower term steps down', () => {
    const sim = new SimCluster({ members: 2, quorum: 'none', delayMs: 0.5 });
    sim.start();
    sim.runUntil(() => sim.activeHolders().length === 1, 5000);
    sim.partition(['n1'], ['n2']);
    sim.run(5000);
    assert.equal(sim.masters().length, 2, 'both sides hold it, as keepalived would');
    sim.heal();
    sim.run(1000);
    assert.equal(sim.masters().length, 1);
  });
});

describe('graceful stop', () => {
  it('the stopping master hands over make-before-break and reports stopped once the successor is MASTER', () => {
    const sim = settled();
    const m = master(sim);
    const t = sim.now;
    sim.stop(m);
    sim.run(50);
    const next = master(sim);
    assert.notEqual(next, m);
    assert.equal(sim.node(m).proc, 'down', 'stopped');
    const acquired = actionsOf(sim, next, 'acquireVip', t)[0]!.at;
    const released = actionsOf(sim, m, 'releaseVip', t)[0]!.at;
    assert.ok(
      acquired <= released && released - t < 50,
      `acquired ${acquired - t} released ${released - t} ms after the stop`,
    );
  });

  it('a stopping backup does not disturb the master', () => {
    const sim = settled();
    const m = master(sim);
    const backup = sim.names().find((n) => n !== m)!;
    sim.stop(backup);
    sim.run(3000);
    assert.deepEqual(sim.masters(), [m]);
    assert.equal(sim.holderHistory.length, 2);
  });

  it('if the resign is lost, the dead interval still brings a new master', () => {
    const sim = settled();
    const m = master(sim);
    for (const n of sim.names()) if (n !== m) sim.block(m, n);
    sim.stop(m);
    sim.run(400);
    const took = sim.runUntil(() => sim.activeHolders().length === 1 && sim.masters()[0] !== m, 3000);
    assert.ok(took !== undefined, 'a new master');
  });

  it('a stopping master with nobody to hand over to releases at once', () => {
    const sim = new SimCluster({ members: 1, quorum: 'none' });
    sim.start();
    sim.run(1000);
    sim.stop('n1');
    assert.deepEqual(sim.holders(), []);
    assert.equal(sim.node('n1').proc, 'down');
  });
});

describe('faults and effects', () => {
  it('a fault makes the master FAULT and release; clearing it returns to BACKUP', () => {
    const sim = settled();
    const m = master(sim);
    sim.track(m, 'link:eth0', { kind: 'fault' });
    assert.equal(sim.role(m), 'FAULT');
    assert.ok(!sim.holders().includes(m));
    sim.run(1000);
    assert.equal(sim.activeHolders().length, 1);
    sim.track(m, 'link:eth0', { kind: 'ok' });
    sim.run(500);
    assert.equal(sim.role(m), 'BACKUP');
  });

  it('a failed VIP add makes the member FAULT ("vip failed"), another takes over, and it is eligible again later', () => {
    const sim = settled({ priorities: [100, 100, 200] });
    assert.equal(master(sim), 'n3');
    sim.hostNetlinkFailRate.set('n3', 1);
    sim.run(300); // the next renewal fails
    sim.hostNetlinkFailRate.delete('n3');
    assert.equal(sim.role('n3'), 'FAULT');
    assert.ok(
      sim.log.some((e) => e.node === 'n3' && e.action.type === 'transition' && e.action.reason === 'vip failed'),
    );
    sim.run(1000);
    assert.equal(sim.activeHolders().length, 1);
    assert.notEqual(master(sim), 'n3');
    sim.run(VIP_RETRY_MS + 2000);
    assert.ok(
      sim.log.some((e) => e.node === 'n3' && e.action.type === 'transition' && e.action.reason === 'fault cleared'),
    );
    assert.deepEqual(sim.masters(), ['n3'], 'the best member takes it back (preempt, by handover)');
  });

  it('a failed VIP removal leaves a copy only until its lifetime ends', () => {
    const sim = settled();
    const m = master(sim);
    sim.hostNetlinkFailRate.set(m, 1);
    sim.track(m, 'link:eth0', { kind: 'fault' });
    sim.run(1400);
    assert.ok(!sim.holders().includes(m), 'the kernel lifetime removed it');
  });

  it('a FAULT member is never chosen, even with the best priority', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 100, 250] });
    sim.start();
    sim.track('n3', 'apiserver', { kind: 'fault' });
    sim.run(3000);
    assert.equal(sim.masters().length, 1);
    assert.notEqual(master(sim), 'n3');
  });
});

describe('stalls (SIGSTOP, a VM pause, a long GC)', () => {
  it('a master stalled 3 s: one failover, the member that took over keeps the VIP, the resumed one re-learns', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const sim = settled({ seed });
      const m = master(sim);
      const before = sim.acquisitions();
      sim.stall(m, 3000);
      sim.run(1500);
      const next = master(sim);
      assert.notEqual(next, m);
      assert.ok(!sim.holders().includes(m), 'its VIP expired in the kernel while it was stopped');
      sim.run(5000);
      assert.deepEqual(sim.masters(), [next], `seed ${seed}: the VIP stays where it went`);
      assert.equal(sim.acquisitions() - before, 1, `seed ${seed}: one failover`);
      assert.ok(
        sim.log.some((e) => e.node === m && e.action.type === 'stalled'),
        'the resumed member noticed its stall',
      );
      assert.ok(sim.longestOverlap() <= 1000 + 400, `the stalled copy lasted ${sim.longestOverlap()} ms`);
    }
  });

  it('a stall starts a new epoch; heartbeats queued meanwhile count for nothing', () => {
    const m = new One(settings());
    m.start(0);
    m.hear(1, 'n2');
    m.hear(2, 'n3');
    m.feed({ type: 'tick', now: 100 });
    const acts = m.hear(3000, 'n2'); // a queued heartbeat read on resume
    assert.ok(acts.some((a) => a.type === 'stalled'));
    assert.equal(m.state.epoch, EPOCH + 1);
    assert.equal(snapshot(m.state, 3000).quorum.alive, 1, 'nobody counts until they echo the new epoch');
    assert.equal(snapshot(m.state, 3000).learning, true);
  });

  it('a wake-up a little late is not a stall', () => {
    const m = new One(settings());
    m.start(0);
    const acts = m.feed({ type: 'tick', now: 100 + stallMs(settings()) - 1 });
    assert.ok(!acts.some((a) => a.type === 'stalled'));
  });
});

describe('asymmetric faults', () => {
  for (const [what, cut] of [
    ['outbound', (sim: SimCluster, m: string, o: string) => sim.block(m, o)],
    ['inbound', (sim: SimCluster, m: string, o: string) => sim.block(o, m)],
  ] as const) {
    it(`the master's ${what} heartbeats are lost: it releases first, another takes over, for good`, () => {
      const sim = settled();
      const m = master(sim);
      for (const o of sim.names()) if (o !== m) cut(sim, m, o);
      sim.run(10_000);
      assert.equal(sim.masters().length, 1);
      assert.notEqual(master(sim), m);
      assert.equal(sim.longestOverlap(), 0);
      assert.equal(sim.acquisitions(), 2, 'one election, one failover');
    });
  }

  it('the link between two members is cut while a third hears both: one master', () => {
    const sim = settled();
    sim.partition(['n1'], ['n3']);
    sim.run(5000);
    assert.equal(sim.masters().length, 1);
    assert.equal(sim.longestOverlap(), 0);
  });

  it('the master loses its link to one backup only: it stays master', () => {
    const sim = settled();
    const m = master(sim);
    const b = sim.names().find((n) => n !== m)!;
    sim.partition([m], [b]);
    sim.run(5000);
    assert.deepEqual(sim.masters(), [m]);
  });
});

describe('loss', () => {
  it('30 % random loss for 10 minutes: the VIP never moves', () => {
    for (const seed of [1, 2, 3]) {
      const sim = settled({ seed, check: false });
      const before = sim.acquisitions();
      sim.dropRate = 0.3;
      sim.run(600_000);
      assert.equal(sim.acquisitions() - before, 0, `seed ${seed}`);
    }
  });

  it('with no loss, a crash is seen and the VIP moves within a dead interval', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const sim = settled({ seed });
      sim.crash(master(sim), true);
      const took = sim.runUntil(() => sim.activeHolders().length === 1, 2000);
      assert.ok(took !== undefined && took <= 325 + 20, `seed ${seed}: ${took} ms`);
    }
  });
});

describe('membership', () => {
  it('a peer with another member list is not counted', () => {
    const sim = new SimCluster({ members: 3 });
    sim.setMembers('n3', [...sim.names().map((n) => sim.node(n).member), { name: 'n4', address: '10.0.0.4' }]);
    sim.start();
    // n3 never echoes the others' epochs: they wait out the restart quiet time (3.1 s) first.
    sim.run(5000);
    assert.equal(sim.masters().length, 1);
    assert.notEqual(master(sim), 'n3');
    assert.equal(snapshot(sim.node('n1').state, sim.localTime(sim.node('n1'))).quorum.alive, 2);
  });

  it('a rolling shrink 5 -> 4 -> 3, one member and one node at a time: never two leases', () => {
    for (const seed of [1, 2, 3]) {
      const sim = new SimCluster({ members: 5, seed, delayMs: 0.5, jitterMs: 1 });
      sim.start();
      sim.run(2000);
      for (const gone of ['n5', 'n4']) {
        sim.crash(gone, true);
        const keep = sim.names().filter((n) => sim.node(n).proc !== 'down');
        const list = keep.map((n) => sim.node(n).member);
        for (const n of keep) {
          sim.setMembers(n, list);
          sim.stop(n);
          sim.run(200);
          sim.start(n);
          sim.run(1500); // the invariants hold at every event
        }
      }
      sim.run(5000);
      assert.equal(sim.activeHolders().length, 1, `seed ${seed}`);
    }
  });
});

describe('bootstrap: a new cluster, built one node at a time (docs/election.md, "Bootstrap")', () => {
  const formedAll = (sim: SimCluster) => sim.names().every((n) => sim.node(n).state.formed && sim.node(n).formedOnDisk);

  it('the first member alone takes the VIP; a member joining alone does not', () => {
    const sim = new SimCluster({ members: 3, bootstrap: true, delayMs: 0.5 });
    sim.start('n2');
    sim.run(10_000);
    assert.deepEqual(sim.holders(), [], 'n2 is not the bootstrap member: it waits for the cluster to form');
    sim.crash('n2');
    sim.start('n1');
    const took = sim.runUntil(() => sim.activeHolders().length === 1, 10_000);
    assert.ok(took !== undefined, 'the bootstrap member serves alone (kubeadm init needs the VIP)');
    assert.deepEqual(sim.activeHolders(), ['n1']);
    assert.equal(sim.node('n1').state.formed, false, 'alone, the cluster has not formed');
  });

  it('the cluster forms when the second member joins, without moving the VIP; from then on nobody holds it alone', () => {
    const sim = new SimCluster({ members: 3, bootstrap: true, delayMs: 0.5, priorities: [100, 100, 100] });
    sim.start('n1');
    sim.runUntil(() => sim.activeHolders().length === 1, 10_000);
    const gained = sim.acquisitions();
    sim.start('n2');
    assert.ok(
      sim.runUntil(() => sim.node('n1').state.formed && sim.node('n2').state.formed, 5000) !== undefined,
      'formed',
    );
    assert.ok(sim.node('n1').formedOnDisk && sim.node('n2').formedOnDisk, 'recorded on both');
    assert.ok(sim.log.some((l) => l.node === 'n1' && l.action.type === 'formed' && l.action.via === 'n1'));
    assert.ok(sim.log.some((l) => l.node === 'n2' && l.action.type === 'formed' && l.action.via === 'n1'));
    sim.start('n3');
    sim.run(3000);
    assert.ok(formedAll(sim), 'the third learns it from the others');
    assert.equal(sim.acquisitions(), gained, 'the VIP never moved while the cluster formed');
    // Now the first member, cut off, loses the VIP; the other two keep serving.
    sim.partition(['n1'], ['n2', 'n3']);
    sim.run(5000);
    assert.equal(sim.activeHolders().length, 1);
    assert.notEqual(sim.activeHolders()[0], 'n1');
    // Restarted while still cut off, it remembers: it does not bootstrap again.
    sim.crash('n1', true);
    sim.start('n1');
    sim.run(10_000);
    assert.equal(sim.node('n1').state.role === 'MASTER', false, 'the restarted first member never holds it alone');
    assert.equal(sim.activeHolders().length, 1);
  });

  it('newcomers that hear each other but not the first member never take the VIP', () => {
    const sim = new SimCluster({ members: 3, bootstrap: true, delayMs: 0.5, priorities: [100, 200, 200] });
    sim.start('n1');
    sim.runUntil(() => sim.activeHolders().length === 1, 10_000);
    sim.partition(['n1'], ['n2', 'n3']);
    sim.start('n2', 'n3');
    sim.run(20_000);
    assert.deepEqual(sim.activeHolders(), ['n1'], 'only the bootstrap member holds it');
    assert.ok(!sim.node('n2').state.formed && !sim.node('n3').state.formed);
    sim.heal();
    sim.run(5000);
    assert.ok(formedAll(sim));
    assert.equal(sim.activeHolders().length, 1);
    assert.notEqual(sim.activeHolders()[0], 'n1', 'after forming, the higher priority takes over (by handover)');
  });

  it('a cluster that formed under another version: a peer saying it formed is enough', () => {
    const sim = new SimCluster({ members: 3, bootstrap: true, delayMs: 0.5 });
    sim.node('n2').formedOnDisk = true;
    sim.start('n2', 'n3');
    sim.run(5000);
    assert.equal(sim.activeHolders().length, 1, 'n2 (formed) and n3 (told by n2) make a majority');
    assert.ok(sim.node('n3').state.formed);
  });
});

describe('bootstrap: members whose configs name different bootstrap members (peers listed in another order)', () => {
  const formedAll = (sim: SimCluster) => sim.names().every((n) => sim.node(n).state.formed);
  const views = (sim: SimCluster, node: string) =>
    sim.log.flatMap((l) => (l.node === node && l.action.type === 'bootstrapView' ? [l.action] : []));
  const disputedBy = (sim: SimCluster, node: string) => snapshot(sim.node(node).state, 0).bootstrapDisputedBy;

  it('a member that names itself joins the first member: never two holders, the cluster forms, one holder', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const sim = new SimCluster({ members: 3, seed, bootstrap: true, bootstrapOf: { n2: 'n2' }, jitterMs: 2 });
      sim.start('n1');
      assert.ok(sim.runUntil(() => sim.activeHolders().length === 1, 10_000) !== undefined, `seed ${seed}`);
      sim.start('n2'); // the simulator checks the invariants at every event from here on
      const formed = sim.runUntil(() => sim.node('n1').state.formed && sim.node('n2').state.formed, 5000);
      assert.ok(formed !== undefined, `seed ${seed}: formed`);
      // n1 gives the VIP up at n2's first heartbeat (n2 might hold it alone too, for all n1 knows),
      // and takes it back with a majority once n2 grants: after n2's restart quiet period.
      const back = sim.runUntil(() => sim.activeHolders().length === 1, restartQuietMs(sim.node('n2').settings) + 2000);
      assert.ok(back !== undefined, `seed ${seed}: one holder again`);
      sim.run(3000);
      assert.equal(sim.activeHolders().length, 1, `seed ${seed}: one holder`);
      assert.deepEqual(disputedBy(sim, 'n1'), ['n2']);
      assert.deepEqual(disputedBy(sim, 'n2'), ['n1']);
      assert.deepEqual(
        views(sim, 'n1').map((v) => [v.peer, v.says, v.agrees, v.bootstrap]),
        [['n2', 'self', false, 'n1']],
        'n1 reports it once',
      );
      assert.deepEqual(
        views(sim, 'n2').map((v) => [v.peer, v.says, v.agrees, v.bootstrap]),
        [['n1', 'self', false, 'n2']],
      );
      sim.start('n3');
      sim.run(3000);
      assert.ok(formedAll(sim), `seed ${seed}: the third learns it formed`);
      assert.equal(sim.activeHolders().length, 1);
    }
  });

  it('two that both name themselves and start apart each hold it alone (the limit), and stop once they hear each other', () => {
    // Not safe, and cannot be: two members that never heard each other cannot know their configs
    // differ (docs/election.md, "Bootstrap", limits). The simulator's invariants are off until they meet.
    const sim = new SimCluster({ members: 3, bootstrap: true, bootstrapOf: { n2: 'n2' }, check: false });
    sim.partition(['n1'], ['n2']);
    sim.start('n1', 'n2');
    sim.run(5000);
    assert.deepEqual(sim.activeHolders().sort(), ['n1', 'n2']);
    sim.heal();
    const apart = sim.runUntil(() => sim.activeHolders().length <= 1, 5000);
    assert.ok(apart !== undefined && apart < 500, `both stop holding it alone at once (${apart} ms)`);
    sim.run(3000);
    assert.ok(sim.node('n1').state.formed && sim.node('n2').state.formed, 'then the cluster forms');
    assert.equal(sim.activeHolders().length, 1);
    sim.checkSafety();
  });

  it('a bootstrap member that names another, and the others that name it: nobody holds it alone, each says why', () => {
    const sim = new SimCluster({ members: 3, bootstrap: true, bootstrapOf: { n1: 'n2' } });
    sim.start();
    sim.run(10_000);
    assert.deepEqual(sim.holders(), [], 'nobody is the bootstrap member in its own config and agreed on');
    assert.ok(!sim.names().some((n) => sim.node(n).state.formed));
    assert.deepEqual(disputedBy(sim, 'n2'), ['n1']);
    assert.deepEqual(disputedBy(sim, 'n3'), ['n1']);
    assert.deepEqual(
      views(sim, 'n3').map((v) => [v.peer, v.says, v.agrees]),
      [['n1', 'other', false]],
    );
    // Its config fixed, n1 restarts: the others agree again, and it bootstraps the cluster.
    sim.stop('n1');
    sim.run(500);
    sim.node('n1').settings = { ...sim.node('n1').settings, bootstrap: 'n1' };
    sim.start('n1');
    sim.run(5000);
    assert.ok(formedAll(sim));
    assert.equal(sim.activeHolders().length, 1);
    assert.deepEqual(disputedBy(sim, 'n3'), []);
    assert.deepEqual(
      views(sim, 'n3').map((v) => [v.peer, v.agrees]),
      [
        ['n1', false],
        ['n1', true],
      ],
    );
  });

  it('of five, two that named themselves and heard each other never hold it alone again, apart or not', () => {
    const sim = new SimCluster({ members: 5, bootstrap: true, bootstrapOf: { n2: 'n2' } });
    sim.start('n1');
    assert.ok(sim.runUntil(() => sim.activeHolders().length === 1, 10_000) !== undefined);
    sim.start('n2');
    sim.run(1000); // two of five: not a majority, the cluster does not form
    assert.deepEqual(sim.holders(), [], 'n1 gave it up when n2 said it is the bootstrap member');
    sim.partition(['n1'], ['n2']);
    sim.run(10_000); // without the rule each would hold it alone now
    assert.deepEqual(sim.holders(), []);
    sim.heal();
    sim.start('n3');
    sim.run(5000);
    assert.ok(
      ['n1', 'n2', 'n3'].every((n) => sim.node(n).state.formed),
      'three of five: formed',
    );
    assert.equal(sim.activeHolders().length, 1);
  });

  it('swept: one member naming itself, any start order and timing, crashes, restarts and stops on clean links', () => {
    for (let seed = 1; seed <= 300; seed += 1) {
      const members = seed % 4 === 0 ? 5 : 3;
      const wrong = `n${2 + (seed % (members - 1))}`;
      const sim = new SimCluster({
        members,
        seed,
        bootstrap: true,
        bootstrapOf: { [wrong]: wrong },
        jitterMs: 3,
        drift: 0.0005,
        timerLatenessMs: 5,
      });
      const rng = mulberry(seed);
      const order = sim.names().sort(() => rng() - 0.5);
      for (const n of order) {
        sim.start(n);
        sim.run(Math.floor(rng() * 3000));
      }
      for (let i = 0; i < 6; i += 1) {
        const n = order[Math.floor(rng() * order.length)] as string;
        const r = rng();
        if (r < 0.4) sim.crash(n, rng() < 0.5);
        else if (r < 0.7) sim.stop(n);
        sim.run(Math.floor(rng() * 2000));
        sim.start(n);
        sim.run(Math.floor(rng() * 2000));
      }
      sim.run(5000);
      assert.ok(formedAll(sim), `seed ${seed}: formed`);
      assert.equal(sim.activeHolders().length, 1, `seed ${seed}: one holder`);
    }
  });

  it('swept: five members, two naming themselves; once they heard each other, partitions, loss and stalls', () => {
    for (let seed = 1; seed <= 200; seed += 1) {
      const sim = new SimCluster({ members: 5, seed, bootstrap: true, bootstrapOf: { n3: 'n3' }, jitterMs: 3 });
      const rng = mulberry(seed);
      sim.start(rng() < 0.5 ? 'n1' : 'n3');
      sim.run(Math.floor(rng() * 3000));
      sim.start('n1', 'n3');
      const met = sim.runUntil(() => disputedBy(sim, 'n1').length > 0 && disputedBy(sim, 'n3').length > 0, 10_000);
      assert.ok(met !== undefined, `seed ${seed}: they heard each other`);
      const others = ['n2', 'n4', 'n5'].filter(() => rng() < 0.6);
      for (let i = 0; i < 8; i += 1) {
        const r = rng();
        const [a, b] = rng() < 0.5 ? ['n1', 'n3'] : ['n3', 'n1'];
        if (r < 0.3) sim.partition([a, ...others.slice(0, 1)], [b, ...others.slice(1)]);
        else if (r < 0.5) sim.block(a, b);
        else if (r < 0.7) sim.dropRate = rng() * 0.5;
        else if (r < 0.85) sim.stall(a, Math.floor(rng() * 2000));
        else {
          const o = others[Math.floor(rng() * others.length)];
          if (o !== undefined) sim.start(o);
        }
        sim.run(Math.floor(rng() * 3000));
        sim.heal();
        sim.dropRate = 0;
      }
      sim.start('n2', 'n4', 'n5');
      sim.run(8000);
      assert.ok(formedAll(sim), `seed ${seed}: formed`);
      assert.equal(sim.activeHolders().length, 1, `seed ${seed}: one holder`);
    }
  });
});

describe('two members and a witness (docs/election.md, "Witness")', () => {
  // n1, n2 members; n3 the witness. Priorities make n1 the master when both members run.
  const cluster = (seed = 1) =>
    new SimCluster({ members: 3, seed, witnesses: ['n3'], priorities: [110, 100, 254], delayMs: 0.5, jitterMs: 2 });
  const settled = (sim: SimCluster) => {
    sim.start();
    sim.run(5000);
    assert.deepEqual(sim.activeHolders(), ['n1'], 'the better member holds it, never the witness (priority 254)');
  };
  const neverWitness = (sim: SimCluster) =>
    assert.ok(
      !sim.log.some(
        (l) =>
          l.node === 'n3' &&
          (l.action.type === 'acquireVip' || (l.action.type === 'transition' && l.action.to === 'CANDIDATE')),
      ),
    );

  it("the master crashes: the other member takes over with the witness's vote", () => {
    for (const seed of [1, 2, 3]) {
      const sim = cluster(seed);
      settled(sim);
      sim.crash('n1', true);
      const took = sim.runUntil(() => sim.activeHolders().length === 1 && sim.activeHolders()[0] === 'n2', 5000);
      assert.ok(took !== undefined, `seed ${seed}: n2 took over`);
      neverWitness(sim);
    }
  });

  it('partition {n1} | {n2, witness}: only n2 holds; {n1, witness} | {n2}: only n1 holds', () => {
    const sim = cluster();
    settled(sim);
    sim.partition(['n1'], ['n2', 'n3']);
    sim.run(5000);
    assert.deepEqual(sim.activeHolders(), ['n2']);
    sim.heal();
    sim.run(5000);
    sim.partition(['n1', 'n3'], ['n2']);
    sim.run(5000);
    assert.deepEqual(sim.activeHolders(), ['n1']);
    neverWitness(sim);
  });

  it('the witness down: the master keeps the VIP (2 of 3); then the master down too: nobody holds it', () => {
    const sim = cluster();
    settled(sim);
    const gained = sim.acquisitions();
    sim.crash('n3', true);
    sim.run(10_000);
    assert.deepEqual(sim.activeHolders(), ['n1']);
    assert.equal(sim.acquisitions(), gained, 'it never moved');
    sim.crash('n1', true);
    sim.run(10_000);
    assert.deepEqual(sim.holders(), [], 'one of three is no majority: no holder, never two');
  });
});

describe('observers (vipd run --dry-run)', () => {
  it('an observer is never elected, whatever its priority, and still counts for the majority', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const sim = new SimCluster({
        members: 3,
        seed,
        observers: ['n3'],
        priorities: [100, 110, 254],
        delayMs: 0.5,
        jitterMs: 2,
      });
      sim.start();
      sim.run(5000);
      assert.equal(sim.activeHolders().length, 1, `seed ${seed}`);
      assert.notEqual(sim.activeHolders()[0], 'n3');
      // The master stops: the successor it names is the other member, never the observer.
      const m = master(sim);
      sim.stop(m);
      sim.run(3000);
      assert.equal(sim.masters().length, 1, `seed ${seed}: a successor`);
      assert.notEqual(master(sim), 'n3');
      assert.ok(
        !sim.log.some((l) => l.node === 'n3' && l.action.type === 'acquireVip'),
        `seed ${seed}: n3 never took it`,
      );
      assert.ok(
        !sim.log.some((l) => l.action.type === 'transition' && l.action.reason === 'handover' && l.node === 'n3'),
      );
      // With the observer's acknowledgement the last member keeps a majority: it holds on.
      assert.deepEqual(sim.activeHolders(), [master(sim)]);
    }
  });

  it('observers only: nobody is elected', () => {
    const sim = new SimCluster({ members: 3, observers: ['n1', 'n2', 'n3'], delayMs: 0.5 });
    sim.start();
    sim.run(10_000);
    assert.deepEqual(sim.holders(), []);
  });
});
