/**
 * The lab's run as a picture: who held the VIP and when, and when the client's connects failed, on
 * one self-contained HTML page (inline SVG and CSS; no script, nothing fetched), so it opens from a
 * file and can be attached to an issue. The whole run on one time line, then a close-up of each
 * event at millisecond scale. A pure function of what the drill recorded (holder-log.ts,
 * client-log.ts, the outcomes of drill.ts): data in, HTML out; the span figures are exported for
 * test/timeline.test.ts. Hovering a bar shows its times (SVG <title>).
 */
import type { ProbeResult } from './client-log';
import type { Outcome } from './drill';
import { type HolderChange, holdersAt } from './holder-log';

/** One event of the drill. */
export interface TimelineEvent {
  /** What was done, e.g. "crash: the master's node dies (link cut, then every process killed)". */
  readonly label: string;
  /** Wall-clock ms when the fault began. */
  readonly at: number;
  /** A fault held for a while (a stall, one-way loss): when it was cleared. */
  readonly until?: number;
  /** Its figures in a line, e.g. "cp1 → cp2: VIP moved after 312 ms; client outage 410 ms". */
  readonly summary: string;
}

export interface TimelineInput {
  /** The page's heading, e.g. "vipd lab: vipd, interval 100ms, deadAfter 3". */
  readonly title: string;
  /** One lane each, in this order. */
  readonly nodes: readonly string[];
  /** The wall-clock ms the picture covers; anything outside is left out. */
  readonly start: number;
  readonly end: number;
  readonly holders: readonly HolderChange[];
  /** The client's connects to the VIP, in time order. */
  readonly probes: readonly ProbeResult[];
  readonly events: readonly TimelineEvent[];
}

/** A stretch of time [from, to), in wall-clock ms. */
export interface Span {
  readonly from: number;
  readonly to: number;
}

/** A stretch with other than one holder: none, or two and more (named). */
export interface HolderCountSpan extends Span {
  readonly holders: readonly string[];
}

/** A run of failed connects: from the last success before it to the first after (as ClientLog counts outages). */
export interface FailureSpan extends Span {
  readonly failed: number;
  /** Still failing at the end of the record. */
  readonly open: boolean;
}

/** Where each node held the VIP within [from, to]. */
export function holderSpans(
  log: readonly HolderChange[],
  nodes: readonly string[],
  from: number,
  to: number,
): Map<string, Span[]> {
  const spans = new Map<string, Span[]>(nodes.map((n) => [n, []]));
  const since = new Map<string, number>(holdersAt(log, from).map((n) => [n, from]));
  const close = (node: string, at: number) => {
    const start = since.get(node);
    if (start === undefined) return;
    since.delete(node);
    if (at > start) spans.get(node)?.push({ from: start, to: at });
  };
  for (const c of log) {
    if (c.t <= from) continue;
    if (c.t > to) break;
    for (const n of [...since.keys()]) if (!c.holders.includes(n)) close(n, c.t);
    for (const n of c.holders) if (!since.has(n)) since.set(n, c.t);
  }
  for (const n of [...since.keys()]) close(n, to);
  return spans;
}

/** The stretches within [from, to] when no node, or more than one, held the VIP. */
export function holderCountSpans(log: readonly HolderChange[], from: number, to: number): HolderCountSpan[] {
  const out: HolderCountSpan[] = [];
  let holders = holdersAt(log, from);
  let since = from;
  const close = (at: number) => {
    if (holders.length !== 1 && at > since) out.push({ from: since, to: at, holders });
  };
  for (const c of log) {
    if (c.t <= from) continue;
    if (c.t > to) break;
    close(c.t);
    holders = c.holders;
    since = c.t;
  }
  close(to);
  return out;
}

/** The client's failures within [from, to]; a run still on at the end closes there (`open`). */
export function failureSpans(probes: readonly ProbeResult[], from: number, to: number): FailureSpan[] {
  const out: FailureSpan[] = [];
  let lastOk: number | undefined;
  let run: { from: number; failed: number } | undefined;
  for (const p of probes) {
    if (p.t < from) continue;
    if (p.t > to) break;
    if (!p.ok) {
      run ??= { from: lastOk ?? p.t, failed: 0 };
      run.failed += 1;
    } else {
      if (run !== undefined) out.push({ from: run.from, to: p.t, failed: run.failed, open: false });
      run = undefined;
      lastOk = p.t;
    }
  }
  if (run !== undefined) out.push({ from: run.from, to, failed: run.failed, open: true });
  return out;
}

/** The page. */
export function renderTimeline(input: TimelineInput): string {
  const { start, end } = input;
  const figures = {
    holders: holderSpans(input.holders, input.nodes, start, end),
    counts: holderCountSpans(input.holders, start, end),
    failures: failureSpans(input.probes, start, end),
    probed: probedSpan(input.probes, start, end),
  };
  const events = [...input.events].sort((a, b) => a.at - b.at);
  const overview = chart(input.nodes, figures, {
    from: start,
    to: end,
    width: WIDTH,
    origin: start,
    axis: seconds,
    tip: (ms) => `${(ms / 1000).toFixed(2)} s`,
    markers: events.map((e, i) => ({ t: e.at, label: String(i + 1) })),
    bands: events.flatMap((e) => (e.until === undefined ? [] : [{ from: e.at, to: e.until }])),
  });
  const closeUps = events.map((e, i) => {
    const [from, to] = closeUpWindow(e, events[i + 1]?.at ?? end, input.holders, figures.failures, end);
    const svg = chart(input.nodes, figures, {
      from,
      to,
      width: WIDTH,
      origin: e.at,
      axis: offset,
      tip: (ms) => `${ms < 0 ? '−' : '+'}${Math.abs(ms)} ms`,
      markers: [{ t: e.at, label: String(i + 1) }, ...(e.until === undefined ? [] : [{ t: e.until, label: 'end' }])],
      bands: e.until === undefined ? [] : [{ from: e.at, to: e.until }],
    });
    return (
      `<section id="event-${i + 1}"><h3>${i + 1}. ${esc(e.label)}</h3>\n<p>${esc(e.summary)}</p>\n` + `${svg}</section>`
    );
  });
  const rows = events.map(
    (e, i) =>
      `<tr><td><a href="#event-${i + 1}">${i + 1}</a></td>` +
      `<td class="num">${seconds(e.at - start)}</td><td>${esc(e.label)}</td><td>${esc(e.summary)}</td></tr>`,
  );
  const begun = new Date(start)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${esc(input.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${esc(input.title)}</h1>`,
    `<p>Started ${begun}, ${seconds(end - start)} long. Who held the VIP, read from each node's kernel, and ` +
      "each connect of the client to the VIP (every 10 ms). The numbered lines are the drill's events; a " +
      'shaded band is a fault held for a while. Hover over a bar for its times.</p>',
    LEGEND,
    overview,
    '<table>',
    '<tr><th>#</th><th>at</th><th>event</th><th>what happened</th></tr>',
    ...rows,
    '</table>',
    '<h2>Each event, close up</h2>',
    '<p>From half a second before the event until the VIP and the client have settled. After a node death or ' +
      'a link cut, the node cut off may keep its copy of the VIP until its kernel lifetime ends (1 s): a second ' +
      'holder there is one no client can reach.</p>',
    ...closeUps,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

const WIDTH = 1100;
const LABEL_WIDTH = 90;
const LANE_HEIGHT = 18;
const LANE_GAP = 6;
const TOP = 22;
const BOTTOM = 22;
/** Room for the last tick's label. */
const RIGHT = 30;

const STYLE = [
  'body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1150px; }',
  'h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; margin-bottom: 0.2em; }',
  'table { border-collapse: collapse; margin: 1em 0; }',
  'td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }',
  'td.num { text-align: right; white-space: nowrap; }',
  'svg { display: block; margin: 0.5em 0 1em; }',
  'svg text { font: 11px system-ui, sans-serif; fill: #333; }',
  '.held { fill: #2e9e44; } .multi { fill: #d62728; } .none { fill: #f0a500; }',
  '.ok { fill: #cde9cf; } .fail { fill: #d62728; } .band { fill: #5a7bd6; fill-opacity: 0.12; }',
  '.lane { fill: #f4f4f4; } .grid { stroke: #ddd; } .marker { stroke: #444; stroke-dasharray: 3 2; }',
  '.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 14px; vertical-align: -1px; }',
].join('\n');

const LEGEND =
  '<p class="legend">' +
  '<span class="swatch" style="background:#2e9e44"></span>holds the VIP' +
  '<span class="swatch" style="background:#d62728"></span>two holders / the client\'s connects fail' +
  '<span class="swatch" style="background:#f0a500"></span>nobody holds the VIP' +
  '<span class="swatch" style="background:#cde9cf"></span>the client connects' +
  '<span class="swatch" style="background:rgba(90,123,214,0.25)"></span>a fault held</p>';

interface Figures {
  readonly holders: Map<string, Span[]>;
  readonly counts: readonly HolderCountSpan[];
  readonly failures: readonly FailureSpan[];
  readonly probed: Span | undefined;
}

interface ChartOptions {
  readonly from: number;
  readonly to: number;
  readonly width: number;
  /** Times are shown relative to this. */
  readonly origin: number;
  /** A time relative to `origin` as an axis label, and in a tooltip. */
  readonly axis: (ms: number) => string;
  readonly tip: (ms: number) => string;
  readonly markers: readonly { readonly t: number; readonly label: string }[];
  readonly bands: readonly Span[];
}

/** One SVG: a lane per node, one for the holder count, one for the client, clipped to [from, to]. */
function chart(nodes: readonly string[], f: Figures, o: ChartOptions): string {
  const plot = o.width - LABEL_WIDTH - RIGHT;
  const ms = Math.max(1, o.to - o.from);
  const x = (t: number) => LABEL_WIDTH + ((Math.min(o.to, Math.max(o.from, t)) - o.from) / ms) * plot;
  const rel = (t: number) => o.tip(t - o.origin);
  const lanes: { label: string; rects: string[] }[] = [];
  const rect = (s: Span, y: number, cls: string, tip: string) => {
    if (s.to < o.from || s.from > o.to) return undefined;
    const x0 = x(s.from);
    const w = Math.max(1, x(s.to) - x0); // a 10 ms blip stays visible on a two-minute line
    return (
      `<rect class="${cls}" x="${px(x0)}" y="${y}" width="${px(w)}" height="${LANE_HEIGHT}">` +
      `<title>${esc(tip)}</title></rect>`
    );
  };
  const laneY = (i: number) => TOP + i * (LANE_HEIGHT + LANE_GAP);
  const defined = (r: string | undefined): r is string => r !== undefined;
  nodes.forEach((n, i) => {
    lanes.push({
      label: n,
      rects: (f.holders.get(n) ?? [])
        .map((s) =>
          rect(
            s,
            laneY(i),
            'held',
            `${n} held the VIP from ${rel(s.from)} to ${rel(s.to)} (${duration(s.to - s.from)})`,
          ),
        )
        .filter(defined),
    });
  });
  lanes.push({
    label: 'holders',
    rects: f.counts
      .map((s) =>
        rect(
          s,
          laneY(nodes.length),
          s.holders.length === 0 ? 'none' : 'multi',
          `${s.holders.length === 0 ? 'nobody' : s.holders.join('+')} held the VIP from ${rel(s.from)} to ${rel(s.to)}` +
            ` (${duration(s.to - s.from)})`,
        ),
      )
      .filter(defined),
  });
  const clientY = laneY(nodes.length + 1);
  lanes.push({
    label: 'client',
    rects: [
      ...(f.probed === undefined ? [] : [rect(f.probed, clientY, 'ok', 'the client connects to the VIP')]),
      ...f.failures.map((s) =>
        rect(
          s,
          clientY,
          'fail',
          `the client's connects failed from ${rel(s.from)} to ` +
            `${rel(s.to)}: ${s.open ? 'still failing at the end, ' : ''}${duration(s.to - s.from)}, ` +
            `${s.failed} failed connect${s.failed === 1 ? '' : 's'}`,
        ),
      ),
    ].filter(defined),
  });
  const height = laneY(lanes.length) - LANE_GAP + BOTTOM;
  const bottom = laneY(lanes.length) - LANE_GAP;
  const ticks = tickTimes(o.from - o.origin, o.to - o.origin).map((t) => {
    const tx = px(x(t + o.origin));
    return (
      `<line class="grid" x1="${tx}" y1="${TOP - 4}" x2="${tx}" y2="${bottom}"/>` +
      `<text x="${tx}" y="${bottom + 14}" text-anchor="middle">${esc(o.axis(t))}</text>`
    );
  });
  const bands = o.bands
    .filter((b) => b.to >= o.from && b.from <= o.to)
    .map(
      (b) =>
        `<rect class="band" ` +
        `x="${px(x(b.from))}" y="${TOP - 4}" width="${px(Math.max(1, x(b.to) - x(b.from)))}" ` +
        `height="${bottom - TOP + 4}"/>`,
    );
  const markers = o.markers
    .filter((m) => m.t >= o.from && m.t <= o.to)
    .map((m) => {
      const mx = px(x(m.t));
      return (
        `<line class="marker" x1="${mx}" y1="${TOP - 6}" x2="${mx}" y2="${bottom}"/>` +
        `<text x="${mx}" y="${TOP - 9}" text-anchor="middle">${esc(m.label)}</text>`
      );
    });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${o.width}" height="${height}" ` +
      `viewBox="0 0 ${o.width} ${height}">`,
    ...lanes.map(
      (l, i) =>
        `<rect class="lane" x="${LABEL_WIDTH}" y="${laneY(i)}" width="${px(plot)}" ` +
        `height="${LANE_HEIGHT}"/><text x="${LABEL_WIDTH - 8}" y="${laneY(i) + 13}" text-anchor="end">` +
        `${esc(l.label)}</text>`,
    ),
    ...ticks,
    ...bands,
    ...lanes.flatMap((l) => l.rects),
    ...markers,
    '</svg>',
  ].join('\n');
}

/** From the client's first connect to its last, within [from, to]. */
function probedSpan(probes: readonly ProbeResult[], from: number, to: number): Span | undefined {
  const inside = probes.filter((p) => p.t >= from && p.t <= to);
  const first = inside[0];
  const last = inside[inside.length - 1];
  return first === undefined || last === undefined ? undefined : { from: first.t, to: last.t };
}

/**
 * A close-up's window: from half a second before the event until what it set off is over: the
 * last holder change or client recovery within 5 s of the fault's end (a stall's second thoughts
 * come within 3 s of SIGCONT), at least 2 s, never past the next event.
 */
function closeUpWindow(
  e: TimelineEvent,
  next: number,
  log: readonly HolderChange[],
  failures: readonly FailureSpan[],
  end: number,
): [number, number] {
  const limit = Math.min(next, end, (e.until ?? e.at) + 5000);
  const moments = [
    ...log.filter((c) => c.t >= e.at && c.t <= limit).map((c) => c.t),
    ...failures.filter((s) => s.to >= e.at && s.from <= limit).map((s) => Math.min(s.to, limit)),
  ];
  const last = Math.max(e.at + 2000, (e.until ?? e.at) + 1000, ...moments.map((t) => t + 500));
  return [e.at - 500, Math.min(limit, last)];
}

/** Axis times: a round step giving at most about twelve ticks over [from, to] (ms). */
function tickTimes(from: number, to: number): number[] {
  const steps = [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000];
  const step = steps.find((s) => (to - from) / s <= 12) ?? 600_000;
  const out: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to && out.length < 100; t += step) out.push(t);
  return out;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
const offset = (ms: number) =>
  ms === 0 ? '0' : `${ms > 0 ? '+' : '−'}${Math.abs(ms) < 1000 ? `${Math.abs(ms)} ms` : `${Math.abs(ms) / 1000} s`}`;
const duration = (ms: number) => (ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
const px = (v: number) => String(Math.round(v * 10) / 10);

/** Text for HTML and SVG: event names carry quotes and apostrophes. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A drill outcome (drill.ts) as an event on the page, its figures in one line. */
export function timelineEvent(o: Outcome): TimelineEvent {
  const ms = (v: number | undefined, none: string) => (v === undefined ? none : `${v} ms`);
  const parts: string[] = [];
  if (o.heldUntil === undefined) {
    parts.push(
      o.vipMovedMs === undefined || o.to === ''
        ? `${o.from}: the VIP did not move`
        : `${o.from} → ${o.to}: VIP moved after ${o.vipMovedMs} ms`,
    );
  } else {
    parts.push(
      `master ${o.from}: ${
        o.vipMovedMs === undefined ? 'the VIP stayed' : `the VIP moved to ${o.to} after ${o.vipMovedMs} ms`
      }`,
    );
    parts.push(
      `two holders for ${o.multiMs ?? 0} ms (longest ${o.longestMultiMs ?? 0} ms), ` +
        `${o.holderChanges ?? 0} holder change${o.holderChanges === 1 ? '' : 's'}`,
    );
    if (o.backToOrigin === true) parts.push(`back on ${o.from}`);
    if (o.oneHolderAtHeal !== undefined) parts.push(`${o.oneHolderAtHeal ? '' : 'not '}one holder at heal`);
  }
  parts.push(`client outage ${ms(o.outageMs, 'unrecovered')}`);
  if (o.watch !== undefined) {
    parts.push(
      `the watch ${
        o.watch.resumeMs === undefined
          ? `did not resume within ${o.watch.waitedMs / 1000} s`
          : `resumed after ${o.watch.resumeMs} ms`
      }`,
    );
  }
  if (!o.settled) parts.push('did not settle on one holder within 15 s');
  return {
    label: o.event,
    at: o.at,
    ...(o.heldUntil === undefined ? {} : { until: o.heldUntil }),
    summary: parts.join('; '),
  };
}
