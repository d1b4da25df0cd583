/** The tables printed at the end: raw figures, the cost side, and vipd against HAProxy. */
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

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '-');
/** µs of CPU per request, from 100 Hz ticks. */
const perReq = (c: { ticks: number; requests: number }) => (c.requests > 0 ? (c.ticks * 10_000) / c.requests : NaN);

export function report(
  out: Say,
  o: Options,
  results: ReadonlyMap<Target, Samples>,
  delayMs: number,
  idle: number,
): void {
  rawFigures(out, o, results, delayMs);
  costs(out, results, idle);
  versusHaproxy(out, o, results, idle);
}

function rawFigures(out: Say, o: Options, results: ReadonlyMap<Target, Samples>, delayMs: number): void {
  out('');
  out(
    `=== raw figures, median (min-max) of ${o.rounds} rounds: wrk -t1 -c${o.connections} -d${o.seconds}s; ` +
      `latency wrk -c${LATENCY_CONNECTIONS} -d${o.latencySeconds}s, ${delayMs} ms between requests per connection; ` +
      `bulk one stream ${o.bulkSeconds}s`,
  );
  out(
    line(
      ['target', 8],
      ['keep-alive req/s', 24],
      ['new-conn req/s', 22],
      ['bulk Gbit/s', 20],
      ['lat req/s', 10],
      ...PERCENTILES.map((p): [string, number] => [`p${p} µs`, 8]),
    ),
  );
  for (const [t, s] of results) {
    out(
      line(
        [t, 8],
        [spread(s.keepAlive, 0), 24],
        [spread(s.newConn, 0), 22],
        [spread(s.bulkGbit, 2), 20],
        [fmtNum(median(s.latencyRate), 0), 10],
        ...PERCENTILES.map((p): [string, number] => [fmtUs(median(s.latency.get(p) ?? [])), 8]),
      ),
    );
  }
}

function costs(out: Say, results: ReadonlyMap<Target, Samples>, idle: number): void {
  // On two cores, wrk, three backends and the balancer share the CPUs (see "machine busy"), so a
  // rate is also a share of the machine; the balancer's CPU per request (user + system, including
  // the kernel's TCP work done in its syscalls) is the figure that shows its cost by itself.
  out('');
  out(
    line(
      ['target', 8],
      ['CPU µs/req keep-alive', 23],
      ['new-conn', 10],
      ['CPU in bulk', 13],
      ['machine busy keep-alive', 25],
      ['new-conn', 10],
      [`VmRSS KiB before -> with ${idle} idle`, 36],
    ),
  );
  for (const [t, s] of results) {
    const rss = s.idle === undefined ? '-' : `${s.idle.rssBeforeKiB} -> ${s.idle.rssAfterKiB}`;
    out(
      line(
        [t, 8],
        [fmtNum(perReq(s.cpu.ka), 1), 23],
        [fmtNum(perReq(s.cpu.nc), 1), 10],
        [pct(median(s.bulkCore)), 13],
        [pct(median(s.busy.ka)), 25],
        [pct(median(s.busy.nc)), 10],
        [rss, 36],
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

function versusHaproxy(out: Say, o: Options, results: ReadonlyMap<Target, Samples>, idle: number): void {
  const rows: Row[] = [
    { name: 'keep-alive req/s', higherBetter: true, get: (s) => median(s?.keepAlive ?? []), digits: 0 },
    { name: 'new connections/s', higherBetter: true, get: (s) => median(s?.newConn ?? []), digits: 0 },
    { name: 'bulk Gbit/s (one stream)', higherBetter: true, get: (s) => median(s?.bulkGbit ?? []), digits: 2 },
    { name: 'p50 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(50) ?? []), digits: 0 },
    { name: 'p99 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(99) ?? []), digits: 0 },
    { name: `KiB per idle conn (${idle})`, higherBetter: false, get: (s) => s?.idle?.kibPerConn ?? NaN, digits: 2 },
  ];
  const h = results.get('haproxy');
  const v = results.get('vipd');
  const p = results.get('pipe');
  const pipeCell = (text: string): Array<[string, number]> => (p === undefined ? [] : [[text, 11]]);
  out('');
  out(
    '=== vipd vs HAProxy 2.6 (mode tcp, nbthread 1): same namespaces, same backends, one run ' +
      `(medians of ${o.rounds} rounds)`,
  );
  out(
    line(['figure', 28], ['better', 8], ['HAProxy', 10], ['vipd', 10], ['vipd ratio*', 13], ...pipeCell('node pipe')),
  );
  for (const r of rows) {
    const hv = r.get(h);
    const vv = r.get(v);
    // Oriented so that >= 1.0 means vipd is at least as good: vipd/HAProxy when higher is better,
    // HAProxy/vipd when lower is better (latency, memory). n/a when a value is not positive.
    const ratio = hv > 0 && vv > 0 ? (r.higherBetter ? vv / hv : hv / vv) : NaN;
    out(
      line(
        [r.name, 28],
        [r.higherBetter ? 'higher' : 'lower', 8],
        [fmtNum(hv, r.digits), 10],
        [fmtNum(vv, r.digits), 10],
        [Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a', 13],
        ...pipeCell(fmtNum(r.get(p), r.digits)),
      ),
    );
  }
  out('* vipd ratio >= 1.00x: vipd at least as good as HAProxy. Higher-is-better rows: vipd/HAProxy; lower-is-better');
  out(
    '  rows (latency, memory): HAProxy/vipd. Added latency: through-balancer minus direct, same round, ' +
      'per percentile.',
  );
}
