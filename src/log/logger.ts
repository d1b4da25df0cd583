/**
 * pino JSON logs on stdout, one line per event, with this node's name on every line so the lines of
 * three members can be merged and still read.
 */
import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger };
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `json`: one JSON object per line (the default off a terminal); `text`: for people; `auto`: by TTY. */
export const LOG_FORMATS = ['auto', 'json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** `auto` as it applies to this process: text on a terminal, JSON otherwise (a pod, a pipe, a file). */
export function resolveLogFormat(format: LogFormat): 'json' | 'text' {
  return format === 'auto' ? (process.stdout.isTTY === true ? 'text' : 'json') : format;
}

export function createLogger(options: {
  level: LogLevel;
  node?: string;
  format?: 'json' | 'text';
  destination?: pino.DestinationStream;
}): Logger {
  const base = options.node === undefined ? { pid: process.pid } : { pid: process.pid, node: options.node };
  const destination =
    options.format === 'text'
      ? // pino-pretty in the process, synchronously (no transport thread): the same lines, for a person.
        pinoPretty({
          sync: true,
          colorize: options.destination === undefined && process.stdout.isTTY === true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid',
          singleLine: true,
          ...(options.destination === undefined ? { destination: 1 } : { destination: options.destination }),
        })
      : (options.destination ?? pino.destination({ dest: 1, sync: true }));
  return pino(
    {
      level: options.level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * At most one line per `key` every `windowMs`; the next line carries how many were suppressed.
 * For input an attacker or a broken peer controls (bad packets), so it cannot flood the log.
 *
 * Bounded: keys come from packets (a source address), and a host spoofing many sources must not
 * grow the heap. Past `maxKeys`, entries older than the window are swept out; if all are recent,
 * further keys share one overflow entry (logged with `overflow: true`), so memory stays O(maxKeys).
 */
export class RateLimitedLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
    private readonly now = () => performance.now(),
    private readonly maxKeys = 256,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    this.write('warn', key, fields, message);
  }

  error(key: string, fields: Record<string, unknown>, message: string): void {
    this.write('error', key, fields, message);
  }

  /** Entries held (for tests and the curious): never more than maxKeys + 1. */
  get size(): number {
    return this.seen.size;
  }

  private write(level: 'warn' | 'error', key: string, fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    let k = key;
    if (!this.seen.has(k) && this.seen.size >= this.maxKeys) {
      for (const [old, e] of this.seen) if (t - e.at >= this.windowMs && old !== OVERFLOW) this.seen.delete(old);
      if (this.seen.size >= this.maxKeys) k = OVERFLOW;
    }
    const entry = this.seen.get(k);
    if (entry !== undefined && t - entry.at < this.windowMs) {
      entry.suppressed += 1;
      return;
    }
    const extra = {
      ...(entry !== undefined && entry.suppressed > 0 ? { suppressed: entry.suppressed } : {}),
      ...(k === OVERFLOW ? { overflow: true } : {}),
    };
    this.log[level]({ ...fields, ...extra }, message);
    this.seen.set(k, { at: t, suppressed: 0 });
  }
}

/** The shared entry once maxKeys distinct keys are all within their window. */
const OVERFLOW = '\u0000overflow';
