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
