/**
 * vipd's TCP balancer side by side with HAProxy 2.6 (Debian's package, `mode tcp`) at equal core
 * counts and, as a reference, a naive `socket.pipe` proxy: the same namespaces, the same backends,
 * one run, and one table of vipd/HAProxy ratios per core count at the end. As root, about 4 minutes:
 *
 *   npm run bench:proxy            (= npm run build && node dist/bench/proxy/main.js)
 *   node dist/bench/proxy/main.js [--rounds 3] [--duration 2] [--connections 50] [--latency-rate 1000]
 *                                 [--latency-duration 3] [--bulk-seconds 2] [--idle 10000]
 *                                 [--cores 1,2] [--storm 1000] [--no-pipe]
 *
 * The network is a Lab (src/lab/netns.ts) made for the run and deleted at its end: one bridge and
 * five namespaces, client 10.77.0.1, lb 10.77.0.2, b1-b3 10.77.0.3-5 (network.ts). No traffic
 * leaves them (bed.ts).
 * - b1-b3: one HAProxy each answering HTTP itself (`http-request return`, haproxy-config.ts), so a
 *   backend costs as little CPU as possible and the balancer is what is measured, and HTTPS (a
 *   self-signed certificate made at start) for the reconnect storm; b1 also runs a Node bulk sink
 *   (children/sink.ts).
 * - lb: the balancers, each its own process on its own ports (HAProxy, children/vipd.ts,
 *   children/pipe.ts), all started at the beginning; only the one being measured carries traffic
 *   (the others just run their health checks). For each --cores count c, a HAProxy with nbthread c
 *   and a vipd with proxy.threads c, each pinned with taskset to CPUs 0 to c - 1 (every thread it
 *   has); the pipe at one core only.
 * - client: wrk (wrk.ts), and a Node agent (children/client.ts) for the bulk stream, the idle
 *   connections, the storm and readiness probes.
 *
 * Targets: direct (client to b1, no balancer: the baseline for added latency), then each balancer
 * at each core count, e.g. haproxy@1, vipd@1, haproxy@2, vipd@2, pipe@1 (measure.ts).
 * - idle memory, first, while every balancer is fresh: --idle connections opened through it and
 *   left silent; once the backends count them ESTABLISHED (end to end), the balancer's VmRSS growth
 *   divided by the count, each VmRSS read once it has settled.
 * - then --rounds rounds of: keep-alive (wrk -c --connections, connections reused: relay only),
 *   new connections (the same with "Connection: close": accept + connect + close per request),
 *   latency (wrk --latency at a fixed moderate rate: wrk's Lua delay() spaces the requests of 10
 *   connections to --latency-rate in total, so it measures a relayed request, not queueing; added
 *   latency = through-balancer percentile minus direct's in the same round), bulk (one TCP stream
 *   from the client agent to b1's sink for --bulk-seconds, timed by the sink from its first byte
 *   to the FIN), and the storm (--storm TLS clients at once: the time until all are established,
 *   and the balancer's CPU per connection). Each figure is taken for every target back to back and
 *   the first target rotates, because this machine's speed drifts between runs; medians are
 *   reported (samples.ts, report.ts).
 *
 * Every child process is spawned as `ip netns exec NS setpriv --pdeathsig KILL prlimit
 * --nofile=N:N [taskset -c CPUS] CMD` (processes.ts): each of those execs in place, so the child's
 * pid is CMD's (the pid whose RSS is read); the death signal kills it if this driver dies without
 * cleaning up; and the fd limit covers 10,000 connections (20,000 sockets in a balancer; where the
 * hard limit cannot be raised, as in a container without CAP_SYS_RESOURCE, the idle count shrinks
 * to fit and says so). Node children also exit when their stdin closes. Needs root, `haproxy`,
 * `wrk`, `ss`, `setpriv`, `prlimit` and `taskset` (util-linux).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { Lab } from '../../src/lab/netns';
import { sleep } from '../../src/lab/wait';
import { startBed } from './bed';
import { idleMemory, type Run, runRound } from './measure';
import { type Balancer, FD_MARGIN, LATENCY_CONNECTIONS, type Target } from './network';
import { options } from './options';
import { command, descriptorLimit, Processes } from './processes';
import { report, type Say } from './report';
import { Samples } from './samples';

/** Root, and every tool the bench runs; a missing one is named with the package that has it. */
async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const tools = [
    ['haproxy', '-v'],
    ['wrk', '-v'],
    ['ss', '-V'],
    ['setpriv', '--version'],
    ['prlimit', '--version'],
    ['taskset', '--version'],
  ];
  for (const [cmd = '', arg = ''] of tools) {
    const pkg = cmd === 'ss' ? 'iproute2' : ['setpriv', 'prlimit', 'taskset'].includes(cmd) ? 'util-linux' : cmd;
    // wrk -v prints its version and exits 1, so only a missing binary counts.
    await command(cmd, [arg]).catch((err: Error) => {
      if (/ENOENT/.test(err.message)) throw new Error(`${cmd} not found: apt-get install ${pkg}`);
    });
  }
}

/**
 * A self-signed certificate (EC P-256, as src/lab/stand-in-apiserver.ts makes) and its key in one
 * PEM, for the backends' TLS frontends; its path.
 */
async function stormPem(dir: string): Promise<string> {
  const pems = await generate([{ name: 'commonName', value: 'kube-apiserver' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', serverAuth: true },
    ],
  });
  const path = join(dir, 'storm.pem');
  writeFileSync(path, `${pems.cert.trim()}\n${pems.private.trim()}\n`, { mode: 0o600 });
  return path;
}

async function main(): Promise<void> {
  const o = options();
  const t0 = Date.now();
  const out: Say = (line) => process.stdout.write(`${line}\n`);
  const say: Say = (line) => out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  await preflight();
  // Each balancer of c cores is pinned to CPUs 0 to c - 1: there must be that many.
  const cpus = Number((await command('nproc', [])).trim());
  const tooMany = o.cores.filter((c) => c > cpus);
  if (tooMany.length > 0) throw new Error(`--cores ${tooMany.join(',')}: this machine has ${cpus} CPUs (nproc)`);

  const nofile = await descriptorLimit();
  // A balancer holds two sockets per relayed connection, plus its listeners, checks and Node's own.
  const idle = Math.min(o.idle, Math.floor((nofile - FD_MARGIN) / 2));
  if (idle < o.idle) {
    say(`descriptor limit ${nofile} (no CAP_SYS_RESOURCE to raise it): ${idle} idle connections instead of ${o.idle}`);
  }
  // The same for the storm's connections, relayed at once.
  const storm = Math.min(o.storm, Math.floor((nofile - FD_MARGIN) / 2));
  if (storm < o.storm) {
    say(`descriptor limit ${nofile} (no CAP_SYS_RESOURCE to raise it): a storm of ${storm} instead of ${o.storm}`);
  }

  const lab = new Lab('vipd-bench');
  const procs = new Processes(nofile);
  const dir = mkdtempSync(join(tmpdir(), 'vipd-bench-proxy-'));
  // On a signal the Lab deletes its namespaces and re-raises it; the finally below never runs.
  const onSignal = () => {
    procs.killAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const delayMs = Math.max(1, Math.round((LATENCY_CONNECTIONS * 1000) / o.latencyRate));
  const delayScript = join(dir, 'delay.lua');
  // wrk waits delay() ms before each next request on a connection: a fixed, unsaturated rate.
  writeFileSync(delayScript, `function delay()\n  return ${delayMs}\nend\n`);
  // HAProxy and vipd at every core count; the naive pipe at one core only.
  const balancers: Balancer[] = o.cores.flatMap((cores): Balancer[] => [
    { kind: 'haproxy', cores },
    { kind: 'vipd', cores },
  ]);
  if (o.pipe) balancers.push({ kind: 'pipe', cores: 1 });
  const results = new Map<Target, Samples>();
  try {
    const pem = storm > 0 ? await stormPem(dir) : undefined;
    const bed = await startBed(lab, procs, dir, nofile, balancers, pem, say);
    for (const e of bed.endpoints) results.set(e.name, new Samples());
    const run: Run = { o, procs, bed, results, idle, storm, delayScript, say };

    // Idle memory first, while every balancer is fresh (no traffic has grown its heap).
    await sleep(1000); // let the balancers finish starting (first health checks, lazy initialisation)
    for (const e of bed.endpoints) {
      if (e.pid !== undefined) (results.get(e.name) as Samples).idle = await idleMemory(run, e);
    }
    // Traffic, interleaved: each figure for every target back to back, in rounds. The machine's
    // speed drifts by tens of percent over a minute (shared host), so targets are compared within
    // seconds of each other, the starting target rotates, and medians are kept.
    for (let round = 0; round < o.rounds; round++) await runRound(run, round);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await procs.stopAll();
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  report(out, o, results, delayMs, idle, storm);
  say('done');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
