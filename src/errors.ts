/**
 * The one catalogue of vipd's errors. Each has a stable `code` (for logs and tests) and knows the
 * process exit code it maps to, so the CLI never guesses.
 */
export const ExitCode = {
  ok: 0,
  /** A runtime failure: a socket could not be bound, netlink refused, a child died. */
  failure: 1,
  /** Bad input from the operator: invalid config, bad flag, unreadable secret. */
  usage: 2,
  /** `vipd status`: the daemon answered, but this node has no quorum or no member holds the VIP. */
  degraded: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'VIPD_CONFIG_INVALID'
  | 'VIPD_CONFIG_UNREADABLE'
  | 'VIPD_SECRET_INVALID'
  | 'VIPD_BIND_FAILED'
  | 'VIPD_NOT_ROOT'
  | 'VIPD_MISSING_TOOL'
  | 'VIPD_NETLINK'
  | 'VIPD_NATIVE'
  | 'VIPD_UNREACHABLE'
  | 'VIPD_NOT_VIPD'
  | 'VIPD_STATE_DIR'
  | 'VIPD_USAGE';

export class VipdError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  constructor(code: ErrorCode, message: string, options: { exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VipdError';
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.failure;
  }
}

/** The config (or its secret) is wrong: exit 2, and `problems` name each field path. */
export class ConfigError extends VipdError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], code: ErrorCode = 'VIPD_CONFIG_INVALID') {
    super(code, `invalid config:\n  - ${problems.join('\n  - ')}`, { exitCode: ExitCode.usage });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * A bad command line (exit 2), told apart from a bad config file: the flag is what to fix, not
 * the file. `problems` name each flag, the value and what was expected, all at once.
 */
export class UsageError extends VipdError {
  /** One per bad flag: `--bind-port: got "x", expected ...`; empty for a command line wrong as a whole. */
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super('VIPD_USAGE', message, { exitCode: ExitCode.usage });
    this.name = 'UsageError';
    this.problems = problems;
  }

  /** Every bad flag at once, so the operator fixes the command line in one pass. */
  static flags(problems: readonly string[]): UsageError {
    const message =
      problems.length === 1 ? `invalid flag ${problems[0]}` : `invalid flags:\n  - ${problems.join('\n  - ')}`;
    return new UsageError(message, problems);
  }
}

// Node's system errors and the native addon put the errno name in `code` (ENOENT, EAI_AGAIN);
// Node's own ERR_* codes and vipd's VIPD_* codes are not errno names, and their message is the reason.
const ERRNO_NAME = /^E(?:AI_)?[A-Z0-9]+$/;

/** The errno name an error carries in `code` ("EADDRINUSE"), to tell causes apart; undefined if none. */
export function errnoName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code } = err as { code?: unknown };
  return typeof code === 'string' && ERRNO_NAME.test(code) ? code : undefined;
}

/**
 * An unknown thrown value as text for a message that already says what failed ("cannot read
 * "/etc/vipd/secret": ENOENT"): the errno name if it has one (short, stable, and what an operator
 * searches for), else its message, else the value itself. For logs, pass the error as `{ err }`
 * instead: pino keeps its stack, code and cause.
 */
export function describeError(err: unknown): string {
  const errno = errnoName(err);
  if (errno !== undefined) return errno;
  if (typeof err === 'object' && err !== null) {
    const { message } = err as { message?: unknown };
    if (typeof message === 'string' && message !== '') return message;
  }
  try {
    return String(err);
  } catch {
    // An object without a prototype has no toString: never throw while describing a throw.
    return Object.prototype.toString.call(err);
  }
}

/** How much of a wrong value an error echoes (a 50 MB scalar must not go to stderr whole). */
const ECHO_CHARS = 80;

/** A value for an error message: JSON, control characters escaped, cut to ECHO_CHARS. */
export function echo(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  // JSON.stringify escapes control characters in strings; String() of other values may not.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point (to escape them).
  text = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length <= ECHO_CHARS ? text : `${text.slice(0, ECHO_CHARS)}... (${text.length} characters)`;
}
