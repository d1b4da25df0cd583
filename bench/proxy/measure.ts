import { readFileSync } from 'node:fs';
/**
 * The figures, each taken the same way for every target: idle memory per connection, saturating
 * rates (keep-alive, new connections), latency at a fixed rate, one bulk stream, and a reconnect
 * storm of TLS clients.
 */
import type { AgentMessage } from '../../src/lab/netns';
import { sleep, waitFor } from '../../src/lab/wait';
import type { Bed } from './bed';
import type { StormResult } from './children/client';
import { type Endpoint, LATENCY_CONNECTIONS, type Target, TLS_PORT } from './network';
import type { Options } from './options';
import { cpuNs, cpuTicks, machineTicks, rssKiB } from './proc-stats';
import type { Processes } from './processes';
import { fmtUs, type Say } from './report';
import { type IdleFigures, PERCENTILES, push, type Samples } from './samples';
import { type WrkResult, wrk } from './wrk';

/** One run of the bench: what every measurement needs, and where its samples go. */
export interface Run {
  readonly o: Options;
  readonly procs: Processes;
  readonly bed: Bed;
  readonly results: ReadonlyMap<Target, Samples>;
  /** Idle connections per balancer (--idle, or fewer to fit the descriptor limit). */
  readonly idle: number;
  /** TLS clients per storm (--storm, or fewer to fit the descriptor limit); 0: no storm. */
  readonly storm: number;
  /** wrk's Lua script spacing the latency run's requests. */
  readonly delayScript: string;
  readonly say: Say;
}

const samplesOf = (run: Run, target: Target) => run.results.get(target) as Samples;
const url = (e: Endpoint) => `http://${e.ip}:${e.port}/`;

/** VmRSS is polled this often while waiting for it to settle... */
const SETTLE_EVERY_MS = 500;
/** ...until it has stayed within 64 KiB for 4 s... */
const SETTLE_KIB = 64;
const SETTLE_HOLD_MS = 4000;
/** ...for at most 30 s. */
const SETTLE_MAX_MS = 30_000;
/**
 * A Node balancer's VmRSS falls by about 10 MB some 8 s after it starts, when V8's memory reducer
 * returns the heap it grew while starting (measured: flat at 68 MB for 8 s, then 58 MB within a
 * second). Read before that, the baseline is 10 MB too high and a balancer's growth with 9,900 idle
 * connections comes out negative; so no baseline is read before a balancer is this old.
 */
const MIN_AGE_MS = 15_000;

/** How long the process has run (ms), from its start time in /proc (clock ticks since boot, 100 Hz). */
function ageMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return uptimeS * 1000 - startTicks * 10;
}

/**
 * The balancer's VmRSS once it has settled (V8 may still be growing or shrinking its heap): once
 * the process is MIN_AGE_MS old, polled every 500 ms until it has stayed within 64 KiB for 4 s, for
 * at most 30 s; the last read either way, saying so when it never settled. No garbage collection is
 * forced: the figure is what an operator sees.
 */
async function settledRssKiB(run: Run, e: Endpoint, what: string): Promise<number> {
  const pid = e.pid as number;
  const name = e.comm as string;
  const young = MIN_AGE_MS - ageMs(pid);
  if (young > 0) await sleep(young);
  const start = performance.now();
  let anchor = rssKiB(pid, name);
  let since = performance.now();
  for (;;) {
    await sleep(SETTLE_EVERY_MS);
    const now = rssKiB(pid, name);
    if (Math.abs(now - anchor) >= SETTLE_KIB) {
      anchor = now;
      since = performance.now();
    } else if (performance.now() - since >= SETTLE_HOLD_MS) {
      return now;
    }
    if (performance.now() - start >= SETTLE_MAX_MS) {
      run.say(`  ${e.name}: VmRSS ${what} never settled in ${SETTLE_MAX_MS / 1000} s (last read ${now} KiB)`);
      return now;
    }
  }
}

/**
 * `run.idle` connections opened through a balancer and left silent; once the backends count them
 * ESTABLISHED (end to end), the balancer's VmRSS growth divided by their number, each VmRSS read
 * once it has settled.
 */
export async function idleMemory(run: Run, e: Endpoint): Promise<IdleFigures> {
  const { bed, idle, say } = run;
  const base = await bed.backendConnections();
  const rssBeforeKiB = await settledRssKiB(run, e, 'before');
  const opened = await bed.agent.request<{ held: number; failed: number }>(
    'open',
    { host: e.ip, port: e.port, n: idle },
    120_000,
  );
  if (opened.failed > 0) say(`  ${e.name}: ${opened.failed} of ${idle} connects failed`);
  // A connect completes in the balancer's kernel; only the backends' count shows it relayed them.
  const relayed = await waitFor(
    `${idle} idle connections at the backends`,
    async () => {
      const n = (await bed.backendConnections()) - base;
      return n >= opened.held ? n : undefined;
    },
    { timeoutMs: 30_000, everyMs: 500 },
  ).catch(async () => (await bed.backendConnections()) - base);
  const rssAfterKiB = await settledRssKiB(run, e, `with ${opened.held} idle`);
  const connections = Math.min(await bed.agent.request<number>('held'), relayed);
  if (connections < idle) say(`  ${e.name}: only ${connections} of ${idle} connections held end to end`);
  await bed.agent.request('close');
  await waitFor('idle connections gone from the backends', async () => (await bed.backendConnections()) <= base, {
    timeoutMs: 20_000,
    everyMs: 200,
  }).catch(() => say(`  ${e.name}: backends still hold connections after close`));
  const kibPerConn = (rssAfterKiB - rssBeforeKiB) / connections;
  say(
    `idle ${e.name}: ${connections} connections end to end, VmRSS ${rssBeforeKiB} -> ${rssAfterKiB} KiB: ` +
      `${kibPerConn.toFixed(2)} KiB each`,
  );
  return { connections, rssBeforeKiB, rssAfterKiB, kibPerConn };
}

/** wrk at full speed for --duration; the rate, with the balancer's CPU and the machine's load noted. */
async function saturating(run: Run, e: Endpoint, extra: readonly string[], kind: 'ka' | 'nc'): Promise<number> {
  const { o } = run;
  const cpu0 = e.pid === undefined ? 0 : cpuTicks(e.pid);
  const m0 = machineTicks();
  const r = await wrk(run.procs, run.bed.client.ns, url(e), o.seconds, ['-c', String(o.connections), ...extra]);
  const m1 = machineTicks();
  if (r.errors !== undefined) run.say(`  ${e.name} ${kind}: ${r.errors}`);
  const samples = samplesOf(run, e.name);
  if (e.pid !== undefined) {
    samples.cpu[kind].ticks += cpuTicks(e.pid) - cpu0;
    samples.cpu[kind].requests += r.rate * o.seconds;
  }
  samples.busy[kind].push((m1.busy - m0.busy) / (m1.total - m0.total));
  return r.rate;
}

/** wrk --latency at the fixed rate the delay script sets, for --latency-duration. */
function latency(run: Run, e: Endpoint): Promise<WrkResult> {
  return wrk(run.procs, run.bed.client.ns, url(e), run.o.latencySeconds, [
    '-c',
    String(LATENCY_CONNECTIONS),
    '--latency',
    '-s',
    run.delayScript,
  ]);
}

/** One stream for --bulk-seconds; Gbit/s as the sink timed it. */
async function bulk(run: Run, e: Endpoint): Promise<number> {
  const { bed, o } = run;
  const seen = bed.sink.events.length;
  const cpu0 = e.pid === undefined ? 0 : cpuTicks(e.pid);
  const start = performance.now();
  const sent = await bed.agent.request<{ bytes: number }>(
    'send',
    { host: e.ip, port: e.bulkPort, seconds: o.bulkSeconds },
    (o.bulkSeconds + 30) * 1000,
  );
  // Is the balancer the bottleneck? Near 100% of a core means it is (one thread relays).
  if (e.pid !== undefined) {
    samplesOf(run, e.name).bulkCore.push(((cpuTicks(e.pid) - cpu0) * 10) / (performance.now() - start));
  }
  // vipd's TCP health checks of the sink connect and close: streams of 0 bytes, skipped.
  const got = await waitFor(
    'the sink to report',
    () => bed.sink.events.slice(seen).find((m: AgentMessage) => m.event === 'bulk' && (m.bytes as number) > 0),
    { timeoutMs: 10_000, everyMs: 100 },
  );
  const bytes = got.bytes as number;
  // The naive pipe proxy destroys its upstream on the client's close and may cut the tail.
  if (bytes !== sent.bytes) run.say(`  ${e.name} bulk: sink got ${bytes} of ${sent.bytes} bytes sent`);
  return (bytes * 8) / ((got.ms as number) * 1e6);
}

/**
 * `run.storm` TLS clients started at once through a target (to the backends' TLS frontends), held
 * until all have completed their handshakes, with the balancer's CPU over that time; then closed,
 * and waited for until the backends hold none of them.
 */
async function storm(run: Run, e: Endpoint): Promise<StormResult> {
  const { bed, say } = run;
  const base = await bed.backendConnections(TLS_PORT);
  const cpu0 = e.pid === undefined ? 0 : cpuNs(e.pid);
  const r = await bed.agent.request<StormResult>('storm', { host: e.ip, port: e.stormPort, n: run.storm }, 90_000);
  const samples = samplesOf(run, e.name);
  if (e.pid !== undefined) {
    samples.stormCpu.ns += cpuNs(e.pid) - cpu0;
    samples.stormCpu.connections += r.established;
  }
  samples.stormFailed += r.failed;
  if (r.failed > 0) say(`  ${e.name} storm: ${r.failed} of ${run.storm} clients failed`);
  await bed.agent.request('stormClose');
  await waitFor(
    'storm connections gone from the backends',
    async () => (await bed.backendConnections(TLS_PORT)) <= base,
    { timeoutMs: 20_000, everyMs: 200 },
  ).catch(() => say(`  ${e.name}: backends still hold storm connections after close`));
  return r;
}

const row = (values: ReadonlyMap<Target, number>, digits: number) =>
  [...values].map(([t, v]) => `${t} ${v.toFixed(digits)}`).join(', ');

/** Each figure for every target back to back, the first target rotating with `round`. */
export async function runRound(run: Run, round: number): Promise<void> {
  const {
    bed: { endpoints },
    o,
    say,
  } = run;
  const order = endpoints.map((_, i) => endpoints[(i + round) % endpoints.length] as Endpoint);
  const tag = `round ${round + 1}/${o.rounds}`;
  const ka = new Map<Target, number>();
  for (const e of order) ka.set(e.name, await saturating(run, e, [], 'ka'));
  say(`${tag} keep-alive req/s: ${row(ka, 0)}`);
  const nc = new Map<Target, number>();
  for (const e of order) nc.set(e.name, await saturating(run, e, ['-H', 'Connection: close'], 'nc'));
  say(`${tag} new-conn req/s: ${row(nc, 0)}`);
  const lat = new Map<Target, WrkResult>();
  for (const e of order) lat.set(e.name, await latency(run, e));
  const p50p99 = [...lat].map(([t, r]) => `${t} ${fmtUs(r.latencyUs.get(50))}/${fmtUs(r.latencyUs.get(99))}`);
  say(`${tag} latency p50/p99 µs at ~${o.latencyRate} req/s: ${p50p99.join(', ')}`);
  const gbit = new Map<Target, number>();
  for (const e of order) gbit.set(e.name, await bulk(run, e));
  say(`${tag} bulk Gbit/s: ${row(gbit, 2)}`);
  const storms = new Map<Target, StormResult>();
  if (run.storm > 0) {
    for (const e of order) storms.set(e.name, await storm(run, e));
    const ms = [...storms].map(
      ([t, r]) => `${t} ${r.allMs.toFixed(0)} (${r.handshakeP50Ms.toFixed(0)}/${r.handshakeP99Ms.toFixed(0)})`,
    );
    say(`${tag} storm of ${run.storm}, ms to all established (handshake p50/p99): ${ms.join(', ')}`);
  }

  const direct = lat.get('direct');
  for (const e of endpoints) {
    const s = samplesOf(run, e.name);
    s.keepAlive.push(ka.get(e.name) as number);
    s.newConn.push(nc.get(e.name) as number);
    s.bulkGbit.push(gbit.get(e.name) as number);
    const st = storms.get(e.name);
    if (st !== undefined) {
      s.stormMs.push(st.allMs);
      s.stormHandshakeP50Ms.push(st.handshakeP50Ms);
      s.stormHandshakeP99Ms.push(st.handshakeP99Ms);
    }
    const l = lat.get(e.name) as WrkResult;
    s.latencyRate.push(l.rate);
    for (const p of PERCENTILES) {
      const v = l.latencyUs.get(p) ?? NaN;
      push(s.latency, p, v);
      // Paired with direct's run of the same round, seconds apart.
      push(s.added, p, v - (direct?.latencyUs.get(p) ?? NaN));
    }
  }
}
