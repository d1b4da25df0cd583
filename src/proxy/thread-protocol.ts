/**
 * The messages between the daemon and the balancer's thread (thread.ts, thread-main.ts): requests
 * with numbered replies, and what the thread pushes by itself (its status, its connections).
 */
import type { LogLevel } from '../log/logger';
import type { ClientConnection } from '../native/relay-engine';
import type { ProxyStatus } from './proxy';
import type { ProxyConfigSource } from './settings';

export interface ThreadData {
  readonly config: ProxyConfigSource;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'text';
  readonly node: string | undefined;
  /** Whether to push the client connections (the takeover's observer wants them). */
  readonly observe: boolean;
  /** Bind the frontends' listeners; false in a dry run (backends are checked only). */
  readonly listen: boolean;
}

export type RequestOp = 'start' | 'reload' | 'close' | 'destroy' | 'metrics';

export interface ThreadRequest {
  readonly id: number;
  readonly op: RequestOp;
  readonly config?: ProxyConfigSource;
}

/** An error as it crosses the thread boundary (VipdError's code and exit code kept). */
export interface SerializedError {
  readonly message: string;
  readonly code: string | undefined;
  readonly exitCode: number | undefined;
}

/** A connection event: 1 opened, 0 closed, then the four address fields. */
export type ConnectionEvent = readonly [1 | 0, string, number, string, number];

export type ThreadMessage =
  | { readonly kind: 'reply'; readonly id: number; readonly ok: true; readonly value?: string }
  | { readonly kind: 'reply'; readonly id: number; readonly ok: false; readonly error: SerializedError }
  | { readonly kind: 'status'; readonly status: ProxyStatus }
  | { readonly kind: 'connections'; readonly events: readonly ConnectionEvent[] };

export function toEvent(opened: boolean, c: ClientConnection): ConnectionEvent {
  return [opened ? 1 : 0, c.localAddress, c.localPort, c.remoteAddress, c.remotePort];
}

export function fromEvent(e: ConnectionEvent): { opened: boolean; connection: ClientConnection } {
  return {
    opened: e[0] === 1,
    connection: { localAddress: e[1], localPort: e[2], remoteAddress: e[3], remotePort: e[4] },
  };
}

export function serializeError(err: unknown): SerializedError {
  const e = err as { message?: unknown; code?: unknown; exitCode?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : undefined,
    exitCode: typeof e?.exitCode === 'number' ? e.exitCode : undefined,
  };
}
