/** What /proc says about a process and the machine: memory, CPU time, how busy every core was. */
import { readdirSync, readFileSync } from 'node:fs';

/** VmRSS in KiB, after checking the pid is the process we mean (not `ip`, `setpriv` or `prlimit`). */
export function rssKiB(pid: number, comm: string): number {
  const actual = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  if (actual !== comm) throw new Error(`pid ${pid} is "${actual}", not ${comm}: measuring the wrong process`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** CPU time (user + system, every thread) a process has used, in clock ticks (100 Hz on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
  return Number(fields[11]) + Number(fields[12]); // utime, stime: the 14th and 15th
}

/**
 * CPU time (ns) the process's live threads have run, summed from /proc/PID/task/TID/schedstat: the
 * same sum_exec_runtime /proc/PID/stat reports, to the nanosecond instead of the 10 ms tick, for
 * figures too short for ticks (a storm uses tens of ms of a balancer's CPU). A thread that exits
 * between two reads takes its time with it: the balancers' threads live as long as they do.
 */
export function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited since the listing
    }
  }
  return ns;
}

/** Busy and total jiffies of the whole machine (every core), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - (cpu[3] ?? 0) - (cpu[4] ?? 0), total }; // idle and iowait are not busy
}
