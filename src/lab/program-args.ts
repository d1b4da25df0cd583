/**
 * A lab program runs until its stdin closes (its parent, the drill, is gone or done) or for at most
 * `maxSeconds`; then `stop` is called (it closes the program's clients, or ends its loop).
 */
export function runUntilStdinCloses(stop: () => void, maxSeconds: number): void {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  setTimeout(stop, maxSeconds * 1000).unref();
}

/**
 * The lab's client programs (load-client.ts, storm-client.ts) take `HOST PORT --name N ...`: a
 * numeric flag, or its fallback when absent or not a number.
 */
export function numberFlag(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  return Number.isFinite(v) ? v : fallback;
}
