/**
 * Failover benchmark: the lab's drill (src/lab/drill.ts) run on the same namespaced network with
 * vipd and with the pair it replaces, keepalived + HAProxy (Debian's packages), one after the
 * other in one run, and the figures side by side; then the random-loss trials. As root:
 *
 *   npm run bench:failover         (= npm run build && node dist/bench/failover.js: everything)
 *   node dist/bench/failover.js [--only vipd|keepalived] [--events crash,link,...,storm,random-loss]
 *     [--storm-clients 5000] [--loss-seconds 600] [--loss-rates 10,30,50] [--loss-parallel none|rate|all] [--verbose]
 *   node dist/bench/failover.js --ipv6 [--events crash,link,...]   (the drill's events over IPv6)
 *
 * keepalived is set up as the kubeadm HA guide does (unicast peers, equal priorities, state
 * BACKUP everywhere), once with its default advert_int 1 (VRRPv2) and once with VRRPv3 at 0.1 s,
 * which is the fastest it supports and what vipd's default heartbeat interval matches. HAProxy
 * listens on :6443 on every node with HTTPS /readyz checks; the client connects to VIP:6443.
 *
 * With --ipv6 the same on the drill bed's IPv6 mode (peers fd00:77::1-3, the VIP fd00:77::100/64):
 * vipd with IPv6 peers and its balancer on [::]:6443, and keepalived VRRPv3 0.1 s (VRRPv2 has no
 * IPv6) with IPv6 unicast peers and HAProxy on :::6443 v4v6 checking [fd00:77::N]:9443; the tables
 * are headed IPv6.
 *
 * Then what clients see (src/lab/client-drill.ts): a watch across a node death and a link cut, a
 * load of new connections with a blackholed or a killed apiserver, a reconnect storm.
 *
 * The drill's events run one manager after the other: they time failovers to the millisecond and
 * must not share the CPU. The random-loss trials count events over minutes, and each has its own
 * network, so they run side by side (--loss-parallel, see bench/README.md) while the machine's
 * load is recorded to show it was not saturated.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CLIENT_EVENTS,
  type ClientEvent,
  type ClientOutcome,
  clientFigures,
  maxStormClients,
  runClientDrill,
} from '../src/lab/client-drill';
import {
  type Detection,
  DRILL_EVENTS,
  type DrillEvent,
  type LossTrial,
  type Outcome,
  runCrashUnderLoss,
  runDrill,
  runLossTrial,
} from '../src/lab/drill';
import { hostPort, NODES, PHASE_TIMEOUT_MS, type VipManager } from '../src/lab/drill-bed';
import { formatDetections, formatLossTrials, formatOutcomes, watchCell } from '../src/lab/drill-tables';
import { vipdManager } from '../src/lab/lab';
import { machineTicks } from './proxy/proc-stats';

/**
 * HAProxy as the kubeadm HA guide configures it: TCP on :6443, HTTPS /readyz checks, roundrobin.
 * Over IPv6: every address of both families (`:::6443 v4v6`), and the apiservers' IPv6 addresses
 * in brackets.
 */
function haproxyConfig(ips: readonly string[], family: 4 | 6): string {
  return `global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend apiserver
  bind ${family === 6 ? ':::6443 v4v6' : '*:6443'}
  default_backend apiservers
backend apiservers
  option httpchk GET /readyz
  http-check expect status 200
  balance roundrobin
  default-server inter 2s fall 3 rise 2 check check-ssl verify none
${ips.map((ip, i) => `  server cp${i + 1} ${hostPort(ip, 9443)}`).join('\n')}
`;
}

/**
 * keepalived (unicast VRRP, as the kubeadm guide sets it up) with HAProxy beside it on each node.
 * The addresses are the bed's family: over IPv6 the unicast source and peers are the nodes' IPv6
 * addresses and the VIP is fd00:77::100/64 (VRRPv3 only: VRRPv2 carries IPv4 addresses alone).
 */
function keepalivedManager(advertInt: number, print: ((line: string) => void) | undefined): VipManager {
  const v3 = advertInt < 1;
  return {
    label: `keepalived ${v3 ? 'VRRPv3' : 'VRRPv2'} ${advertInt}s + HAProxy`,
    probePort: 6443,
    prepare(net, dir) {
      writeFileSync(
        join(dir, 'haproxy.cfg'),
        haproxyConfig(
          NODES.map((n) => net.address(n)),
          net.family,
        ),
      );
      for (const n of NODES) {
        const peers = NODES.filter((p) => p !== n)
          .map((p) => `    ${net.address(p)}`)
          .join('\n');
        writeFileSync(
          join(dir, `${n}.conf`),
          `global_defs {
  router_id ${n}
  ${v3 ? 'vrrp_version 3' : ''}
  vrrp_garp_master_delay 5
  vrrp_garp_master_repeat 5
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int ${advertInt}
  unicast_src_ip ${net.address(n)}
  unicast_peer {
${peers}
  }
  virtual_ipaddress {
    ${net.vipCidr} dev eth0
  }
}
`,
        );
      }
    },
    // The VRRP packets themselves (IP protocol 112, or IPv6's next header 112), unicast to each
    // peer: `meta l4proto` matches either family in the drill's inet tables.
    heartbeatMatch: 'meta l4proto vrrp',
    commands: (n, dir) => [
      {
        // The parent only watches its children; the VRRP child it forks runs the election. A stall
        // stops both (a stalled parent alone changes nothing), and not HAProxy, a separate daemon.
        election: true,
        cmd: 'keepalived',
        args: [
          '--dont-fork',
          '--log-console',
          '--vrrp',
          '-f',
          join(dir, `${n}.conf`),
          '-p',
          join(dir, `${n}.pid`),
          '-r',
          join(dir, `${n}.vrrp.pid`),
          '-c',
          join(dir, `${n}.checkers.pid`),
        ],
      },
      { cmd: 'haproxy', args: ['-db', '-f', join(dir, 'haproxy.cfg'), '-p', join(dir, `${n}.haproxy.pid`)] },
    ],
    ...(print === undefined ? {} : { onLine: (n, line) => print(`        ${n}: ${line}`) }),
  };
}

const RANDOM_LOSS = 'random-loss';
const CRASH_LOSS = 'crash-loss';
const PARALLEL = ['none', 'rate', 'all'] as const;
type Parallel = (typeof PARALLEL)[number];

interface BenchOptions {
  readonly only: 'vipd' | 'keepalived' | undefined;
  readonly events: readonly DrillEvent[];
  readonly clientEvents: readonly ClientEvent[];
  readonly stormClients: number;
  readonly stormSeconds: number;
  readonly watchSeconds: number;
  readonly randomLoss: boolean;
  readonly crashLoss: boolean;
  readonly detectRates: readonly number[];
  readonly detectCrashes: number;
  readonly lossSeconds: number;
  readonly lossRates: readonly number[];
  readonly parallel: Parallel;
  /** Print the managers' own log lines too. */
  readonly verbose: boolean;
  /** Every bed in IPv6 mode; vipd and keepalived VRRPv3 only. */
  readonly ipv6: boolean;
}

const ALL_EVENTS: readonly string[] = [...DRILL_EVENTS, ...CLIENT_EVENTS, RANDOM_LOSS, CRASH_LOSS];

const USAGE = `usage: node dist/bench/failover.js [--only vipd|keepalived] [--events LIST] [--storm-clients N]
  [--storm-seconds 60] [--watch-seconds 60] [--loss-seconds N] [--loss-rates 10,30,50] [--loss-parallel none|rate|all]
  [--detect-rates 0,10,30,50] [--detect-crashes N] [--ipv6] [--verbose]
  --events: a comma-separated subset of ${ALL_EVENTS.join(',')} (default: all;
    with --ipv6, the drill's ${DRILL_EVENTS.join(',')})
  --ipv6: over IPv6 (the VIP fd00:77::100/64), vipd and keepalived VRRPv3 0.1s + HAProxy`;

function options(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: 'string' },
      events: { type: 'string' },
      'storm-clients': { type: 'string', default: '5000' },
      'storm-seconds': { type: 'string', default: '60' },
      'watch-seconds': { type: 'string', default: '60' },
      'loss-seconds': { type: 'string', default: '600' },
      'loss-rates': { type: 'string', default: '10,30,50' },
      'loss-parallel': { type: 'string', default: 'rate' },
      'detect-rates': { type: 'string', default: '0,10,30,50' },
      'detect-crashes': { type: 'string', default: '3' },
      verbose: { type: 'boolean', default: false },
      ipv6: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const ipv6 = values.ipv6 === true;
  const bad = (what: string) => new Error(`${what}\n${USAGE}`);
  if (values.only !== undefined && values.only !== 'vipd' && values.only !== 'keepalived') {
    throw bad(`--only: "${values.only}"`);
  }
  const events =
    values.events
      ?.split(',')
      .map((e) => e.trim())
      .filter((e) => e !== '') ?? (ipv6 ? DRILL_EVENTS : ALL_EVENTS);
  for (const e of events) if (!ALL_EVENTS.includes(e)) throw bad(`--events: unknown "${e}"`);
  const stormClients = Number(values['storm-clients']);
  const maxStorm = maxStormClients();
  if (!Number.isInteger(stormClients) || stormClients < 1 || stormClients > maxStorm) {
    throw bad(
      `--storm-clients: 1 to ${maxStorm} (a balancer holds two descriptors per client; ` +
        'this limit follows the hard limit on open files)',
    );
  }
  const stormSeconds = Number(values['storm-seconds']);
  if (!Number.isInteger(stormSeconds) || stormSeconds < 5 || stormSeconds > 600) throw bad('--storm-seconds: 5 to 600');
  const watchSeconds = Number(values['watch-seconds']);
  if (!Number.isInteger(watchSeconds) || watchSeconds < 5 || watchSeconds > 600) throw bad('--watch-seconds: 5 to 600');
  const detectRates = (values['detect-rates'] ?? '').split(',').map(Number);
  if (detectRates.some((r) => !Number.isInteger(r) || r < 0 || r > 90))
    throw bad('--detect-rates: whole percentages from 0 to 90');
  const detectCrashes = Number(values['detect-crashes']);
  if (!Number.isInteger(detectCrashes) || detectCrashes < 1 || detectCrashes > 50)
    throw bad('--detect-crashes: 1 to 50');
  const lossSeconds = Number(values['loss-seconds']);
  if (!Number.isInteger(lossSeconds) || lossSeconds < 10 || lossSeconds > 7200) {
    throw bad('--loss-seconds: a whole number from 10 to 7200');
  }
  const lossRates = (values['loss-rates'] ?? '').split(',').map(Number);
  if (lossRates.some((r) => !Number.isInteger(r) || r < 0 || r > 100)) {
    throw bad('--loss-rates: whole percentages from 0 to 100');
  }
  const parallel = values['loss-parallel'] as Parallel;
  if (!PARALLEL.includes(parallel)) throw bad(`--loss-parallel: one of ${PARALLEL.join(', ')}`);
  return {
    only: values.only as BenchOptions['only'],
    events: DRILL_EVENTS.filter((e) => events.includes(e)),
    clientEvents: CLIENT_EVENTS.filter((e) => events.includes(e)),
    stormClients,
    stormSeconds,
    watchSeconds,
    randomLoss: events.includes(RANDOM_LOSS),
    crashLoss: events.includes(CRASH_LOSS),
    detectRates,
    detectCrashes,
    lossSeconds,
    lossRates,
    parallel,
    verbose: values.verbose === true,
    ipv6,
  };
}

/**
 * The CPU this process and its reaped children used (utime, stime, cutime, cstime), in the same
 * ticks as /proc/stat: every process a trial started is its child (`ip netns exec` execs in place)
 * and is reaped when the trial closes, so after a group of trials this is the group's own CPU.
 */
function ownTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0); // fields 14-17, counted from state (3)
}

/**
 * How busy the machine was while trials ran side by side: the mean, the busiest 10 s, the highest
 * 1-minute load average, and the bench's own share. A saturated machine delays heartbeats and
 * would count its own scheduling as the managers' takeovers; on a shared machine the bench's share
 * tells its load from other jobs'.
 */
class MachineLoad {
  private readonly first = machineTicks();
  private readonly firstOwn = ownTicks();
  private last = this.first;
  private maxBusy = 0;
  private maxLoad = 0;
  private readonly timer = setInterval(() => this.sample(), 10_000);

  private sample(): void {
    const now = machineTicks();
    const ticks = now.total - this.last.total;
    if (ticks > 0) this.maxBusy = Math.max(this.maxBusy, (now.busy - this.last.busy) / ticks);
    this.last = now;
    this.maxLoad = Math.max(this.maxLoad, Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]));
  }

  /** Call once the trials have closed (their processes reaped). */
  stop(): string {
    clearInterval(this.timer);
    this.sample();
    const total = Math.max(1, this.last.total - this.first.total);
    const pct = (x: number) => `${Math.round(x * 100)}%`;
    return (
      `CPU busy ${pct((this.last.busy - this.first.busy) / total)} on average (the bench's own processes ` +
      `${pct((ownTicks() - this.firstOwn) / total)}), ${pct(this.maxBusy)} in the busiest 10 s; ` +
      `load average (1 min) up to ${this.maxLoad.toFixed(2)}; ${cpus().length} cores`
    );
  }
}

interface Contender {
  readonly tag: string;
  readonly kind: 'vipd' | 'keepalived';
  readonly manager: VipManager;
}

/** The random-loss trials: every contender at every rate, grouped as --loss-parallel says. */
async function lossTrials(
  contenders: readonly Contender[],
  o: BenchOptions,
  print: (l: string) => void,
): Promise<LossTrial[]> {
  const all = o.lossRates.flatMap((percent) => contenders.map((c) => ({ c, percent })));
  const groups =
    o.parallel === 'all'
      ? [all]
      : o.parallel === 'rate'
        ? o.lossRates.map((p) => all.filter((t) => t.percent === p))
        : all.map((t) => [t]);
  const trials: LossTrial[] = [];
  for (const group of groups) {
    const names = group.map((t) => `${t.c.tag} ${t.percent}%`).join(', ');
    print(`\n=== random loss, ${group.length} trial(s) side by side: ${names}`);
    const load = new MachineLoad();
    const results = await Promise.allSettled(
      group.map(({ c, percent }) =>
        runLossTrial(c.manager, {
          out: (l) => print(`[${c.tag} ${percent}%] ${l}`),
          prefix: 'vipd-bench',
          ipv6: o.ipv6,
          percent,
          seconds: o.lossSeconds,
        }),
      ),
    );
    print(`    ${load.stop()}`);
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') trials.push(r.value);
      else print(`[${group[i]?.c.tag} ${group[i]?.percent}%] failed: ${(r.reason as Error).message}`);
    }
  }
  return trials;
}

/** Crashes under loss: for each rate, every contender side by side (each in its own namespaces). */
async function detections(
  contenders: readonly Contender[],
  o: BenchOptions,
  print: (l: string) => void,
): Promise<Detection[]> {
  const out: Detection[] = [];
  for (const percent of o.detectRates) {
    print(`\n=== crash under ${percent}% loss, ${contenders.length} manager(s) side by side`);
    const load = new MachineLoad();
    const results = await Promise.allSettled(
      contenders.map((c) =>
        runCrashUnderLoss(c.manager, {
          out: (l) => print(`[${c.tag} ${percent}%] ${l}`),
          prefix: 'vipd-bench',
          ipv6: o.ipv6,
          percent,
          crashes: o.detectCrashes,
          warmupSeconds: 30,
        }),
      ),
    );
    print(`    ${load.stop()}`);
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') out.push(r.value);
      else print(`[${contenders[i]?.tag} ${percent}%] failed: ${(r.reason as Error).message}`);
    }
  }
  return out;
}

interface Run {
  readonly label: string;
  readonly outcomes: readonly Outcome[];
  readonly client: readonly ClientOutcome[];
}

/** The first column's width: the longest event name. */
const FIRST = 70;

/** One row of a side-by-side table: `cell` of each run's outcome for `event`. */
function row(name: string, runs: readonly Run[], event: string, cell: (o: Outcome) => string): string {
  const cells = runs.map((r) => {
    const o = r.outcomes.find((x) => x.event === event);
    return (o === undefined ? '-' : cell(o)).padStart(34);
  });
  return `${name.padEnd(FIRST)}${cells.join('')}`;
}

/** What clients saw, side by side: for each event, every figure of it, one row each. */
function compareClients(all: readonly Run[], print: (l: string) => void, family = ''): void {
  const runs = all.filter((r) => r.client.length > 0);
  const head = (first: string) => `${first.padEnd(FIRST)}${runs.map((r) => r.label.padStart(34)).join('')}`;
  const events = [...new Set(runs.flatMap((r) => r.client.map((x) => x.event)))];
  for (const e of events) {
    const figures = runs.map((r) => {
      const o = r.client.find((x) => x.event === e);
      return new Map(o === undefined ? [] : clientFigures(o));
    });
    const names = [...new Set(figures.flatMap((f) => [...f.keys()]))];
    print(`\n=== ${family}${e}\n${head('figure')}`);
    for (const n of names) print(`${n.padEnd(FIRST)}${figures.map((f) => (f.get(n) ?? '-').padStart(34)).join('')}`);
  }
}

/**
 * The drill's figures side by side: the headline tables, then every figure of each held fault.
 * `family` heads every table ("IPv6: ..."; nothing for IPv4, as before).
 */
function compare(runs: readonly Run[], print: (l: string) => void, family = ''): void {
  const ms = (v: number | undefined, none: string) => (v === undefined ? none : String(v));
  const yes = (b: boolean | undefined) => (b === undefined ? '-' : b ? 'yes' : 'no');
  const head = (first: string) => `${first.padEnd(FIRST)}${runs.map((r) => r.label.padStart(34)).join('')}`;
  const events = [...new Set(runs.flatMap((r) => r.outcomes.map((x) => x.event)))];
  if (events.length === 0) return;
  print(`\n=== ${family}client outage (ms) per event; lower is better\n${head('event')}`);
  for (const e of events) print(row(e, runs, e, (x) => ms(x.outageMs, 'unrecovered')));
  print(`\n=== ${family}VIP moved (ms) per event`);
  for (const e of events) print(row(e, runs, e, (x) => ms(x.vipMovedMs, 'never')));
  const watched = events.filter((e) => runs.some((r) => r.outcomes.some((x) => x.event === e && x.watch)));
  if (watched.length > 0) {
    print(
      `\n=== ${family}a client's watch through the VIP: resumed after (ms), waited ${PHASE_TIMEOUT_MS / 1000} s at most`,
    );
    for (const e of watched) print(row(e, runs, e, (x) => watchCell(x.watch) || '-'));
  }
  const isHeld = (e: string) => runs.some((r) => r.outcomes.some((x) => x.event === e && x.multiMs !== undefined));
  const heldFaults = events.filter(isHeld);
  for (const e of heldFaults) {
    print(`\n=== ${family}${e}\n${head('figure')}`);
    print(row('VIP moved (ms)', runs, e, (x) => ms(x.vipMovedMs, 'never')));
    print(row('client outage (ms)', runs, e, (x) => ms(x.outageMs, 'unrecovered')));
    print(row('holder changes', runs, e, (x) => ms(x.holderChanges, '-')));
    print(row('two holders, total (ms)', runs, e, (x) => ms(x.multiMs, '-')));
    print(row('two holders, longest (ms)', runs, e, (x) => ms(x.longestMultiMs, '-')));
    print(
      e.startsWith('stall')
        ? row('VIP back on the stalled node after SIGCONT', runs, e, (x) => yes(x.backToOrigin))
        : row('one holder when the rule was removed', runs, e, (x) => yes(x.oneHolderAtHeal)),
    );
    print(row('one holder again within 15 s after', runs, e, (x) => yes(x.settled)));
  }
}

async function main(): Promise<void> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const o = options(process.argv.slice(2));
  const started = Date.now();
  const logs = o.verbose ? print : undefined;
  const contenders: Contender[] = [{ tag: 'vipd', kind: 'vipd', manager: vipdManager({ verbose: o.verbose }, print) }];
  try {
    execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    // Over IPv6 keepalived needs VRRPv3 (VRRPv2 carries IPv4 addresses alone): the 0.1 s setup only.
    if (!o.ipv6) contenders.push({ tag: 'ka-v2', kind: 'keepalived', manager: keepalivedManager(1, logs) });
    contenders.push({ tag: 'ka-v3', kind: 'keepalived', manager: keepalivedManager(0.1, logs) });
  } catch {
    process.stderr.write(
      'bench: keepalived and haproxy are needed for the comparison ' +
        '(apt-get install keepalived haproxy); running vipd only\n',
    );
  }
  const chosen = contenders.filter((c) => o.only === undefined || c.kind === o.only);
  const runs: Run[] = [];
  const family = o.ipv6 ? 'IPv6: ' : '';
  if (o.ipv6) print('IPv6: every bed in IPv6 mode, peers fd00:77::1-3, the VIP fd00:77::100/64, clients to [VIP]:6443');
  for (const c of chosen) {
    const clientEvents = c.tag === 'ka-v2' ? [] : o.clientEvents;
    if (o.events.length === 0 && clientEvents.length === 0) continue;
    print(`\n=== ${family}${c.manager.label}`);
    const outcomes =
      o.events.length === 0
        ? []
        : await runDrill(c.manager, { out: print, prefix: 'vipd-bench', events: o.events, ipv6: o.ipv6 });
    // What clients see is compared against keepalived at its fastest only (VRRPv3 0.1 s): the
    // managers' detection is not what it measures, and each manager takes minutes.
    const client =
      clientEvents.length === 0
        ? []
        : await runClientDrill(c.manager, {
            out: print,
            prefix: 'vipd-bench',
            ipv6: o.ipv6,
            events: clientEvents,
            stormClients: o.stormClients,
            stormPhaseMs: o.stormSeconds * 1000,
            watchWaitMs: o.watchSeconds * 1000,
          });
    runs.push({ label: c.manager.label, outcomes, client });
  }
  const trials = o.randomLoss ? await lossTrials(chosen, o, print) : [];
  const detected = o.crashLoss ? await detections(chosen, o, print) : [];

  if (runs.length > 0) {
    compare(runs, print, family);
    compareClients(runs, print, family);
  }
  if (trials.length > 0) {
    print(`\n=== ${family}random loss: each node drops that share of the heartbeats it sends, for ${o.lossSeconds} s`);
    for (const l of formatLossTrials(trials)) print(l);
  }
  if (detected.length > 0) {
    print(`\n=== ${family}crash under loss: each node drops that share of its heartbeats; the master's node crashes`);
    for (const l of formatDetections(detected)) print(l);
  }
  for (const r of runs.filter((x) => x.outcomes.length > 0)) {
    print('');
    for (const l of formatOutcomes(o.ipv6 ? `${r.label}, IPv6` : r.label, r.outcomes)) print(l);
  }
  print(`\nbench: ${((Date.now() - started) / 60_000).toFixed(1)} min`);
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
