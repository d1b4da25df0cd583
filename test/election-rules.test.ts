/**
 * One test per election rule (docs/election.md), on the pure state machine with a virtual clock.
 * The cluster tests run real state machines over a simulated network (helpers/sim-cluster.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialState, snapshot, step, type ElectionState } from '../src/vrrp/state-machine';
import type { ElectionAction, ElectionSettings, Heartbeat } from '../src/vrrp/types';
import { SimCluster } from './helpers/sim-cluster';

const members = [
  { name: 'n1', address: '10.0.0.1' },
  { name: 'n2', address: '10.0.0.2' },
  { name: 'n3', address: '10.0.0.3' },
];
const settings = (over: Partial<ElectionSettings> = {}): ElectionSettings => ({
  clusterId: 1, self: members[0]!, members, intervalMs: 100, deadAfter: 3, priority: 100,
  preempt: true, preemptDelayMs: 0, quorum: 'majority', ...over,
});
const hb = (sender: string, over: Partial<Heartbeat> = {}): Heartbeat => ({
  clusterId: 1, sender, epoch: 1, seq: 1, role: 'BACKUP', priority: 100, intervalMs: 100, quorate: true,
  resigning: false, master: '', vote: '', ...over,
});

/** Drives one machine, collecting its actions. */
class One {
  state: ElectionState;
  actions: ElectionAction[] = [];
  constructor(s: ElectionSettings) { this.state = initialState(s); }
  feed(event: Parameters<typeof step>[1]): ElectionAction[] {
    const r = step(this.state, event);
    this.state = r.state;
    this.actions.push(...r.actions);
    return [...r.actions];
  }
  sends(list = this.actions) { return list.filter((a) => a.type === 'send'); }
  has(type: ElectionAction['type'], list: ElectionAction[]) { return list.some((a) => a.type === type); }
}

describe('heartbeats and liveness', () => {
  it('sends a heartbeat at start and then once per interval', () => {
    const m = new One(settings());
    assert.equal(m.sends(m.feed({ type: 'start', now: 0 })).length, 1);
    assert.equal(m.sends(m.feed({ type: 'tick', now: 50 })).length, 0, 'not before the interval');
    assert.equal(m.sends(m.feed({ type: 'tick', now: 100 })).length, 1);
    const sched = m.actions.filter((a) => a.type === 'schedule').pop();
    assert.ok(sched && sched.type === 'schedule' && sched.at <= 200);
  });

  it('counts a peer alive until deadAfter x interval without its heartbeats', () => {
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'heartbeat', now: 10, heartbeat: hb('n2') });
    assert.equal(snapshot(m.state, 309).peers.find((p) => p.name === 'n2')?.alive, true);
    assert.equal(snapshot(m.state, 310).peers.find((p) => p.name === 'n2')?.alive, false);
  });

  it("times a peer out by the peer's own advertised interval", () => {
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'heartbeat', now: 0, heartbeat: hb('n2', { intervalMs: 1000 }) });
    assert.equal(snapshot(m.state, 2900).peers.find((p) => p.name === 'n2')?.alive, true);
  });

  it('asks to be woken when a peer would die, not only at the next heartbeat', () => {
    const m = new One(settings({ intervalMs: 1000 }));
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'tick', now: 3000 });
    assert.equal(m.state.role, 'BACKUP');
    const acts = m.feed({ type: 'heartbeat', now: 3010, heartbeat: hb('n2', { intervalMs: 100, master: 'n2', role: 'MASTER' }) });
    const sched = acts.filter((a) => a.type === 'schedule').pop();
    assert.ok(sched?.type === 'schedule');
    assert.equal(sched.at, 3310);
  });
});

describe('startup (INIT)', () => {
  it('does not claim before it has heard every peer or waited a dead interval', () => {
    const m = new One(settings({ quorum: 'none' }));
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'tick', now: 100 });
    m.feed({ type: 'tick', now: 200 });
    assert.equal(m.state.role, 'INIT');
    m.feed({ type: 'tick', now: 300 });
    assert.equal(m.state.role, 'MASTER', 'alone and without quorum it claims after the wait');
  });

  it('goes straight to BACKUP when it hears a master', () => {
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'heartbeat', now: 5, heartbeat: hb('n2', { role: 'MASTER', priority: 50, master: 'n2' }) });
    assert.equal(m.state.role, 'BACKUP');
    assert.ok(!m.has('acquireVip', m.actions));
  });

  it('goes to BACKUP as soon as it has heard every peer', () => {
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    m.feed({ type: 'heartbeat', now: 5, heartbeat: hb('n2', { role: 'INIT', priority: 200 }) });
    m.feed({ type: 'heartbeat', now: 6, heartbeat: hb('n3', { role: 'INIT', priority: 200 }) });
    assert.equal(m.state.role, 'INIT', 'these may have been sent before we listened');
    m.feed({ type: 'heartbeat', now: 105, heartbeat: hb('n2', { seq: 2, role: 'INIT', priority: 200 }) });
    assert.equal(m.state.role, 'INIT');
    m.feed({ type: 'heartbeat', now: 106, heartbeat: hb('n3', { seq: 2, role: 'INIT', priority: 200 }) });
    assert.equal(m.state.role, 'BACKUP');
    assert.ok(!m.has('acquireVip', m.actions), 'a better member is still starting: wait for it');
  });
});

describe('who is master', () => {
  it('the highest priority wins', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120] });
    sim.start();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    assert.deepEqual(sim.holders(), ['n2']);
  });

  it('equal priorities: the higher address wins', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
  });

  it('a master that dies is replaced by the best remaining member after the dead interval', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120] });
    sim.start();
    sim.run(1000);
    sim.crash('n2');
    const took = sim.runUntil(() => sim.masters().join() === 'n3', 2000);
    assert.ok(took !== undefined, 'n3 took over');
    assert.ok(took >= 200 && took <= 400 + 5, `took ${took} ms: about deadAfter x interval`);
  });
});

describe('preemption', () => {
  it('preempt on: a member with a higher priority takes over when it joins', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120] });
    sim.start('n1', 'n3');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    sim.start('n2');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    assert.equal(sim.longestOverlap(), 0, 'a handover never has two holders');
  });

  it('preempt on with a delay: the better member waits preemptDelay first', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120], preemptDelayMs: 2000 });
    sim.start('n1', 'n3');
    sim.run(1000);
    sim.start('n2');
    sim.run(1500);
    assert.deepEqual(sim.masters(), ['n3'], 'still within the delay');
    sim.run(1500);
    assert.deepEqual(sim.masters(), ['n2']);
  });

  it('equal priority never preempts (a restarted node does not pull the VIP back)', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start('n1', 'n2');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    sim.start('n3');
    sim.run(2000);
    assert.deepEqual(sim.masters(), ['n2']);
  });

  it('preempt off: a better member that joins does not take over', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120], preempt: false });
    sim.start('n1', 'n3');
    sim.run(1000);
    sim.start('n2');
    sim.run(2000);
    assert.deepEqual(sim.masters(), ['n3']);
  });

  it('preempt off: a master whose priority drops hands over to a better member', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 110, 120], preempt: false });
    sim.start();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    sim.track('n3', 'apiserver', { kind: 'weight', weight: 50 });
    sim.run(300);
    assert.deepEqual(sim.masters(), ['n2']);
    assert.equal(sim.longestOverlap(), 0);
    sim.track('n3', 'apiserver', { kind: 'ok' });
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2'], 'recovered, but preempt is off');
  });

  it('preempt on: a tracked failure moves the VIP, and it comes back on recovery', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 110, 120], preemptDelayMs: 5000 });
    sim.start();
    sim.run(1000);
    sim.track('n3', 'apiserver', { kind: 'weight', weight: 50 });
    sim.run(100);
    assert.deepEqual(sim.masters(), ['n2'], 'a priority drop moves at once, preemptDelay is for the better member');
    sim.track('n3', 'apiserver', { kind: 'ok' });
    sim.run(6000);
    assert.deepEqual(sim.masters(), ['n3']);
  });
});

describe('quorum', () => {
  it('majority: an isolated master releases within one dead interval, the majority elects another', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    const cut = sim.now;
    sim.partition(['n3'], ['n1', 'n2']);
    const released = sim.runUntil(() => !sim.holders().includes('n3'), 2000);
    assert.ok(released !== undefined && released <= 300 + 1, `released after ${released} ms`);
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
    assert.equal(sim.longestOverlap(cut), 0, 'the old master let go before the new one took over');
    sim.heal();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2'], 'on heal, equal priority: no preemption, one master');
  });

  it('majority: a member alone never takes the role', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start('n1');
    sim.run(5000);
    assert.deepEqual(sim.masters(), []);
    assert.equal(sim.role('n1'), 'BACKUP');
  });

  it('majority: two of three are enough', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start('n1', 'n2');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n2']);
  });

  it('none (keepalived-like): an isolated member becomes master; on heal the lesser steps down', () => {
    const sim = new SimCluster({ members: 3, quorum: 'none' });
    sim.start();
    sim.run(1000);
    sim.partition(['n3'], ['n1', 'n2']);
    sim.run(1000);
    assert.deepEqual(sim.masters().sort(), ['n2', 'n3'], 'both sides hold the VIP: the split brain quorum prevents');
    sim.heal();
    const settled = sim.runUntil(() => sim.masters().length === 1, 1000);
    assert.ok(settled !== undefined && settled <= 100 + 2, `two masters resolved in ${settled} ms (one interval)`);
    assert.deepEqual(sim.masters(), ['n3']);
  });
});

describe('graceful stop', () => {
  it('the stopping master names its successor, which takes over at once', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 150, 120] });
    sim.start();
    sim.run(1000);
    sim.stop('n2');
    const took = sim.runUntil(() => sim.masters().join() === 'n3', 1000);
    assert.ok(took !== undefined && took <= 5, `successor took over in ${took} ms, without a dead-interval wait`);
    const resign = sim.log.find((l) => l.node === 'n2' && l.action.type === 'send' && l.action.heartbeat.resigning);
    assert.ok(resign?.action.type === 'send');
    assert.equal(resign.action.heartbeat.priority, 0);
    assert.equal(resign.action.heartbeat.master, 'n3');
  });

  it('a stopping backup does not disturb the master', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    sim.stop('n1');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    assert.equal(sim.longestOverlap(), 0);
  });

  it('if the resign message is lost, the dead interval still brings a new master', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    sim.partition(['n3'], ['n1', 'n2']);
    sim.stop('n3');
    sim.heal();
    const took = sim.runUntil(() => sim.masters().length === 1, 2000);
    assert.ok(took !== undefined && took <= 700, `took ${took} ms`);
  });
});

describe('faults', () => {
  it('a fault makes the master FAULT and release; clearing it returns to BACKUP', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    sim.track('n3', 'link', { kind: 'fault' });
    assert.equal(sim.role('n3'), 'FAULT');
    assert.ok(!sim.holders().includes('n3'));
    sim.run(500);
    assert.deepEqual(sim.masters(), ['n2']);
    sim.track('n3', 'link', { kind: 'ok' });
    sim.run(500);
    assert.equal(sim.role('n3'), 'BACKUP');
    assert.deepEqual(sim.masters(), ['n2'], 'equal priority: no preemption after recovery');
  });

  it('a FAULT member is never chosen, even with the best priority', () => {
    const sim = new SimCluster({ members: 3, priorities: [100, 100, 200] });
    sim.start();
    sim.track('n3', 'link', { kind: 'fault' });
    sim.run(2000);
    assert.deepEqual(sim.masters(), ['n2']);
  });
});

describe('two masters', () => {
  it('resolve within one interval when they hear each other: the lesser steps down', () => {
    const sim = new SimCluster({ members: 2, quorum: 'none' });
    sim.start();
    sim.partition(['n1'], ['n2']);
    sim.run(1000);
    assert.deepEqual(sim.masters().sort(), ['n1', 'n2']);
    sim.heal();
    const t = sim.runUntil(() => sim.masters().length === 1, 500);
    assert.ok(t !== undefined && t <= 100 + 2, `resolved in ${t} ms`);
    assert.deepEqual(sim.masters(), ['n2']);
  });
});

describe('asymmetric links', () => {
  it('the link between two members is cut while a third hears both: one master remains', () => {
    const sim = new SimCluster({ members: 3 });
    sim.partition(['n2'], ['n3']);
    sim.start();
    sim.run(3000);
    assert.deepEqual(sim.masters(), ['n3']);
    assert.ok(sim.longestOverlap() <= 3 * 100 + 100 + 10, `overlap ${sim.longestOverlap()} ms`);
    const from = sim.now;
    sim.run(5000);
    assert.equal(sim.holderHistory.filter((h) => h.at > from).length, 0, 'stable: no flapping');
  });

  it('the master loses its link to one backup only: it stays master', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    sim.partition(['n3'], ['n1']);
    sim.run(3000);
    assert.deepEqual(sim.masters(), ['n3']);
    assert.equal(sim.longestOverlap(), 0);
  });
});

describe('votes', () => {
  it('a better member that does not nominate itself is passed over; the claim needs a majority of votes', () => {
    // n2 (best) sees someone better it cannot reach and votes for n3; n3 votes for n1.
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    let claimedAt: number | undefined;
    for (let t = 0; t <= 1000 && claimedAt === undefined; t += 50) {
      const acts = [
        ...m.feed({ type: 'heartbeat', now: t, heartbeat: hb('n2', { seq: t, priority: 200, vote: 'n3' }) }),
        ...m.feed({ type: 'heartbeat', now: t, heartbeat: hb('n3', { seq: t, priority: 150, vote: t >= 500 ? 'n1' : 'n3' }) }),
        ...m.feed({ type: 'tick', now: t + 1 }),
      ];
      if (acts.some((a) => a.type === 'acquireVip')) claimedAt = t;
    }
    assert.equal(claimedAt, 500, 'claimed once n3 voted for it, not before');
  });

  it('does not claim while a peer still names a master', () => {
    const m = new One(settings());
    m.feed({ type: 'start', now: 0 });
    for (let t = 0; t <= 2000; t += 50) {
      m.feed({ type: 'heartbeat', now: t, heartbeat: hb('n2', { seq: t, priority: 50, master: 'n3', vote: 'n1' }) });
      m.feed({ type: 'tick', now: t + 1 });
    }
    assert.ok(!m.actions.some((a) => a.type === 'acquireVip'));
  });
});

describe('reconfigure (reload)', () => {
  it('a reloaded higher priority preempts; a lower one hands over', () => {
    const sim = new SimCluster({ members: 3 });
    sim.start();
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n3']);
    const before = sim.log.length;
    sim.reconfigure('n1', { priority: 200, preempt: true, preemptDelayMs: 0 });
    assert.ok(sim.log.slice(before).some((l) => l.action.type === 'send' && l.action.heartbeat.priority === 200), 'announced at once');
    sim.run(1000);
    assert.deepEqual(sim.masters(), ['n1']);
  });
});
