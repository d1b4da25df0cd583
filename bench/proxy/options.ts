/** The bench's command line: `--rounds 3 ... --cores 1,2 --storm 1000 --no-pipe` (README.md lists them). */

export interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly latencySeconds: number;
  readonly connections: number;
  readonly latencyRate: number;
  readonly bulkSeconds: number;
  readonly idle: number;
  readonly pipe: boolean;
  /** Core counts, ascending: for each, a HAProxy and a vipd balancer with that many threads and CPUs. */
  readonly cores: readonly number[];
  /** TLS clients connecting at once in the reconnect storm; 0: no storm. */
  readonly storm: number;
}

function numberArg(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return v;
}

/** `--cores 1,2`: distinct counts from 1 to 64 (proxy.threads' range), ascending. */
function coresArg(fallback: readonly number[]): number[] {
  const i = process.argv.indexOf('--cores');
  if (i < 0) return [...fallback];
  const list = (process.argv[i + 1] ?? '').split(',').map((x) => Number(x.trim()));
  if (list.length === 0 || list.some((c) => !Number.isInteger(c) || c < 1 || c > 64)) {
    throw new Error('--cores must be a comma-separated list of core counts from 1 to 64, e.g. 1,2');
  }
  return [...new Set(list)].sort((a, b) => a - b);
}

export function options(): Options {
  return {
    rounds: numberArg('rounds', 3, 1, 100),
    seconds: numberArg('duration', 2, 1, 600),
    latencySeconds: numberArg('latency-duration', 3, 1, 600),
    connections: numberArg('connections', 50, 1, 10_000),
    latencyRate: numberArg('latency-rate', 1000, 10, 100_000),
    bulkSeconds: numberArg('bulk-seconds', 2, 1, 600),
    idle: numberArg('idle', 10_000, 1, 25_000),
    pipe: !process.argv.includes('--no-pipe'),
    cores: coresArg([1, 2]),
    storm: numberArg('storm', 1000, 0, 25_000),
  };
}
