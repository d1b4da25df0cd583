/**
 * The election's loss curves, from the simulator (test/helpers/sim-cluster.ts: the real state
 * machine, a simulated network): for each loss rate, how often the VIP moves although the master is
 * alive (per 10 minutes), and how long a crash takes to be seen and the VIP to move. The same
 * figures on real daemons in namespaces come from `npm run bench:failover` (its loss trials).
 *
 *   npm run bench:election [-- --minutes 10 --runs 6 --crashes 40 --rates 0,5,10,20,30,40,50]
 *
 * Loss is independent per message and per link, on every link, both ways. "Takeovers" are moves of
 * the VIP to another member; "re-claims" are the master losing its lease and taking the VIP again
 * itself (the address leaves its interface for a moment). Both count as false when nobody failed.
 */
import { SimCluster } from '../test/helpers/sim-cluster';

interface Args {
  minutes: number;
  runs: number;
  crashes: number;
  rates: number[];
  members: number;
}

function parseArgs(argv: readonly string[]): Args {
  const get = (name: string, fallback: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : fallback;
  };
  return {
    minutes: Number(get('minutes', '10')),
    runs: Number(get('runs', '6')),
    crashes: Number(get('crashes', '40')),
    rates: get('rates', '0,5,10,20,30,40,50').split(',').map(Number),
    members: Number(get('members', '3')),
  };
}

function settled(seed: number, members: number): SimCluster {
  const sim = new SimCluster({ members, seed, delayMs: 0.2, jitterMs: 0.3, timerLatenessMs: 2, check: false });
  sim.start();
  sim.run(3000);
  return sim;
}

/** VIP moves to another member, and re-claims by the same one, while nobody failed. */
function falseMoves(
  rate: number,
  minutes: number,
  seed: number,
  members: number,
): { takeovers: number; reclaims: number } {
  const sim = settled(seed, members);
  const start = sim.holderHistory.length;
  sim.dropRate = rate / 100;
  sim.run(minutes * 60_000);
  let takeovers = 0;
  let reclaims = 0;
  let last = sim.holderHistory[start - 1]?.holders[0];
  for (const h of sim.holderHistory.slice(start)) {
    const holder = h.holders[0];
    if (holder === undefined || h.holders.length !== 1) continue;
    if (holder !== last) takeovers += 1;
    else if (sim.holderHistory[sim.holderHistory.indexOf(h) - 1]?.holders.length === 0) reclaims += 1;
    last = holder;
  }
  return { takeovers, reclaims };
}

/** From a power loss of the master to another member holding the VIP, under `rate` loss that began a minute earlier. */
function detection(rate: number, seed: number, members: number): number | undefined {
  const sim = settled(seed, members);
  sim.dropRate = rate / 100;
  sim.run(60_000);
  const [master] = sim.masters();
  if (master === undefined) return undefined;
  sim.run(Math.floor((seed * 37) % 100)); // a random phase against the heartbeats
  sim.crash(master, true);
  return sim.runUntil(() => sim.activeHolders().some((h) => h !== master), 30_000);
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `simulated ${a.members}-member cluster, interval 100ms, deadAfter 3, maxDeadAfter 30; ` +
      `${a.runs} runs of ${a.minutes} min per rate, ${a.crashes} crashes per rate`,
  );
  out(
    `${'loss %'.padStart(7)}${'takeovers/10min'.padStart(17)}${'re-claims/10min'.padStart(17)}` +
      `${'detect p50 ms'.padStart(15)}${'p95 ms'.padStart(9)}${'max ms'.padStart(9)}`,
  );
  for (const rate of a.rates) {
    let takeovers = 0;
    let reclaims = 0;
    for (let run = 1; run <= a.runs; run += 1) {
      const r = falseMoves(rate, a.minutes, 1000 * rate + run, a.members);
      takeovers += r.takeovers;
      reclaims += r.reclaims;
    }
    const per10 = (n: number) => ((n / (a.runs * a.minutes)) * 10).toFixed(2);
    const times: number[] = [];
    for (let i = 1; i <= a.crashes; i += 1) {
      const t = detection(rate, 5000 + 100 * rate + i, a.members);
      if (t !== undefined) times.push(t);
    }
    times.sort((x, y) => x - y);
    out(
      `${String(rate).padStart(7)}${per10(takeovers).padStart(17)}${per10(reclaims).padStart(17)}` +
        `${quantile(times, 0.5).toFixed(0).padStart(15)}${quantile(times, 0.95).toFixed(0).padStart(9)}` +
        `${(times[times.length - 1] ?? NaN).toFixed(0).padStart(9)}`,
    );
  }
}

main();
