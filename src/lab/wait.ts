/**
 * Waiting by polling, for the lab, the benchmarks and the tests: what they wait for is often read
 * from outside (a namespace's addresses, a child's last line, a balancer's status), with no event
 * to wait on.
 */
import { describeError } from '../errors';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** How long to wait, counting the pauses between probes, not the probes themselves (default 5 s). */
  readonly timeoutMs?: number;
  /** The pause between probes (default 10 ms). */
  readonly everyMs?: number;
}

/**
 * Polls `probe` until it returns something other than undefined or false, and resolves with it.
 * The probes' own time is not counted: one that runs a command in a namespace takes time of its
 * own, and a loaded machine must not turn slow probes into a failed wait. A probe that throws
 * counts as "not yet"; the last error is in the timeout's message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  { timeoutMs = 5000, everyMs = 10 }: WaitOptions = {},
): Promise<Exclude<T, undefined | false>> {
  const pauses = Math.ceil(timeoutMs / everyMs);
  let last: unknown;
  for (let i = 0; ; i++) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
    } catch (err) {
      last = err;
    }
    if (i >= pauses) break;
    await sleep(everyMs);
  }
  const cause = last === undefined ? '' : `: ${describeError(last)}`;
  throw new Error(`timed out after ${timeoutMs} ms (${everyMs} ms apart) waiting for ${what}${cause}`);
}
