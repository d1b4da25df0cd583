/**
 * The balancer's native data path (native/relay.cc, the vipd_relay addon), typed: the RelayEngine
 * a frontend drives, and the decoding of the events its threads report. What the engine does with
 * a connection (choice, hedged connects, retries, replay before the first answer, half-close,
 * timeouts, keepalive) is told in relay.cc's header and in docs/design.md; the policy it does not
 * own (health, passive checks, the auto hedge delay, logs, metrics) is src/proxy/frontend.ts's.
 *
 * Loaded on first use, as the packet addon is (src/native/addon.ts).
 */
import { constants } from 'node:os';
import * as path from 'node:path';
import { describeError, VipdError } from '../errors';

/**
 * A client connection on a frontend, as accepted: both addresses of one family, IPv6 in its RFC 5952
 * text ("fd00::1"); an IPv4 client of a dual-stack ("::") listener as IPv4 ("10.0.0.5", not
 * "::ffff:10.0.0.5").
 */
export interface ClientConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** What happens to the client after a failed attempt: a retry started, another attempt goes on, or nothing. */
export type NextStep = 'retry' | 'other' | 'none';

/** One backend as the engine sees it; `id` is the frontend's, stable across updates. */
export interface EngineBackend {
  readonly id: number;
  readonly address: string;
  readonly port: number;
  /** Neither the active nor a passive check holds it down. */
  readonly routable: boolean;
  /** Removed by a reload: no new connections, its own run to their end. */
  readonly draining: boolean;
}

export interface NativeRelayEngine {
  /**
   * Binds, listens and starts the threads; returns the bound port. `host` is an IPv4 or IPv6 address
   * without brackets; "::" also takes IPv4 clients, any other IPv6 address only IPv6 ones. Throws
   * with the errno name as `code`.
   */
  listen(host: string, port: number, backlog: number): number;
  configure(
    connectTimeoutMs: number,
    retries: number,
    idleTimeoutMs: number,
    hedgeDelayMs: number,
    finTimeoutMs: number,
    leastconn: boolean,
    keepAliveMs: number,
  ): void;
  /** The whole list, in rotation order; an id seen before keeps its counters. */
  setBackends(backends: readonly EngineBackend[]): void;
  setBackendState(id: number, routable: boolean, draining: boolean): void;
  /** Closes every connection relayed to the backend; returns how many it carried. */
  destroyBackend(id: number): number;
  /** Closes the listener (pending connections in its queue are reset); open connections go on. */
  stopAccepting(): void;
  /** Closes every connection now. */
  destroyAll(): void;
  /** [connections (connecting too), bytesIn, bytesOut, retries, unansweredRetries, unserved, finTimeouts] */
  stats(): number[];
  /** [active, total, connectFailures, hedges, hedgeWins] */
  backendStats(id: number): number[];
  /** The events not handed to the callback yet: after close(), the threads' last reports. */
  takeEvents(): ArrayBuffer | undefined;
  /** Stops the threads, aborting what is left. Idempotent. */
  close(): void;
}

export interface RelayBinding {
  RelayEngine: new (
    onEvents: (batch: ArrayBuffer) => void,
    threads: number,
    observeConnections: boolean,
  ) => NativeRelayEngine;
  EVENT_BYTES: number;
}

/** What a frontend does with the engine's events; called in order, on the frontend's thread. */
export interface RelayEvents {
  opened(connection: ClientConnection): void;
  closed(connection: ClientConnection): void;
  /** A connect to `backend` completed after `ms`. */
  connected(backend: number, ms: number): void;
  /** `connecting` false: it connected, then closed or reset before answering. */
  connectFailed(backend: number, reason: string, next: NextStep, connecting: boolean): void;
  /** A hedge to `backend` overtook the slow connect to `slow`. */
  hedgeWon(backend: number, slow: number): void;
  unserved(reason: string): void;
  /** A draining backend has no connection left. */
  backendIdle(backend: number): void;
  /** Not accepting, and no connection left. */
  drained(): void;
  acceptError(code: string): void;
}

/** dist/src/native -> native/build/Release, where `node-gyp rebuild -C native` puts the addons. */
export const RELAY_ADDON_PATH = path.resolve(__dirname, '../../../native/build/Release/vipd_relay.node');

let binding: RelayBinding | undefined;

export function loadRelayBinding(): RelayBinding {
  if (binding !== undefined) return binding;
  try {
    binding = require(RELAY_ADDON_PATH) as RelayBinding;
  } catch (err) {
    throw new VipdError(
      'VIPD_NATIVE',
      `the native relay could not be loaded from ${RELAY_ADDON_PATH}: ${describeError(err)}; ` +
        'build it with `npm run build:native` (needs a C++ compiler, make and python3)',
      { cause: err },
    );
  }
  if (binding.EVENT_BYTES !== EVENT_BYTES) throw new VipdError('VIPD_NATIVE', 'the native relay is of another build');
  return binding;
}

const EVENT_BYTES = 56;
const TYPES = [
  '',
  'opened',
  'closed',
  'connected',
  'connectFailed',
  'hedgeWon',
  'unserved',
  'backendIdle',
  'drained',
  'acceptError',
  'finTimeout',
] as const;
const NEXT: readonly NextStep[] = ['none', 'retry', 'other'];
const UNSERVED = ['', 'no backend available', 'every backend tried failed'];

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** A failed attempt's reason as relay.cc codes it: an errno (its name), or one of its own. */
export function reasonText(code: number): string {
  if (code === -1) return 'connect timeout';
  if (code === -2) return 'closed before answering';
  return errnoNames.get(code) ?? `errno ${code}`;
}

/** The kernel's byte order (network) at `at`, as dotted quads. */
function ipv4(view: DataView, at: number): string {
  return `${view.getUint8(at)}.${view.getUint8(at + 1)}.${view.getUint8(at + 2)}.${view.getUint8(at + 3)}`;
}

/**
 * 16 bytes at `at` (network order) as RFC 5952 text: lowercase hex, no leading zeros, the first
 * longest run of two or more zero groups as "::". The form the config's addresses are compared in.
 */
export function ipv6Text(view: DataView, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(at + 2 * i, false));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      best = i;
      bestLength = end - i;
    }
    i = end === i ? i + 1 : end;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLength, 8)}`;
}

function connection(view: DataView, at: number): ClientConnection {
  const address = view.getUint8(at + 3) === 6 ? ipv6Text : ipv4;
  return {
    localAddress: address(view, at + 16),
    remoteAddress: address(view, at + 32),
    localPort: view.getUint16(at + 48, true),
    remotePort: view.getUint16(at + 50, true),
  };
}

/**
 * Hands a batch to `to`, event by event (56 bytes each, little-endian as this host writes them):
 * type u8, next u8, connecting u8, family u8 (4 or 6), backend u32, code i32, value i32, local
 * address, remote address (16 bytes each, network order, IPv4 in the first 4), local port u16,
 * remote port u16, _.
 */
export function dispatchRelayEvents(batch: ArrayBuffer, to: RelayEvents): void {
  const view = new DataView(batch);
  for (let at = 0; at + EVENT_BYTES <= batch.byteLength; at += EVENT_BYTES) {
    const backend = view.getUint32(at + 4, true);
    const code = view.getInt32(at + 8, true);
    const value = view.getInt32(at + 12, true);
    switch (TYPES[view.getUint8(at)]) {
      case 'opened':
        to.opened(connection(view, at));
        break;
      case 'closed':
        to.closed(connection(view, at));
        break;
      case 'connected':
        to.connected(backend, value / 1000);
        break;
      case 'connectFailed':
        to.connectFailed(backend, reasonText(code), NEXT[view.getUint8(at + 1)] ?? 'none', view.getUint8(at + 2) === 1);
        break;
      case 'hedgeWon':
        to.hedgeWon(backend, code);
        break;
      case 'unserved':
        to.unserved(UNSERVED[code] ?? `connect failed: ${reasonText(value)}`);
        break;
      case 'backendIdle':
        to.backendIdle(backend);
        break;
      case 'drained':
        to.drained();
        break;
      case 'acceptError':
        to.acceptError(reasonText(code));
        break;
      default:
        // finTimeout: counted by the engine itself.
        break;
    }
  }
}
