/**
 * The lab's client programs (load-client.ts, storm-client.ts) take `HOST PORT --name N ...`: a
 * numeric flag, or its fallback when absent or not a number.
 */
export function numberFlag(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  return Number.isFinite(v) ? v : fallback;
}
