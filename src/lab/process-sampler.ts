/**
 * What a set of processes costs while something happens to them: CPU and resident memory read
 * from /proc every 100 ms (utime + stime of /proc/PID/stat, VmRSS of /proc/PID/status), summed
 * over the set. The storm uses it on the managers of the nodes that may take over. The set is
 * asked for again at each sample, so a process that starts or exits meanwhile counts while alive.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcessCost {
  /** The busiest sample interval's CPU, in % of one core (so two busy cores read 200). */
  readonly peakCpuPercent: number;
  /** CPU time used over the whole sampling, in seconds. */
  readonly cpuSeconds: number;
  /** The largest resident memory seen, summed over the processes, in MiB. */
  readonly peakRssMiB: number;
}

let clockTicks: number | undefined;

/** The kernel's clock ticks per second (USER_HZ), in which /proc/PID/stat counts CPU time. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process, in ticks; undefined once it has exited. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from "state" (3) on
    return Number(f[11]) + Number(f[12]); // utime (14), stime (15)
  } catch {
    return undefined;
  }
}

function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

export class ProcessSampler {
  private last = new Map<number, number>();
  private lastAt = performance.now();
  private peakCpu = 0;
  private totalTicks = 0;
  private peakRss = 0;
  private stopped = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: () => readonly number[],
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /** Stops sampling (idempotent) and returns the figures. */
  stop(): ProcessCost {
    if (!this.stopped) {
      this.stopped = true;
      clearInterval(this.timer);
      this.sample();
    }
    const hz = ticksPerSecond();
    return {
      peakCpuPercent: Math.round(this.peakCpu),
      cpuSeconds: Math.round((this.totalTicks / hz) * 100) / 100,
      peakRssMiB: Math.round(this.peakRss / 102.4) / 10,
    };
  }

  private sample(): void {
    const now = performance.now();
    const ticks = new Map<number, number>();
    let used = 0;
    let rss = 0;
    for (const pid of this.pids()) {
      const t = cpuTicks(pid);
      if (t === undefined) continue;
      ticks.set(pid, t);
      used += t - (this.last.get(pid) ?? t); // a process first seen counts from now on
      rss += rssKiB(pid);
    }
    const seconds = (now - this.lastAt) / 1000;
    if (this.last.size > 0 && seconds > 0) {
      this.peakCpu = Math.max(this.peakCpu, (used / ticksPerSecond() / seconds) * 100);
    }
    this.totalTicks += used;
    this.peakRss = Math.max(this.peakRss, rss);
    this.last = ticks;
    this.lastAt = now;
  }
}
