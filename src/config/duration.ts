/**
 * Durations in the config are strings with a unit, like Kubernetes and Prometheus write them
 * ("200ms", "2s", "1m30s"). A bare number is refused: "is 3 seconds or milliseconds?" is exactly the
 * ambiguity that produces a 3 ms heartbeat in production.
 */
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0) return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let m = PART.exec(text); m !== null; m = PART.exec(text)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    consumed = PART.lastIndex;
  }
  if (consumed !== text.length) return undefined;
  return Math.round(total);
}

/** The shortest readable form of a millisecond count, the inverse of parseDuration. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
