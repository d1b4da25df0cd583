/** The client drill's outcomes (src/lab/client-drill.ts) as lines, for a test's diagnostics. */
import { type ClientOutcome, clientFigures } from '../../src/lab/client-drill';

/** One manager's client outcomes, an event and its figures at a time. */
export function formatClientOutcomes(label: string, outcomes: readonly ClientOutcome[]): string[] {
  return [
    `${label}:`,
    ...outcomes.flatMap((o) => [
      `  ${o.event}`,
      ...clientFigures(o).map(([name, value]) => `    ${name.padEnd(44)} ${value}`),
    ]),
  ];
}
