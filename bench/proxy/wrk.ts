/** wrk, the HTTP load generator: run in the client namespace, its output read back into figures. */
import { once } from 'node:events';
import type { Processes } from './processes';

export interface WrkResult {
  readonly rate: number;
  readonly errors: string | undefined;
  /** Latency percentiles in µs: 50, 75, 90, 99. */
  readonly latencyUs: ReadonlyMap<number, number>;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000 };

/** wrk in the client namespace, killed if it overruns its duration by 15 s. */
export async function wrk(
  procs: Processes,
  ns: string,
  url: string,
  seconds: number,
  extra: readonly string[],
): Promise<WrkResult> {
  const child = procs.spawn(ns, 'wrk', ['-t', '1', '-d', `${seconds}s`, ...extra, url]);
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 15) * 1000);
  await once(child, 'exit');
  clearTimeout(timer);
  return parseWrk(out, url);
}

/** The rate, the errors line and the latency percentiles (with --latency) of wrk's output. */
export function parseWrk(out: string, url: string): WrkResult {
  const latencyUs = new Map<number, number>();
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$/gm)) {
    latencyUs.set(Number(m[1]), Number(m[2]) * (UNIT_US[m[3] as string] ?? NaN));
  }
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rate === undefined) throw new Error(`wrk ${url} printed no rate:\n${out}`);
  return { rate: Number(rate), errors: /Socket errors:.*|Non-2xx.*/.exec(out)?.[0]?.trim(), latencyUs };
}
