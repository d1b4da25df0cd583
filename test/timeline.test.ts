/**
 * The lab's timeline page (src/lab/timeline.ts) on a made-up run shaped like a real one: the
 * election, a node death whose VIP copy lingers until its lifetime ends, a make-before-break
 * handover, a stall held 3 s, a one-way loss held 5 s with a moment of nobody, the client's
 * connects every 10 ms failing around the takeovers. The span figures, and a page that stands on
 * its own (no script, nothing fetched), well-formed SVG, escaped names, the times in its tooltips.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProbeResult } from '../src/lab/client-log';
import type { Outcome } from '../src/lab/drill';
import type { HolderChange } from '../src/lab/holder-log';
import {
  failureSpans,
  holderCountSpans,
  holderSpans,
  renderTimeline,
  type TimelineInput,
  timelineEvent,
} from '../src/lab/timeline';

const T0 = Date.UTC(2025, 10, 25, 16, 0, 0);
const at = (s: number) => T0 + Math.round(s * 1000);
const NODES = ['cp1', 'cp2', 'cp3'];
const CRASH = "crash: the master's node dies (link cut, then every process killed)";
const GRACEFUL = 'graceful: SIGTERM the master';
const STALL = "stall: SIGSTOP the master's manager for 3 s";
const LOSS = "one-way out: the master's heartbeats dropped for 5 s";

/** Holder sets as the drill logs them (sorted names), at seconds after T0. */
const HOLDERS: HolderChange[] = (
  [
    [1.8, 'cp1'], // elected
    [5.31, 'cp1+cp2'], // cp1's node died at 5.0: cp2 took over; cp1's copy lives out its 1 s lifetime
    [6.0, 'cp2'],
    [20.05, 'cp2+cp3'], // SIGTERM at 20.0: make-before-break to cp3
    [20.06, 'cp3'],
    [30.35, 'cp1+cp3'], // cp3 stalled at 30.0: cp1 took over, cp3's copy expired
    [31.0, 'cp1'],
    [45.25, ''], // cp1's heartbeats dropped at 45.0: it released before cp2 claimed
    [45.27, 'cp2'],
  ] as const
).map(([s, h]) => ({ t: at(s), holders: h === '' ? [] : h.split('+') }));

/** The client's connects every 10 ms from 3 s to 60 s, failing within these windows (s). */
const FAILING: readonly [number, number][] = [
  [5.0, 5.42],
  [30.0, 30.4],
  [45.2, 45.3],
];
const PROBES: ProbeResult[] = Array.from({ length: 5701 }, (_, i) => {
  const t = at(3 + i / 100);
  return { t, ok: !FAILING.some(([a, b]) => t >= at(a) && t < at(b)) };
});

const OUTCOMES: Outcome[] = [
  {
    event: CRASH,
    at: at(5),
    from: 'cp1',
    to: 'cp2',
    vipMovedMs: 310,
    outageMs: 430,
    settled: true,
    watch: { brokeMs: 320, resumeMs: 1130, waitedMs: 15_000, restarts: 1, endedBy: ['ECONNRESET'] },
  },
  { event: GRACEFUL, at: at(20), from: 'cp2', to: 'cp3', vipMovedMs: 50, outageMs: 0, settled: true },
  {
    event: STALL,
    at: at(30),
    heldUntil: at(33),
    from: 'cp3',
    to: 'cp1',
    vipMovedMs: 350,
    outageMs: 410,
    settled: true,
    multiMs: 650,
    longestMultiMs: 650,
    holderChanges: 2,
    backToOrigin: false,
  },
  {
    event: LOSS,
    at: at(45),
    heldUntil: at(50),
    from: 'cp1',
    to: 'cp2',
    vipMovedMs: 270,
    outageMs: 110,
    settled: true,
    multiMs: 0,
    longestMultiMs: 0,
    holderChanges: 2,
    oneHolderAtHeal: true,
  },
];

const INPUT: TimelineInput = {
  title: 'vipd lab: vipd, interval 100ms, deadAfter 3',
  nodes: NODES,
  start: T0,
  end: at(60),
  holders: HOLDERS,
  probes: PROBES,
  events: OUTCOMES.map(timelineEvent),
};

const ms = (spans: readonly { from: number; to: number }[]) => spans.map((s) => [s.from - T0, s.to - T0]);

/** The text a browser shows for escaped markup. */
const decodeEntities = (s: string) => s.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));

/** Each tag opened is closed, in order (enough for the SVG and HTML this page writes). */
function assertNested(markup: string): void {
  const open: string[] = [];
  for (const [tag = '', close, name = '', selfClosing] of markup.matchAll(/<(\/?)([a-zA-Z0-9]+)[^>]*?(\/?)>/g)) {
    if (selfClosing === '/' || ['meta', '!doctype'].includes(name.toLowerCase())) continue;
    if (close === '/') assert.equal(open.pop(), name, `${tag} closes what was opened`);
    else open.push(name);
  }
  assert.deepEqual(open, [], 'every tag closed');
}

describe('the lab timeline', () => {
  it("each node's stretches with the VIP, the kernel copy after the node death included", () => {
    const spans = holderSpans(HOLDERS, NODES, T0, at(60));
    assert.deepEqual(ms(spans.get('cp1') ?? []), [
      [1800, 6000],
      [30350, 45250],
    ]);
    assert.deepEqual(ms(spans.get('cp2') ?? []), [
      [5310, 20060],
      [45270, 60000],
    ]);
    assert.deepEqual(ms(spans.get('cp3') ?? []), [[20050, 31000]]);
    // A window starting mid-stretch starts with the holders of that moment.
    assert.deepEqual(ms(holderSpans(HOLDERS, NODES, at(10), at(25)).get('cp2') ?? []), [[10000, 20060]]);
  });

  it('the stretches with nobody or two holders', () => {
    const spans = holderCountSpans(HOLDERS, T0, at(60));
    assert.deepEqual(
      spans.map((s) => [s.from - T0, s.to - T0, s.holders.join('+')]),
      [
        [0, 1800, ''],
        [5310, 6000, 'cp1+cp2'],
        [20050, 20060, 'cp2+cp3'],
        [30350, 31000, 'cp1+cp3'],
        [45250, 45270, ''],
      ],
    );
  });

  it("the client's failures run from the last good connect to the next, as the lab counts outages", () => {
    const spans = failureSpans(PROBES, T0, at(60));
    assert.deepEqual(
      spans.map((s) => [s.from - T0, s.to - T0, s.failed, s.open]),
      [
        [4990, 5420, 42, false],
        [29990, 30400, 40, false],
        [45190, 45300, 10, false],
      ],
    );
    // Still failing when the record ends: the run reaches the end, marked open.
    const cut = failureSpans(PROBES, T0, at(5.2));
    assert.deepEqual(
      cut.map((s) => [s.from - T0, s.to - T0, s.failed, s.open]),
      [[4990, 5200, 21, true]],
    );
  });

  it('an outcome in one line', () => {
    const [crash, , stall, loss] = OUTCOMES.map(timelineEvent);
    assert.deepEqual(crash, {
      label: CRASH,
      at: at(5),
      summary: 'cp1 → cp2: VIP moved after 310 ms; client outage 430 ms; the watch resumed after 1130 ms',
    });
    assert.equal(stall?.until, at(33));
    assert.equal(
      stall?.summary,
      'master cp3: the VIP moved to cp1 after 350 ms; two holders for 650 ms ' +
        '(longest 650 ms), 2 holder changes; client outage 410 ms',
    );
    assert.equal(
      loss?.summary,
      'master cp1: the VIP moved to cp2 after 270 ms; two holders for 0 ms ' +
        '(longest 0 ms), 2 holder changes; one holder at heal; client outage 110 ms',
    );
    const unsettled = timelineEvent({
      ...OUTCOMES[0]!,
      to: '',
      vipMovedMs: undefined,
      outageMs: undefined,
      settled: false,
      watch: undefined,
    });
    assert.equal(
      unsettled.summary,
      'cp1: the VIP did not move; client outage unrecovered; did not settle on one holder within 15 s',
    );
  });

  it('a page that stands on its own: one overview and a close-up per event, nothing to fetch, no script', () => {
    const html = renderTimeline(INPUT);
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.doesNotMatch(html, /<script|<link|<img|src=|url\(|@import|href="(?!#)/i);
    assert.equal(html.match(/<svg /g)?.length, 1 + OUTCOMES.length);
    assertNested(html);
    // Names are escaped: an apostrophe in an event name cannot end an attribute or inject markup.
    assert.ok(html.includes('<h3>1. crash: the master&#39;s node dies'));
    assert.ok(!html.includes("master's"), 'every apostrophe of the event names escaped');
    assert.match(html, /Started 2025-11-25 16:00:00 UTC, 60 s long/);
    for (const e of [CRASH, GRACEFUL, STALL, LOSS]) assert.ok(decodeEntities(html).includes(`${e}</td>`), e);
  });

  it('the tooltips give the times: of the run in the overview, from the event in each close-up', () => {
    const html = renderTimeline(INPUT);
    const [overview = '', ...closeUps] = html.split('<section ');
    const text = decodeEntities(overview);
    assert.ok(text.includes('<title>cp2 held the VIP from 5.31 s to 20.06 s (14.8 s)</title>'), "a node's stretch");
    assert.ok(text.includes('<title>cp1+cp3 held the VIP from 30.35 s to 31.00 s (650 ms)</title>'), 'two holders');
    const crash = decodeEntities(closeUps[0] ?? '');
    assert.ok(crash.includes('<title>cp1+cp2 held the VIP from +310 ms to +1000 ms (690 ms)</title>'), crash);
    assert.ok(
      crash.includes(
        "<title>the client's connects failed from −10 ms to +420 ms: 430 ms, 42 failed connects" + '</title>',
      ),
      'the outage, from the last good connect',
    );
    assert.ok(crash.includes('>−500 ms</text>'), 'half a second before the event');
    // The held stall: its band, and its end marked.
    const stall = decodeEntities(closeUps[2] ?? '');
    assert.match(stall, /<rect class="band" /);
    assert.match(stall, />end<\/text>/);
    assert.ok(stall.includes('>+3 s</text>'), 'the axis reaches SIGCONT');
  });

  it('an empty run still draws', () => {
    const html = renderTimeline({ ...INPUT, holders: [], probes: [], events: [] });
    assert.equal(html.match(/<svg /g)?.length, 1);
    assertNested(html);
  });
});
