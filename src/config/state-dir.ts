/**
 * `election.stateDir`: the directory the daemon creates at start and writes the record that the
 * cluster has formed into (vrrp/formed-record.ts). One function does the creating, so that the
 * host checks (host.ts: `vipd check`, and `vipd run` before it starts anything) find exactly what
 * the daemon would, and say it in the same words.
 */
import { accessSync, constants, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeError, echo } from '../errors';

/**
 * Creates what is missing of `dir`, one level at a time, and proves it a writable directory;
 * throws the file system's error. Each directory made is pushed onto `created`, in order.
 *
 * Not mkdirSync's `recursive`: under a directory that refuses new entries with ENOENT (procfs),
 * Node 20's recursive mkdir retries for ever instead of failing.
 */
function makeWritableDir(dir: string, created: string[]): void {
  const missing: string[] = [];
  for (let d = dir; !existingDir(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    mkdirSync(d, { mode: 0o700 });
    created.push(d);
  }
  accessSync(dir, constants.W_OK);
}

/** Whether `path` is a directory (false: it does not exist); anything else there is an error. */
function existingDir(path: string): boolean {
  try {
    if (statSync(path).isDirectory()) return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  throw Object.assign(new Error(`${path} is not a directory`), { code: 'ENOTDIR' });
}

/** The daemon's start: `dir` exists and is writable afterwards, or this throws. */
export function prepareStateDir(dir: string): void {
  makeWritableDir(dir, []);
}

/**
 * What prepareStateDir would throw for `dir`, or undefined: the same steps, after which the
 * directories it made are removed again (deepest first, and only while empty), so that
 * `vipd check` leaves the host as it found it.
 */
export function probeStateDir(dir: string): unknown {
  const created: string[] = [];
  try {
    makeWritableDir(dir, created);
    return undefined;
  } catch (err) {
    return err;
  } finally {
    for (const d of created.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // Not empty (a daemon started meanwhile and wrote in it): it stays, as do its parents.
        break;
      }
    }
  }
}

/** The problem with `dir`, for the host checks' list and the daemon's VIPD_STATE_DIR alike. */
export function stateDirProblem(dir: string, err: unknown): string {
  return (
    `election.stateDir: ${echo(dir)} is not a writable directory (${describeError(err)}): vipd records ` +
    'there that the cluster has formed (in the static pod, a hostPath volume)'
  );
}
