/**
 * pino JSON logs on stdout, one line per event, with this node's name on every line so the lines of
 * three members can be merged and still read.
 */
import pino, { type Logger } from 'pino';

export type { Logger };
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(options: { level: LogLevel; node?: string; destination?: pino.DestinationStream }): Logger {
  const base = options.node === undefined ? { pid: process.pid } : { pid: process.pid, node: options.node };
  return pino(
    { level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * At most one line per `key` every `windowMs`; the next line carries how many were suppressed.
 * For input an attacker or a broken peer controls (bad packets), so it cannot flood the log.
 */
export class RateLimitedLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly log: Logger, private readonly windowMs = 10_000, private readonly now = () => performance.now()) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    this.write('warn', key, fields, message);
  }

  error(key: string, fields: Record<string, unknown>, message: string): void {
    this.write('error', key, fields, message);
  }

  private write(level: 'warn' | 'error', key: string, fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry !== undefined && t - entry.at < this.windowMs) {
      entry.suppressed += 1;
      return;
    }
    this.log[level]({ ...fields, ...(entry !== undefined && entry.suppressed > 0 ? { suppressed: entry.suppressed } : {}) }, message);
    this.seen.set(key, { at: t, suppressed: 0 });
  }
}
