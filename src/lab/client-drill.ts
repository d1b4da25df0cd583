/**
 * What clients see of a failover and of faulty backends, beyond whether a connect succeeds: the
 * second half of the drill (drill.ts has the first), on the same kind of bed (drill-bed.ts) and so
 * for any VipManager. Events, each started from one VIP holder, the master:
 * - watch: a client-node Watch through VIP:6443 while the master's node dies, then while its link
 *   is cut, each time waiting long enough (60 s) for the client's own timeouts to bring it back;
 * - blackhole, backend-kill: a load of new TLS connections (4 clients, 6 s) while one apiserver
 *   that is not on the master is unreachable from the start (its :9443 drops every packet from the
 *   network: SYNs vanish, nothing answers), or is SIGKILLed halfway (its kernel resets and refuses);
 *   before the first of them, the same load with nothing wrong, to read them against;
 * - storm: N idle TLS connections (storm-client.ts) held through the VIP when the master's node
 *   dies: how soon they are all back, and what taking them costs the new master (process-sampler).
 * Built for the benchmark and for tests (`runClientDrill`); everything is removed at the end.
 */
import { readFileSync } from 'node:fs';
import {
  currentMaster,
  flowingWatch,
  nodeDeath,
  nodeRevival,
  settle,
  type WatchFigure,
  watchAcross,
  watchText,
} from './drill';
import { type BedOptions, DrillBed, NODES, type NodeName, PHASE_TIMEOUT_MS, type VipManager } from './drill-bed';
import { watchCell } from './drill-tables';
import { firstHeldByOther } from './holder-log';
import type { LoadResult } from './load-client';
import { type ProcessCost, ProcessSampler } from './process-sampler';
import { StormLog } from './storm-client';
import { sleep } from './wait';

export const CLIENT_EVENTS = ['watch', 'blackhole', 'backend-kill', 'storm'] as const;
export type ClientEvent = (typeof CLIENT_EVENTS)[number];

export interface ClientDrillOptions extends BedOptions {
  /** The events to run, in this order (default: all of CLIENT_EVENTS). */
  readonly events?: readonly ClientEvent[];
  /** How long the watch event waits for the watch to come back (default 60 s). */
  readonly watchWaitMs?: number;
  /** The load: how long (default 6 s) and how many concurrent clients (default 4). */
  readonly loadSeconds?: number;
  readonly loadClients?: number;
  /** The storm: how many clients (default 2,000), and how long after the death it is watched (60 s). */
  readonly stormClients?: number;
  readonly stormPhaseMs?: number;
  /** Clients per storm process (default 2,500): each holds one descriptor per connection. */
  readonly stormPerProcess?: number;
  /**
   * The storm's clients connect evenly over this long (default 30 s, their keepalive time), so
   * their keepalive probes are spread as in a cluster whose clients came at different times.
   */
  readonly stormSpreadMs?: number;
}

export interface WatchOutcome {
  readonly kind: 'watch';
  readonly event: string;
  readonly from: string;
  readonly to: string;
  readonly vipMovedMs: number | undefined;
  /** undefined: no watch could run (client-node missing). */
  readonly watch: WatchFigure | undefined;
}

export interface LoadOutcome {
  readonly kind: 'load';
  readonly event: string;
  /** The apiserver the fault was on ('' for the baseline). */
  readonly backend: string;
  /** undefined: the load program gave no result. */
  readonly result: LoadResult | undefined;
  /** Every apiserver answered through the VIP again within 30 s of the fault's end. */
  readonly recovered: boolean;
}

export interface StormOutcome {
  readonly kind: 'storm';
  readonly event: string;
  readonly from: string;
  readonly to: string;
  readonly clients: number;
  /** Connected through the old master when its node died, and how long connecting them took. */
  readonly connected: number;
  readonly connectMs: number;
  readonly vipMovedMs: number | undefined;
  /** From the death until every client's old connection had failed; undefined: not within the phase. */
  readonly allFailedMs: number | undefined;
  /** Clients whose old connection had failed within 5 s of the death (the reset's work, not the reconnects'). */
  readonly failedWithin5s: number;
  /** From the death until every client had a new connection up; undefined: not within the phase. */
  readonly allBackMs: number | undefined;
  /** Clients with a new connection up within 2 s, 5 s and 10 s of the death, and by the phase's end. */
  readonly within2s: number;
  readonly within5s: number;
  readonly within10s: number;
  readonly atEnd: number;
  readonly phaseMs: number;
  /** The new master's manager processes over the phase (vipd; keepalived and HAProxy). */
  readonly cost: ProcessCost | undefined;
  readonly processes: number;
}

export type ClientOutcome = WatchOutcome | LoadOutcome | StormOutcome;

/** Drops every packet for :9443 arriving from the network: the node itself still reaches its apiserver. */
const BLACKHOLE = [
  'table inet vipd_lab_blackhole {',
  '  chain in { type filter hook input priority 0; iifname "eth0" tcp dport 9443 drop; }',
  '}',
  '',
].join('\n');
const UNBLACKHOLE = 'delete table inet vipd_lab_blackhole\n';

export async function runClientDrill(manager: VipManager, options: ClientDrillOptions): Promise<ClientOutcome[]> {
  const bed = await DrillBed.open(manager, options);
  try {
    const outcomes: ClientOutcome[] = [];
    let baseline = false;
    for (const event of options.events ?? CLIENT_EVENTS) {
      if (event === 'watch') {
        outcomes.push(
          await watchEvent(bed, options, "watch: the master's node dies", 'link cut, then every process killed', true),
        );
        outcomes.push(
          await watchEvent(bed, options, "watch: the master's link is cut", 'its switch port goes down', false),
        );
      } else if (event === 'storm') {
        outcomes.push(await storm(bed, manager, options));
      } else {
        if (!baseline) outcomes.push(await load(bed, manager, options, 'load: no fault (the baseline)', 'none'));
        baseline = true;
        outcomes.push(
          event === 'blackhole'
            ? await load(
                bed,
                manager,
                options,
                'load: an apiserver blackholed (SYNs dropped) from the start',
                'blackhole',
              )
            : await load(bed, manager, options, 'load: an apiserver SIGKILLed halfway', 'kill'),
        );
      }
    }
    return outcomes;
  } finally {
    await bed.close();
  }
}

/** The VIP moved: from `start` to another node holding it, read from the kernels. */
async function moved(bed: DrillBed, master: NodeName, start: number): Promise<{ ms: number | undefined; to: string }> {
  await bed.holders.waitFor((h) => [...h].some((n) => n !== master), PHASE_TIMEOUT_MS);
  const change = firstHeldByOther(bed.holders.log, master, start);
  // The node that took over, even if a flapping manager has let go of the VIP again since.
  const to = change?.holders.find((n) => n !== master) ?? '';
  return { ms: change === undefined ? undefined : change.t - start, to };
}

/** A watch across the node death (`death`) or the link cut, waited for well past the phase timeout. */
async function watchEvent(
  bed: DrillBed,
  o: ClientDrillOptions,
  event: string,
  what: string,
  death: boolean,
): Promise<WatchOutcome> {
  const master = await currentMaster(bed, event);
  const w = await flowingWatch(bed);
  bed.say(`${event}: ${what} (master ${master})`);
  const start = Date.now();
  if (death) await nodeDeath(bed, master);
  else await bed.switchPort(master, false);
  const { ms, to } = await moved(bed, master, start);
  bed.say(`  VIP on ${bed.holders.list()}${ms === undefined ? ' (no takeover)' : ` (taken over after ${ms} ms)`}`);
  // The link stays cut until the watch is back or the wait is over: a node coming back could still
  // carry the old connection's packets, which a dead one never would.
  const watch = await watchAcross(bed, w, start, o.watchWaitMs ?? 60_000);
  if (watch !== undefined) bed.say(`  the watch ${watchText(watch)} (${watch.endedBy.join(', ') || 'still open'})`);
  if (death) await nodeRevival(bed, master);
  else await bed.switchPort(master, true);
  await settle(bed, master);
  return { kind: 'watch', event, from: master, to, vipMovedMs: ms, watch };
}

/**
 * A client program run to its end in the client's namespace: resolves with its output lines once
 * it exits, or after `timeoutMs` (then it is stopped).
 */
async function runToEnd(
  bed: DrillBed,
  script: string,
  args: readonly string[],
  timeoutMs: number,
  onLine: (line: string) => void = () => undefined,
): Promise<string[]> {
  const lines: string[] = [];
  const child = bed.startClientProgram(script, args, (line) => {
    lines.push(line);
    onLine(line);
  });
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null) r();
    else child.once('exit', () => r());
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    exited,
    new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  await bed.stopProgram(child);
  return lines;
}

function parsed<T>(lines: readonly string[], kind: string): T | undefined {
  for (const line of lines) {
    try {
      const v = JSON.parse(line) as { kind?: string };
      if (v.kind === kind) return v as T;
    } catch {
      /* not a result */
    }
  }
  return undefined;
}

/** Every apiserver answers /whoami through the VIP again, within 30 s. */
async function backendsBack(bed: DrillBed, manager: VipManager): Promise<boolean> {
  const lines = await runToEnd(
    bed,
    'load-client.js',
    [bed.vip, String(manager.probePort), '--backends', String(NODES.length), '--timeout', '30000'],
    40_000,
  );
  return (parsed<{ names: string[] }>(lines, 'backends')?.names.length ?? 0) === NODES.length;
}

/** The load, with a fault on an apiserver that is not on the master (`none`: the baseline). */
async function load(
  bed: DrillBed,
  manager: VipManager,
  o: ClientDrillOptions,
  event: string,
  fault: 'none' | 'blackhole' | 'kill',
): Promise<LoadOutcome> {
  const master = await currentMaster(bed, event);
  const backend = fault === 'none' ? undefined : NODES.find((n) => n !== master);
  const seconds = o.loadSeconds ?? 6;
  bed.say(`${event}${backend === undefined ? '' : ` (${backend}'s; master ${master})`}`);
  if (fault === 'blackhole' && backend !== undefined) bed.nft(backend, BLACKHOLE);
  let kill: NodeJS.Timeout | undefined;
  let result: LoadResult | undefined;
  try {
    const lines = await runToEnd(
      bed,
      'load-client.js',
      [bed.vip, String(manager.probePort), '--clients', String(o.loadClients ?? 4), '--seconds', String(seconds)],
      seconds * 1000 + 60_000,
      (line) => {
        if (fault === 'kill' && backend !== undefined && line.includes('"started"')) {
          kill = setTimeout(() => void bed.killStandIn(backend), seconds * 500);
        }
      },
    );
    result = parsed<LoadResult & { kind: string }>(lines, 'result');
  } finally {
    clearTimeout(kill);
    if (fault === 'blackhole' && backend !== undefined) bed.nft(backend, UNBLACKHOLE);
    if (fault === 'kill' && backend !== undefined) bed.startStandIn(backend);
  }
  if (result === undefined) bed.say('  the load gave no result');
  else bed.say(`  ${loadText(result)}`);
  const recovered = fault === 'none' || (await backendsBack(bed, manager));
  if (!recovered) bed.say('  not every apiserver answered through the VIP within 30 s after');
  if (result !== undefined) {
    const { kind: _kind, ...plain } = result as LoadResult & { kind?: string };
    result = plain;
  }
  return { kind: 'load', event, backend: backend ?? '', result, recovered };
}

const loadText = (r: LoadResult) =>
  `${r.done} requests done, ${r.failed} failed` +
  `${
    r.failed > 0
      ? ` (${Object.entries(r.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')})`
      : ''
  }; ` +
  `latency p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms`;

/** This process's hard limit on open files: no child can be given more. */
function fileLimit(): number {
  const m = /^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m === null ? 1024 : Number(m[1]);
}

/** The most storm clients a balancer on this machine can relay: two descriptors each, some spare. */
export function maxStormClients(): number {
  return Math.max(0, Math.floor((fileLimit() - 1000) / 2));
}

/**
 * The keepalive settings the storm's clients get in the client namespace: client-go's HTTP/2 ping
 * timeout (15 s without an answer ends the connection), played by one unanswered keepalive probe
 * 15 s after it was sent; see storm-client.ts. Restored after the storm.
 */
const STORM_SYSCTLS = { 'net.ipv4.tcp_keepalive_intvl': 15, 'net.ipv4.tcp_keepalive_probes': 1 } as const;

async function storm(bed: DrillBed, manager: VipManager, o: ClientDrillOptions): Promise<StormOutcome> {
  const clients = o.stormClients ?? 2000;
  const phaseMs = o.stormPhaseMs ?? 60_000;
  const event = `storm: ${clients} idle TLS clients, the master's node dies`;
  const master = await currentMaster(bed, event);
  const log = new StormLog();
  const saved = Object.keys(STORM_SYSCTLS).map((k) => [k, bed.readSysctl('client', k)] as const);
  for (const [k, v] of Object.entries(STORM_SYSCTLS)) bed.sysctl('client', k, v);
  const perProcess = o.stormPerProcess ?? 2500;
  const programs = [];
  bed.say(`${event} (master ${master})`);
  try {
    const connectStart = Date.now();
    for (let first = 0; first < clients; first += perProcess) {
      const count = Math.min(perProcess, clients - first);
      programs.push(
        bed.startClientProgram(
          'storm-client.js',
          [
            bed.vip,
            String(manager.probePort),
            '--clients',
            String(count),
            '--first',
            String(first),
            '--spread-ms',
            String(o.stormSpreadMs ?? 30_000),
          ],
          (line) => log.add(line),
          Math.min(fileLimit(), count + 1024),
        ),
      );
    }
    // Connecting is not the figure, but it is bounded: the spread, a minute, more for many clients.
    const connectLimit = Date.now() + (o.stormSpreadMs ?? 30_000) + 60_000 + clients * 10;
    while (log.established < clients && Date.now() < connectLimit) await sleep(100);
    const connected = log.established;
    const connectMs = Date.now() - connectStart;
    bed.say(`  ${connected} of ${clients} connected through ${master} in ${connectMs} ms`);
    await sleep(1000);
    // The managers that may take over, sampled from the death on; their processes do not change.
    const samplers = new Map(
      NODES.filter((n) => n !== master).map((n) => {
        const pids = bed.managerPids(n);
        return [n, { sampler: new ProcessSampler(() => pids), processes: pids.length }] as const;
      }),
    );
    const start = Date.now();
    await nodeDeath(bed, master);
    const { ms, to } = await moved(bed, master, start);
    bed.say(`  VIP on ${bed.holders.list()}${ms === undefined ? ' (no takeover)' : ` (taken over after ${ms} ms)`}`);
    const back = () => log.reconnects(start, clients).filter((r) => r !== undefined).length;
    // A progress line every 10 s; the phase's end bounds the loop.
    for (let next = start + 10_000; back() < clients && Date.now() < start + phaseMs; ) {
      await sleep(100);
      if (Date.now() < next) continue;
      bed.say(`  ${back()} of ${clients} back after ${Math.round((Date.now() - start) / 1000)} s`);
      next += 10_000;
    }
    const costs = new Map([...samplers].map(([n, s]) => [n, s.sampler.stop()] as const));
    const reconnects = log.reconnects(start, clients);
    const done = reconnects.filter((r): r is number => r !== undefined);
    const within = (ms2: number) => done.filter((r) => r <= ms2).length;
    const allBackMs = done.length === clients ? Math.max(...done) : undefined;
    const failed = log.failures(start, clients).filter((r): r is number => r !== undefined);
    const allFailedMs = failed.length === clients ? Math.max(...failed) : undefined;
    const cost = costs.get(to as NodeName);
    const outcome: StormOutcome = {
      kind: 'storm',
      event,
      from: master,
      to,
      clients,
      connected,
      connectMs,
      vipMovedMs: ms,
      allFailedMs,
      failedWithin5s: failed.filter((r) => r <= 5000).length,
      allBackMs,
      within2s: within(2000),
      within5s: within(5000),
      within10s: within(10_000),
      atEnd: done.length,
      phaseMs,
      cost,
      processes: samplers.get(to as NodeName)?.processes ?? 0,
    };
    bed.say(`  ${stormText(outcome)}`);
    return outcome;
  } finally {
    await Promise.all(programs.map((p) => bed.stopProgram(p)));
    for (const [k, v] of saved) bed.sysctl('client', k, v);
    await nodeRevival(bed, master);
    await settle(bed, master);
  }
}

const stormText = (s: StormOutcome) =>
  `${s.allFailedMs === undefined ? '' : `every old connection failed after ${s.allFailedMs} ms; `}${
    s.allBackMs === undefined
      ? `${s.atEnd} of ${s.clients} back within ${s.phaseMs / 1000} s`
      : `all ${s.clients} back after ${s.allBackMs} ms`
  } ` +
  `(${s.within2s} within 2 s, ${s.within5s} within 5 s, ${s.within10s} within 10 s); ` +
  `new master ${s.to}: ${costText(s.cost)}`;

const costText = (c: ProcessCost | undefined) =>
  c === undefined
    ? 'not sampled'
    : `peak CPU ${c.peakCpuPercent}%, ${c.cpuSeconds} CPU s, peak RSS ${c.peakRssMiB} MiB`;

const ms = (v: number | undefined, none: string) => (v === undefined ? none : String(v));

/** The figures of an outcome as (name, value) rows: the same names for every manager, for tables. */
export function clientFigures(o: ClientOutcome): [string, string][] {
  switch (o.kind) {
    case 'watch':
      return [
        ['VIP moved (ms)', ms(o.vipMovedMs, 'never')],
        [
          'the old watch failed after (ms)',
          o.watch === undefined ? 'not measured' : ms(o.watch.brokeMs, `not in ${o.watch.waitedMs / 1000} s`),
        ],
        ['watch resumed after (ms)', o.watch === undefined ? 'not measured' : watchCell(o.watch)],
        [
          `watch back within ${PHASE_TIMEOUT_MS / 1000} s`,
          o.watch === undefined
            ? '-'
            : o.watch.resumeMs !== undefined && o.watch.resumeMs <= PHASE_TIMEOUT_MS
              ? 'yes'
              : 'no',
        ],
        ['watches started after the fault', o.watch === undefined ? '-' : String(o.watch.restarts)],
        ['the old watch ended by', o.watch === undefined ? '-' : (o.watch.endedBy[0] ?? 'still open')],
      ];
    case 'load': {
      const r = o.result;
      const errors =
        r === undefined
          ? '-'
          : Object.entries(r.errors)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || 'none';
      return [
        ['requests done', ms(r?.done, '-')],
        ['requests failed', ms(r?.failed, '-')],
        ['failures by cause', errors],
        ['latency p50 (ms)', ms(r?.p50Ms, '-')],
        ['latency p99 (ms)', ms(r?.p99Ms, '-')],
        ['latency max (ms)', ms(r?.maxMs, '-')],
        ['every apiserver serves again within 30 s', o.backend === '' ? '-' : o.recovered ? 'yes' : 'no'],
      ];
    }
    case 'storm':
      return [
        ['clients connected before (connect ms)', `${o.connected} (${o.connectMs})`],
        ['VIP moved (ms)', ms(o.vipMovedMs, 'never')],
        ['every old connection failed (reset) after (ms)', ms(o.allFailedMs, `not in ${o.phaseMs / 1000} s`)],
        ['all clients back after (ms)', ms(o.allBackMs, `not in ${o.phaseMs / 1000} s`)],
        ['back within 2 s', String(o.within2s)],
        ['back within 5 s', String(o.within5s)],
        ['back within 10 s', String(o.within10s)],
        [`back by the phase end (${o.phaseMs / 1000} s)`, String(o.atEnd)],
        ['new master: peak CPU (% of a core, 100 ms)', ms(o.cost?.peakCpuPercent, '-')],
        ['new master: CPU time over the phase (s)', ms(o.cost?.cpuSeconds, '-')],
        ['new master: peak RSS (MiB)', ms(o.cost?.peakRssMiB, '-')],
      ];
  }
}
