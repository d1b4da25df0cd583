/** The tables printed at the end: raw figures, the cost side, and vipd against HAProxy at each core count. */
import { LATENCY_CONNECTIONS, type Target } from './network';
import type { Options } from './options';
import { median, PERCENTILES, type Samples } from './samples';

export type Say = (line: string) => void;

function fmtNum(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

export function fmtUs(us: number | undefined): string {
  return us === undefined || !Number.isFinite(us) ? '-' : us.toFixed(0);
}

/** "median (min-max)" of a figure's rounds. */
function spread(xs: readonly number[], digits: number): string {
  if (xs.length < 2) return fmtNum(median(xs), digits);
  return `${fmtNum(median(xs), digits)} (${fmtNum(Math.min(...xs), digits)}-${fmtNum(Math.max(...xs), digits)})`;
}

/** A table line: the first cell left-aligned to `width`, the others right-aligned to theirs. */
function line(first: [string, number], ...cells: Array<[string, number]>): string {
  return first[0].padEnd(first[1]) + cells.map(([text, width]) => text.padStart(width)).join('');
}

/** The first column of the raw and cost tables: a target's name. */
const TARGET_WIDTH = 11;

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '-');
/** µs of CPU per request, from 100 Hz ticks. */
const perReq = (c: { ticks: number; requests: number }) => (c.requests > 0 ? (c.ticks * 10_000) / c.requests : NaN);
/** µs of CPU per storm connection, from ns. */
const perStormConn = (c: { ns: number; connections: number }) =>
  c.connections > 0 ? c.ns / 1000 / c.connections : NaN;

export function report(
  out: Say,
  o: Options,
  results: ReadonlyMap<Target, Samples>,
  delayMs: number,
  idle: number,
  storm: number,
): void {
  rawFigures(out, o, results, delayMs, storm);
  costs(out, results, idle, storm);
  versusHaproxy(out, o, results, idle, storm);
}

function rawFigures(out: Say, o: Options, results: ReadonlyMap<Target, Samples>, delayMs: number, storm: number): void {
  // The storm's columns: ms until all were established, and the clients' median and p99 handshakes.
  const stormCells = (a: string, b: string): Array<[string, number]> =>
    storm > 0
      ? [
          [a, 20],
          [b, 19],
        ]
      : [];
  out('');
  out(
    `=== raw figures, median (min-max) of ${o.rounds} rounds: wrk -t1 -c${o.connections} -d${o.seconds}s; ` +
      `latency wrk -c${LATENCY_CONNECTIONS} -d${o.latencySeconds}s, ${delayMs} ms between requests per connection; ` +
      `bulk one stream ${o.bulkSeconds}s` +
      (storm > 0 ? `; storm ${storm} TLS clients at once` : ''),
  );
  out(
    line(
      ['target', TARGET_WIDTH],
      ['keep-alive req/s', 24],
      ['new-conn req/s', 22],
      ['bulk Gbit/s', 20],
      ['lat req/s', 10],
      ...PERCENTILES.map((p): [string, number] => [`p${p} µs`, 8]),
      ...stormCells('storm ms to all', 'handshake p50/99'),
    ),
  );
  for (const [t, s] of results) {
    out(
      line(
        [t, TARGET_WIDTH],
        [spread(s.keepAlive, 0), 24],
        [spread(s.newConn, 0), 22],
        [spread(s.bulkGbit, 2), 20],
        [fmtNum(median(s.latencyRate), 0), 10],
        ...PERCENTILES.map((p): [string, number] => [fmtUs(median(s.latency.get(p) ?? [])), 8]),
        ...stormCells(
          spread(s.stormMs, 0),
          `${fmtNum(median(s.stormHandshakeP50Ms), 0)}/${fmtNum(median(s.stormHandshakeP99Ms), 0)} ms`,
        ),
      ),
    );
  }
  const failed = [...results].filter(([, s]) => s.stormFailed > 0);
  if (failed.length > 0) {
    out(`storm clients failed (all rounds): ${failed.map(([t, s]) => `${t} ${s.stormFailed}`).join(', ')}`);
  }
}

function costs(out: Say, results: ReadonlyMap<Target, Samples>, idle: number, storm: number): void {
  const stormCell = (text: string): Array<[string, number]> => (storm > 0 ? [[text, 19]] : []);
  // On two cores, wrk, three backends and the balancer share the CPUs (see "machine busy"), so a
  // rate is also a share of the machine; the balancer's CPU per request (user + system, including
  // the kernel's TCP work done in its syscalls) is the figure that shows its cost by itself.
  out('');
  out(
    line(
      ['target', TARGET_WIDTH],
      ['CPU µs/req keep-alive', 23],
      ['new-conn', 10],
      ['CPU in bulk', 13],
      ['machine busy keep-alive', 25],
      ['new-conn', 10],
      [`VmRSS KiB before -> with ${idle} idle`, 36],
      ...stormCell('CPU µs/storm conn'),
    ),
  );
  for (const [t, s] of results) {
    const rss = s.idle === undefined ? '-' : `${s.idle.rssBeforeKiB} -> ${s.idle.rssAfterKiB}`;
    out(
      line(
        [t, TARGET_WIDTH],
        [fmtNum(perReq(s.cpu.ka), 1), 23],
        [fmtNum(perReq(s.cpu.nc), 1), 10],
        [pct(median(s.bulkCore)), 13],
        [pct(median(s.busy.ka)), 25],
        [pct(median(s.busy.nc)), 10],
        [rss, 36],
        ...stormCell(fmtNum(perStormConn(s.stormCpu), 1)),
      ),
    );
  }
}

interface Row {
  readonly name: string;
  readonly higherBetter: boolean;
  readonly get: (s: Samples | undefined) => number;
  readonly digits: number;
}

const FIGURE_WIDTH = 32;
const BETTER_WIDTH = 8;
/** Per core count: HAProxy, vipd, ratio. */
const CORE_WIDTHS = [10, 10, 9] as const;
const PIPE_WIDTH = 10;

/**
 * One row per figure; per core count, HAProxy's and vipd's medians and the ratio, oriented so that
 * >= 1.00x means vipd is at least as good; the naive pipe (one core) last when it ran.
 */
function versusHaproxy(out: Say, o: Options, results: ReadonlyMap<Target, Samples>, idle: number, storm: number): void {
  const rows: Row[] = [
    { name: 'keep-alive req/s', higherBetter: true, get: (s) => median(s?.keepAlive ?? []), digits: 0 },
    { name: 'new connections/s', higherBetter: true, get: (s) => median(s?.newConn ?? []), digits: 0 },
    { name: 'bulk Gbit/s (one stream)', higherBetter: true, get: (s) => median(s?.bulkGbit ?? []), digits: 2 },
    { name: 'p50 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(50) ?? []), digits: 0 },
    { name: 'p99 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(99) ?? []), digits: 0 },
    { name: `KiB per idle conn (${idle})`, higherBetter: false, get: (s) => s?.idle?.kibPerConn ?? NaN, digits: 2 },
    { name: 'CPU µs/req keep-alive', higherBetter: false, get: (s) => (s ? perReq(s.cpu.ka) : NaN), digits: 1 },
    { name: 'CPU µs/req new connection', higherBetter: false, get: (s) => (s ? perReq(s.cpu.nc) : NaN), digits: 1 },
  ];
  if (storm > 0) {
    rows.push(
      { name: `storm ms to all (${storm} TLS)`, higherBetter: false, get: (s) => median(s?.stormMs ?? []), digits: 0 },
      {
        name: 'CPU µs per storm connection',
        higherBetter: false,
        get: (s) => (s ? perStormConn(s.stormCpu) : NaN),
        digits: 1,
      },
    );
  }
  const p = results.get('pipe@1');
  const pipeCell = (text: string): Array<[string, number]> => (p === undefined ? [] : [[text, PIPE_WIDTH]]);
  const [hw, vw, rw] = CORE_WIDTHS;
  out('');
  out(
    '=== vipd vs HAProxy 2.6 (mode tcp) at equal cores: HAProxy nbthread c, vipd proxy.threads c, each pinned ' +
      `to c CPUs (taskset); same namespaces, same backends, one run (medians of ${o.rounds} rounds)`,
  );
  out(
    line(
      ['', FIGURE_WIDTH + BETTER_WIDTH],
      ...o.cores.map((c): [string, number] => [`--- ${c} core${c === 1 ? '' : 's'} ---`, hw + vw + rw]),
    ),
  );
  out(
    line(
      ['figure', FIGURE_WIDTH],
      ['better', BETTER_WIDTH],
      ...o.cores.flatMap(
        (): Array<[string, number]> => [
          ['HAProxy', hw],
          ['vipd', vw],
          ['ratio*', rw],
        ],
      ),
      ...pipeCell('pipe@1'),
    ),
  );
  for (const r of rows) {
    const cells = o.cores.flatMap((c): Array<[string, number]> => {
      const hv = r.get(results.get(`haproxy@${c}`));
      const vv = r.get(results.get(`vipd@${c}`));
      // Oriented so that >= 1.0 means vipd is at least as good: vipd/HAProxy when higher is better,
      // HAProxy/vipd when lower is better (latency, memory, CPU). n/a when a value is not positive.
      const ratio = hv > 0 && vv > 0 ? (r.higherBetter ? vv / hv : hv / vv) : NaN;
      return [
        [fmtNum(hv, r.digits), hw],
        [fmtNum(vv, r.digits), vw],
        [Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a', rw],
      ];
    });
    out(
      line(
        [r.name, FIGURE_WIDTH],
        [r.higherBetter ? 'higher' : 'lower', BETTER_WIDTH],
        ...cells,
        ...pipeCell(fmtNum(r.get(p), r.digits)),
      ),
    );
  }
  out('* ratio >= 1.00x: vipd at least as good as HAProxy at the same core count. Higher-is-better rows:');
  out('  vipd/HAProxy; lower-is-better rows (latency, memory, CPU): HAProxy/vipd. Added latency: through-balancer');
  out('  minus direct, same round, per percentile.');
}
