/**
 * Real vipd processes for tests: spawn `vipd run`, read its JSON log lines, wait for one that
 * matches, and always kill it afterwards (an owner for every child).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { duplicateKeys } from './strict-json';

export const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface LogLine {
  readonly [key: string]: unknown;
  readonly msg?: string;
  readonly at: number;
}

export class DaemonProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  /** Log lines with a key twice in one object (a log shipper would lose one): "keys in line". */
  readonly duplicateKeyLines: string[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(
    readonly name: string,
    args: readonly string[],
    options: { prefix?: readonly string[] } = {},
  ) {
    const cmd = options.prefix?.length ? (options.prefix[0] as string) : process.execPath;
    const cmdArgs = options.prefix?.length
      ? [...options.prefix.slice(1), process.execPath, CLI, ...args]
      : [CLI, ...args];
    this.child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
        const dupes = duplicateKeys(text);
        if (dupes.length > 0) this.duplicateKeyLines.push(`${dupes.join(', ')} in ${text}`);
      } catch {
        parsed = { msg: text };
      }
      const line: LogLine = { ...parsed, at: performance.now() };
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    createInterface({ input: this.child.stderr! }).on('line', (text) => this.stderr.push(text));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** The first line (already seen or still to come) matching `pred`, within `timeoutMs`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, what = 'a log line'): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return this.waitForNext(pred, timeoutMs, what);
  }

  /** The next line still to come matching `pred`. */
  waitForNext(pred: (l: LogLine) => boolean, timeoutMs: number, what = 'a log line'): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `${this.name}: no ${what} within ${timeoutMs} ms; last lines:\n${this.lines
              .slice(-8)
              .map((l) => JSON.stringify(l))
              .join('\n')}\nstderr: ${this.stderr.join('\n')}`,
          ),
        );
      }, timeoutMs);
      const done = (l: LogLine) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** The current election role, from the transition lines logged so far. */
  role(): string | undefined {
    const t = this.lines.filter((l) => l.component === 'election' && typeof l.to === 'string');
    return t.length ? (t[t.length - 1]!.to as string) : undefined;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }
}

/** A temporary directory with a secret file, removed by `cleanup()`. */
export function tempDir(): { dir: string; secretFile: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-test-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'test-secret-0123456789abcdef\n');
  return { dir, secretFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const isTransition = (to: string) => (l: LogLine) => l.component === 'election' && l.to === to && l.from !== to;
