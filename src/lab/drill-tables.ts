/**
 * The drill's figures as text tables, one row per outcome (drill.ts), loss trial or crash under
 * loss: what `vipd lab` and bench/failover.ts print.
 */
import type { Detection, LossTrial, Outcome, WatchFigure } from './drill';

export function formatDetections(detections: readonly Detection[]): string[] {
  const ms = (v: number | undefined) => (v === undefined ? 'never' : `${v}`);
  return table<Detection>(
    [
      { head: 'manager', width: Math.max(10, ...detections.map((d) => d.label.length)), cell: (d) => d.label },
      { head: 'loss', width: 5, cell: (d) => `${d.percent}%` },
      { head: 'crash to new holder, each (ms)', width: 32, cell: (d) => d.movedMs.map(ms).join(' ') },
      {
        head: 'median',
        width: 7,
        cell: (d) => {
          const v = d.movedMs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
          return v.length === 0 ? '-' : String(v[Math.floor((v.length - 1) / 2)]);
        },
      },
    ],
    detections,
  );
}

/** One column of a table: a header and a cell for each row, right-aligned to `width`. */
interface Column<T> {
  readonly head: string;
  readonly width: number;
  readonly cell: (row: T) => string;
}

function table<T>(columns: readonly Column<T>[], rows: readonly T[]): string[] {
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(columns[0]?.width ?? 0) : c.padStart(columns[i]?.width ?? 0))).join(' ');
  return [line(columns.map((c) => c.head)), ...rows.map((r) => line(columns.map((c) => c.cell(r))))];
}

/** A watch figure in a table: blank if not measured, "no (15 s)" if it did not resume in the wait. */
export const watchCell = (w: WatchFigure | undefined) =>
  w === undefined ? '' : w.resumeMs === undefined ? `no (${w.waitedMs / 1000} s)` : `${w.resumeMs} ms`;
const yesNo = (b: boolean | undefined) => (b === undefined ? '' : b ? 'yes' : 'no');
const msOr = (ms: number | undefined, none: string) => (ms === undefined ? none : `${ms} ms`);

/** The drill's outcomes for one manager; the held faults' figures are extra columns, blank elsewhere. */
export function formatOutcomes(label: string, outcomes: readonly Outcome[]): string[] {
  return [
    `${label}:`,
    ...table<Outcome>(
      [
        { head: 'event', width: 68, cell: (o) => o.event },
        { head: 'VIP moved', width: 10, cell: (o) => msOr(o.vipMovedMs, 'never') },
        { head: 'client outage', width: 14, cell: (o) => msOr(o.outageMs, 'unrecovered') },
        {
          head: '2 holders (longest)',
          width: 20,
          cell: (o) => (o.multiMs === undefined ? '' : `${o.multiMs} ms (${o.longestMultiMs ?? 0})`),
        },
        { head: 'changes', width: 7, cell: (o) => (o.holderChanges === undefined ? '' : String(o.holderChanges)) },
        { head: 'back', width: 4, cell: (o) => yesNo(o.backToOrigin) },
        { head: '1 at heal', width: 9, cell: (o) => yesNo(o.oneHolderAtHeal) },
        { head: 'settled', width: 7, cell: (o) => yesNo(o.settled) },
        { head: 'watch resumed', width: 14, cell: (o) => watchCell(o.watch) },
      ],
      outcomes,
    ),
  ];
}

export function formatLossTrials(trials: readonly LossTrial[]): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return table<LossTrial>(
    [
      { head: 'manager', width: Math.max(10, ...trials.map((t) => t.label.length)), cell: (t) => t.label },
      { head: 'loss', width: 5, cell: (t) => `${t.percent}%` },
      { head: 'lasted', width: 8, cell: (t) => s(t.ms) },
      { head: 'takeovers', width: 10, cell: (t) => String(t.stats.takeovers) },
      { head: 'per 10 min', width: 11, cell: (t) => ((t.stats.takeovers * 600_000) / t.ms).toFixed(1) },
      { head: 'VIP additions', width: 14, cell: (t) => String(t.stats.additions) },
      { head: '2+ holders', width: 11, cell: (t) => s(t.stats.multiMs) },
      { head: 'no holder', width: 10, cell: (t) => s(t.stats.noneMs) },
      { head: 'client down', width: 12, cell: (t) => s(t.clientDownMs) },
    ],
    trials,
  );
}
