/**
 * The failover drill behind `vipd lab` and bench/failover.ts, on a test bed (drill-bed.ts: three
 * nodes, a client connecting to VIP:6443 every 10 ms, who holds the VIP read from each node's
 * kernel, so every manager is judged the same way). Events, each started from one VIP holder, the
 * master:
 * - the VIP must move: the master's node dies, its link is cut, it stops gracefully, it is
 *   partitioned away; across the first two a client's watch (watch-client.ts) must come back;
 * - faults real networks have, held for a while and then cleared: the master's manager stalls
 *   (SIGSTOP, then SIGCONT), or its heartbeats are lost one way (out of it, or into it).
 * And, for the benchmark, a long trial with random heartbeat loss on every node. What clients
 * see beyond connects (a watch held longer, a load on faulty backends, a reconnect storm) is in
 * client-drill.ts; the tables that print the figures are in drill-tables.ts. Everything created
 * is removed at the end, on error and on Ctrl-C.
 */
import type { ChildProcess } from 'node:child_process';
import type { ProbeResult } from './client-log';
import { type BedOptions, DrillBed, NODES, type NodeName, PHASE_TIMEOUT_MS, type VipManager } from './drill-bed';
import { firstHeldByOther, type HolderChange, type HolderStats, holderStats, holdersAt } from './holder-log';
import { sleep } from './wait';
import type { WatchLog } from './watch-client';

export interface Outcome {
  readonly event: string;
  /** Wall-clock ms when the fault began. */
  readonly at: number;
  /** A held fault (stall, one-way loss): when it was cleared. */
  readonly heldUntil?: number;
  readonly from: string;
  /** The node that took the VIP over ('' when none did: within the phase timeout, or during the fault). */
  readonly to: string;
  /** From the event to a new holder, read from the kernel. */
  readonly vipMovedMs: number | undefined;
  /** The longest stretch without a successful client connect. undefined: the client never recovered. */
  readonly outageMs: number | undefined;
  /** One holder again within 15 s of the fault's end, before the drill removed any stale copy itself. */
  readonly settled: boolean;
  // Faults held for a while (stall, one-way loss), over the fault (a stall: until 3 s after SIGCONT):
  /** Total and longest time two or more nodes held the VIP at once. */
  readonly multiMs?: number;
  readonly longestMultiMs?: number;
  /** How many times the holder set changed. */
  readonly holderChanges?: number;
  /** Stall: after another node took over, the resumed node became the only holder again. */
  readonly backToOrigin?: boolean;
  /** One-way loss: exactly one holder when the rule was removed. */
  readonly oneHolderAtHeal?: boolean;
  /** The node death and the link cut: what a client's watch through the VIP saw (if it could run). */
  readonly watch?: WatchFigure;
}

/** A watch across a fault, from the fault on. */
export interface WatchFigure {
  /** From the fault to the old watch's end (reset, closed); undefined: it never ended within the wait. */
  readonly brokeMs: number | undefined;
  /** From the fault to the first event of a watch started after it; undefined: none within the wait. */
  readonly resumeMs: number | undefined;
  /** How long the drill waited for it. */
  readonly waitedMs: number;
  /** Watches started after the fault. */
  readonly restarts: number;
  /** How the old watch (and any failed restart) ended: an error code, or "closed". */
  readonly endedBy: readonly string[];
}

export const DRILL_EVENTS = ['crash', 'link', 'graceful', 'partition', 'stall', 'loss-out', 'loss-in'] as const;
export type DrillEvent = (typeof DRILL_EVENTS)[number];

export interface DrillOptions extends BedOptions {
  /** The events to run, in this order (default: all of DRILL_EVENTS). */
  readonly events?: readonly DrillEvent[];
  /** Hold a client's watch across the node death and the link cut (default true). */
  readonly watch?: boolean;
  /** How long a stall lasts (default 3 s). */
  readonly stallMs?: number;
  /** How long a one-way loss lasts (default 10 s). */
  readonly lossHoldMs?: number;
  /** Given what was recorded once the bed is gone, also after a failed event (lab.ts draws it: timeline.ts). */
  readonly onRecord?: (record: DrillRecord) => void;
}

/** The drill's raw record: who held the VIP, what the client saw, and the events' outcomes so far. */
export interface DrillRecord {
  /** Wall-clock ms: the drill's start (before the network is built) and its last event's end. */
  readonly start: number;
  readonly end: number;
  readonly holders: readonly HolderChange[];
  readonly probes: readonly ProbeResult[];
  readonly outcomes: readonly Outcome[];
}

/** The stall's aftermath watched after SIGCONT: the resumed manager's second thoughts land here. */
const AFTER_STALL_MS = 3000;

/** An nftables table that cuts a namespace's eth0 off both ways; `HEAL` removes it. */
export const ISOLATE = [
  'table inet vipd_lab {',
  '  chain in { type filter hook input priority 0; iifname "eth0" drop; }',
  '  chain out { type filter hook output priority 0; oifname "eth0" drop; }',
  '}',
  '',
].join('\n');
export const HEAL = 'delete table inet vipd_lab\n';

/**
 * An nftables table dropping the heartbeats (`match`, from VipManager.heartbeatMatch) a namespace
 * sends (`out`) or receives (`in`) on eth0: all of them, or a random `percent` (each packet on its
 * own, `numgen random`). Its own table, so it never clashes with ISOLATE; `UNDROP` removes it.
 */
export function dropHeartbeats(match: string, direction: 'in' | 'out', percent = 100): string {
  const hook = direction === 'in' ? 'input' : 'output';
  const dev = direction === 'in' ? 'iifname' : 'oifname';
  const random = percent >= 100 ? '' : ` numgen random mod 100 < ${Math.max(0, Math.round(percent))}`;
  return [
    'table inet vipd_lab_loss {',
    `  chain ${direction} { type filter hook ${hook} priority 0; ${dev} "eth0" ${match}${random} drop; }`,
    '}',
    '',
  ].join('\n');
}
export const UNDROP = 'delete table inet vipd_lab_loss\n';

export async function runDrill(manager: VipManager, options: DrillOptions): Promise<Outcome[]> {
  const start = Date.now();
  const bed = await DrillBed.open(manager, options);
  const outcomes: Outcome[] = [];
  try {
    bed.startClient(10, 3600);
    await sleep(1000);
    for (const event of options.events ?? DRILL_EVENTS) outcomes.push(await EVENTS[event](bed, manager, options));
    return outcomes;
  } finally {
    const end = Date.now();
    await bed.close();
    options.onRecord?.({ start, end, holders: bed.holders.log, probes: bed.client.results, outcomes });
  }
}

type EventRun = (bed: DrillBed, manager: VipManager, options: DrillOptions) => Promise<Outcome>;

const EVENTS: Record<DrillEvent, EventRun> = {
  // A node death: see nodeDeath. The VIP stays on the interface, as on a hung node; the restarted
  // manager has to clean it up.
  crash: (bed, _m, o) =>
    takeover(
      bed,
      CRASH_EVENT,
      (m) => nodeDeath(bed, m),
      (m) => nodeRevival(bed, m),
      o.watch ?? true,
    ),
  link: (bed, _m, o) =>
    takeover(
      bed,
      LINK_EVENT,
      (m) => bed.switchPort(m, false),
      (m) => bed.switchPort(m, true),
      o.watch ?? true,
    ),
  graceful: (bed) =>
    takeover(
      bed,
      'graceful: SIGTERM the master',
      (m) => bed.stopManager(m, 'SIGTERM'),
      (m) => {
        bed.startManager(m);
      },
    ),
  partition: (bed) =>
    takeover(
      bed,
      'partition: nftables cuts the master off from the rest',
      (m) => bed.nft(m, ISOLATE),
      (m) => bed.nft(m, HEAL),
    ),
  // A VM pause, a long GC, a hung disk: the manager stops without a word and resumes later with
  // its old view of the world. Only the election's processes stop (keepalived's parent and its
  // VRRP child, not HAProxy beside it; vipd's one process, its balancer included); a connect to
  // a stopped balancer still succeeds while the kernel queues it in the listen backlog.
  stall: (bed, _m, o) => {
    const ms = o.stallMs ?? 3000;
    return held(bed, `stall: SIGSTOP the master's manager for ${ms / 1000} s`, ms, AFTER_STALL_MS, (m) => {
      const pids = bed.electionPids(m);
      for (const pid of pids) signal(pid, 'SIGSTOP');
      return () => {
        for (const pid of [...pids].reverse()) signal(pid, 'SIGCONT');
      };
    }).then((r) => r.outcome);
  },
  // A firewall or a broken NIC queue dropping one direction only: the classic cause of two
  // masters (keepalived #2649). Only heartbeats are dropped; client traffic and health checks pass.
  'loss-out': (bed, manager, o) => oneWay(bed, manager, 'out', o.lossHoldMs ?? 10_000),
  'loss-in': (bed, manager, o) => oneWay(bed, manager, 'in', o.lossHoldMs ?? 10_000),
};

export const CRASH_EVENT = "crash: the master's node dies (link cut, then every process killed)";
export const LINK_EVENT = "link cut: the master's switch port goes down";

/**
 * A node death: its switch port goes down first, then every process on it is SIGKILLed (all of its
 * namespace's, so a manager's helpers send no goodbye either). A dead machine's kernel sends
 * nothing, so its clients' connections are left open on their side; killing the processes with
 * the link up would have the kernel reset them all at once, which no dead machine does.
 */
export async function nodeDeath(bed: DrillBed, n: NodeName): Promise<void> {
  await bed.switchPort(n, false);
  for (const pid of bed.nodePids(n)) signal(pid, 'SIGKILL');
}

/** The dead node comes back: its link first, then its apiserver and its manager start afresh. */
export async function nodeRevival(bed: DrillBed, n: NodeName): Promise<void> {
  await bed.switchPort(n, true);
  bed.startStandIn(n);
  bed.startManager(n);
}

/**
 * A watch started before a fault at `start`: waits until it resumed (a watch started after the
 * fault delivered an event) or `start + waitMs`, then stops it. undefined when no watch could run.
 */
export async function watchAcross(
  bed: DrillBed,
  w: { log: WatchLog; child: ChildProcess } | undefined,
  start: number,
  waitMs: number,
): Promise<WatchFigure | undefined> {
  if (w === undefined) return undefined;
  try {
    if (w.log.unavailable !== undefined) return undefined;
    await w.log.waitFor(() => w.log.resumedAfter(start) !== undefined, Math.max(0, start + waitMs - Date.now()));
    const resumed = w.log.resumedAfter(start);
    const broke = w.log.firstEndAfter(start);
    return {
      brokeMs: broke === undefined ? undefined : broke - start,
      resumeMs: resumed === undefined ? undefined : resumed - start,
      waitedMs: waitMs,
      restarts: w.log.restartsAfter(start),
      endedBy: w.log.endsAfter(start),
    };
  } finally {
    await bed.stopProgram(w.child);
  }
}

/**
 * How long a watch has been flowing before the fault. A real watch is minutes old when its
 * server dies; one opened a few ms before is not what a takeover is judged on: vipd's members
 * tell each other of a new connection within 5 ms, so one younger than that may be unknown to the
 * next master.
 */
export const WATCH_AGE_MS = 1000;

/** A watch for the next fault, flowing for WATCH_AGE_MS; or undefined, saying why, when none can run. */
export async function flowingWatch(bed: DrillBed): Promise<{ log: WatchLog; child: ChildProcess } | undefined> {
  const w = await bed.startWatch();
  if (w.log.unavailable === undefined) {
    await sleep(WATCH_AGE_MS);
    return w;
  }
  await bed.stopProgram(w.child);
  const missing = /Cannot find|ERR_MODULE_NOT_FOUND/.test(w.log.unavailable);
  bed.say(
    `  no watch figures: ${w.log.unavailable.split('\n')[0]}` +
      `${missing ? ' (@kubernetes/client-node is a devDependency: npm ci installs it)' : ''}`,
  );
  return undefined;
}

export const watchText = (w: WatchFigure | undefined) =>
  w === undefined
    ? 'not measured'
    : `${w.brokeMs === undefined ? 'never failed, ' : `failed after ${w.brokeMs} ms, `}${
        w.resumeMs === undefined ? `not resumed within ${w.waitedMs / 1000} s` : `resumed after ${w.resumeMs} ms`
      }`;

/** Waits for one VIP holder (the drill's starting point) and returns it. */
export async function currentMaster(bed: DrillBed, event: string): Promise<NodeName> {
  await bed.holders.waitFor((h) => h.size === 1, PHASE_TIMEOUT_MS);
  const [master, ...more] = bed.holders.holders;
  if (master === undefined || more.length > 0) {
    throw new Error(`no single VIP holder to start "${event}" from (${bed.holders.list()})`);
  }
  return master as NodeName;
}

/** An event after which the VIP must move: measured once another node holds it, then undone. */
async function takeover(
  bed: DrillBed,
  event: string,
  act: (m: NodeName) => void | Promise<void>,
  recover: (m: NodeName) => void | Promise<void>,
  watch = false,
): Promise<Outcome> {
  const master = await currentMaster(bed, event);
  const w = watch ? await flowingWatch(bed) : undefined;
  bed.say(`${event} (master ${master})`);
  const start = Date.now();
  await act(master);
  await bed.holders.waitFor((h) => [...h].some((n) => n !== master), PHASE_TIMEOUT_MS);
  const movedMs = elapsed(firstHeldByOther(bed.holders.log, master, start), start);
  const to = [...bed.holders.holders].find((n) => n !== master) ?? '';
  await bed.client.steady(PHASE_TIMEOUT_MS);
  const outage = bed.client.longestOutage(start);
  const after = movedMs === undefined ? ' (no takeover)' : ` (taken over after ${movedMs} ms)`;
  bed.say(`  VIP on ${bed.holders.list()}${after}; client outage ${outageText(outage)}`);
  // Before the recovery: a node coming back could still carry the old connection's packets.
  const watched = await watchAcross(bed, w, start, PHASE_TIMEOUT_MS);
  if (watched !== undefined) {
    bed.say(`  the watch ${watchText(watched)} (${watched.endedBy.join(', ') || 'still open'})`);
  }
  await recover(master);
  const settled = await settle(bed, master);
  return {
    event,
    at: start,
    from: master,
    to,
    vipMovedMs: movedMs,
    outageMs: outage,
    settled,
    ...(watched === undefined ? {} : { watch: watched }),
  };
}

/**
 * A fault held for `holdMs`, then cleared, then watched for `afterMs`: the holder figures cover
 * that whole window, the client outage everything from the fault to a steady client. `inject`
 * starts the fault and returns what clears it.
 */
async function held(
  bed: DrillBed,
  event: string,
  holdMs: number,
  afterMs: number,
  inject: (m: NodeName) => () => void,
): Promise<{ outcome: Outcome; clearedAt: number }> {
  const master = await currentMaster(bed, event);
  bed.say(`${event} (master ${master})`);
  const start = Date.now();
  const clear = inject(master);
  let clearedAt: number;
  try {
    await sleep(holdMs);
  } finally {
    clearedAt = Date.now();
    clear();
  }
  await sleep(afterMs);
  const end = Date.now();
  const log = bed.holders.log;
  const moved = firstHeldByOther(log, master, start, end);
  const stats = holderStats(log, start, end);
  // Back: once another node held the VIP, the old master alone held it again.
  const back =
    moved !== undefined &&
    log.some((c) => c.t > moved.t && c.t <= end && c.holders.length === 1 && c.holders[0] === master);
  await bed.client.steady(PHASE_TIMEOUT_MS);
  const outage = bed.client.longestOutage(start);
  bed.say(
    `  ${moved === undefined ? 'the VIP stayed' : `VIP moved after ${moved.t - start} ms`}; ` +
      `${stats.changes} holder change${stats.changes === 1 ? '' : 's'}, two held it for ${stats.multiMs} ms ` +
      `(longest ${stats.longestMultiMs} ms)` +
      `${back ? `, back on ${master}` : ''}; client outage ${outageText(outage)}`,
  );
  const settled = await settle(bed, master);
  const outcome: Outcome = {
    event,
    at: start,
    heldUntil: clearedAt,
    from: master,
    to: moved?.holders.find((n) => n !== master) ?? '',
    vipMovedMs: elapsed(moved, start),
    outageMs: outage,
    settled,
    multiMs: stats.multiMs,
    longestMultiMs: stats.longestMultiMs,
    holderChanges: stats.changes,
    backToOrigin: back,
  };
  return { outcome, clearedAt };
}

/** The master's heartbeats dropped one way for `holdMs`; the figures cover the hold only. */
async function oneWay(bed: DrillBed, manager: VipManager, direction: 'in' | 'out', holdMs: number): Promise<Outcome> {
  const what = direction === 'out' ? "the master's heartbeats" : 'heartbeats to the master';
  const event = `one-way ${direction}: ${what} dropped for ${holdMs / 1000} s`;
  const { outcome, clearedAt } = await held(bed, event, holdMs, 0, (m) => {
    bed.nft(m, dropHeartbeats(manager.heartbeatMatch, direction));
    return () => bed.nft(m, UNDROP);
  });
  // "Back to the stalled node" is the stall's question; here the fault ends the window.
  const { backToOrigin: _stallOnly, ...rest } = outcome;
  return { ...rest, oneHolderAtHeal: holdersAt(bed.holders.log, clearedAt).length === 1 };
}

const outageText = (ms: number | undefined) => (ms === undefined ? 'still on' : `${ms} ms`);

/** The ms from `start` to a change, if there was one. */
const elapsed = (c: { readonly t: number } | undefined, start: number) => (c === undefined ? undefined : c.t - start);

/** A signal to a process that may have exited meanwhile. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * After an event: waits for one holder. A restarted manager may leave a stale copy of the VIP on
 * the old master (keepalived's #2361): say so and remove it, so the next event starts from one
 * holder like every other run; the outcome still says the manager did not settle by itself.
 */
export async function settle(bed: DrillBed, master: NodeName): Promise<boolean> {
  let one = await bed.holders.waitFor((h) => h.size === 1, PHASE_TIMEOUT_MS);
  const settled = one !== undefined;
  if (!settled && bed.holders.holders.has(master) && bed.holders.holders.size > 1) {
    bed.say(`  the manager on ${master} left the stale VIP there; the drill removes it`);
    await bed.removeVip(master);
    one = await bed.holders.waitFor((h) => h.size === 1, PHASE_TIMEOUT_MS);
  }
  await sleep(1500);
  bed.say(`  recovered: VIP on ${bed.holders.list()}${one === undefined ? ' (did not settle on one holder)' : ''}`);
  return settled;
}

export interface LossTrialOptions extends BedOptions {
  /** The share of each node's outgoing heartbeats dropped, 0-100. */
  readonly percent: number;
  readonly seconds: number;
}

export interface LossTrial {
  readonly label: string;
  readonly percent: number;
  /** How long the loss was on, measured. */
  readonly ms: number;
  readonly stats: HolderStats;
  /** The total time the client could not connect. */
  readonly clientDownMs: number;
}

/**
 * A lossy network for a long while: every node drops a random `percent` of the heartbeats it
 * sends (each packet on its own), for `seconds`. A manager should ride it out with one holder;
 * each takeover is a client outage nobody asked for.
 */
export async function runLossTrial(manager: VipManager, options: LossTrialOptions): Promise<LossTrial> {
  const bed = await DrillBed.open(manager, options);
  try {
    bed.startClient(10, options.seconds + 120);
    await sleep(1000);
    for (const n of NODES) bed.nft(n, dropHeartbeats(manager.heartbeatMatch, 'out', options.percent));
    const start = Date.now();
    const end = start + options.seconds * 1000;
    bed.say(`random loss: ${options.percent}% of every node's outgoing heartbeats dropped for ${options.seconds} s`);
    // A progress line a minute: count and time bound the loop.
    for (let i = 0; i < Math.ceil(options.seconds / 60) && Date.now() < end; i++) {
      await sleep(Math.min(60_000, end - Date.now()));
      const { takeovers } = holderStats(bed.holders.log, start, Date.now());
      bed.say(
        `  ${Math.round((Date.now() - start) / 1000)} s: ${takeovers} takeover${takeovers === 1 ? '' : 's'}, ` +
          `VIP on ${bed.holders.list()}`,
      );
    }
    const stop = Date.now();
    for (const n of NODES) bed.nft(n, UNDROP);
    const stats = holderStats(bed.holders.log, start, stop);
    const clientDownMs = bed.client.downtime(start, stop);
    return { label: manager.label, percent: options.percent, ms: stop - start, stats, clientDownMs };
  } finally {
    await bed.close();
  }
}

export interface DetectionOptions extends BedOptions {
  /** The share of each node's outgoing heartbeats dropped, 0-100. */
  readonly percent: number;
  readonly crashes: number;
  /** How long the loss is on before the first crash, so a loss-adaptive manager has adapted. */
  readonly warmupSeconds: number;
}

export interface Detection {
  readonly label: string;
  readonly percent: number;
  /** Per crash: from the crash to another node holding the VIP; undefined if none did in 15 s. */
  readonly movedMs: readonly (number | undefined)[];
}

/**
 * Failure detection on a lossy network: with `percent` of every node's heartbeats dropped, the
 * master's node crashes (every process SIGKILLed), `crashes` times, and each time the time until
 * another node holds the VIP is measured. A manager that rides out loss by waiting longer pays for
 * it here; the random-loss trial shows what it buys.
 */
export async function runCrashUnderLoss(manager: VipManager, options: DetectionOptions): Promise<Detection> {
  const bed = await DrillBed.open(manager, options);
  const movedMs: (number | undefined)[] = [];
  try {
    if (options.percent > 0)
      for (const n of NODES) bed.nft(n, dropHeartbeats(manager.heartbeatMatch, 'out', options.percent));
    bed.say(
      `${options.percent}% of every node's outgoing heartbeats dropped; first crash in ${options.warmupSeconds} s`,
    );
    await sleep(options.warmupSeconds * 1000);
    for (let i = 0; i < options.crashes; i += 1) {
      const event = `crash under ${options.percent}% loss (${i + 1} of ${options.crashes})`;
      const master = await currentMaster(bed, event).catch(() => undefined);
      if (master === undefined) {
        bed.say(`  ${event}: no single holder to crash; skipped`);
        movedMs.push(undefined);
        continue;
      }
      const start = Date.now();
      for (const pid of bed.nodePids(master)) signal(pid, 'SIGKILL');
      await bed.holders.waitFor((h) => [...h].some((n) => n !== master), PHASE_TIMEOUT_MS);
      const moved = elapsed(firstHeldByOther(bed.holders.log, master, start), start);
      movedMs.push(moved);
      bed.say(`  ${event} (master ${master}): ${moved === undefined ? 'no takeover' : `taken over after ${moved} ms`}`);
      bed.startStandIn(master);
      bed.startManager(master);
      await settle(bed, master);
      await sleep(10_000); // the restarted node rejoins; the loss estimates settle
    }
    return { label: manager.label, percent: options.percent, movedMs };
  } finally {
    if (options.percent > 0)
      for (const n of NODES) {
        try {
          bed.nft(n, UNDROP);
        } catch {
          /* torn down below */
        }
      }
    await bed.close();
  }
}
