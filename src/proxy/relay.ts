/**
 * One client connection: choose a backend, connect (hedging a slow connect with a second one, and
 * retrying on the next backend, like HAProxy's `retries` + `option redispatch`), then relay bytes
 * both ways until both sides are done.
 *
 * This is the proxy's hot path, so it is written for the new-connection rate (where Node proxies
 * trail HAProxy most):
 * - The listener functions are shared module-level functions that find their relay and peer
 *   through symbol-keyed fields on the socket (`this` is the emitting socket), so a connection
 *   allocates no closures and a chunk allocates nothing: `peer.write(chunk)` forwards the very
 *   Buffer that was read. No per-chunk logging or metrics (bytes are read from socket.bytesRead).
 * - Manual data/drain wiring instead of `stream.pipe`, which adds eight listeners and a closure
 *   per direction and would end the peer on 'end' regardless of half-close.
 * - The client arrives paused (pauseOnConnect): its first bytes stay in the kernel until a backend
 *   is connected, so a retry never has to replay buffered data and a client is never read faster
 *   than a backend can take it.
 * - One timer per connection while connecting, as before hedging: it fires at the hedge moment
 *   (then at the connect timeout), and is cleared when the connect completes, which is the usual
 *   case long before either.
 *
 * Connecting (at most two attempts in flight, each to a different backend):
 * - Hedge: an attempt still not connected after the hedge delay gets a second one beside it, to the
 *   next backend that is up; the first to connect wins and the other is destroyed. The slow one
 *   keeps its chance until its own connect timeout, but a connect overtaken by a hedge is not a
 *   failure by itself: only OVERTAKEN_LIMIT of them in a row, with no connect to that backend
 *   completing in between, mark it down passively (frontend.ts): a backend that swallows SYNs.
 * - Retry: a failed attempt (error, or no answer within connectTimeout) is retried on another
 *   backend while `retries` allow, unless another attempt that is not overdue is still in flight.
 *
 * Retry before the first answer: a backend that connects and then resets or closes before it has
 * sent a byte (an apiserver killed with connections in its accept queue, or closing its listener)
 * is swapped for another one, and the client never sees it. What the client sent meanwhile is
 * replayed to the next backend, which is only safe because nothing was answered: it is held (the
 * same Buffers, no copy) only when it starts as a TLS handshake record, and at most REPLAY_LIMIT
 * bytes. A TLS client's first flight has no effect on a server before the server answers, and
 * TLS 1.3 early data is replayable by design (RFC 8446 section 8), so a server must already
 * tolerate seeing it twice. Anything else is retried only if no byte of it has been forwarded.
 * Detection costs nothing per chunk: until the backend's first byte, the client's data goes
 * through a listener that also holds the chunk and the backend's through one that, at its first
 * chunk, swaps both sides to the plain listeners (once per connection).
 *
 * Half-close is preserved: a FIN from one side becomes end() on the other while data keeps flowing
 * the other way (`allowHalfOpen` on both sockets), which `kubectl exec` with stdin closed relies on.
 * After a FIN, the side that sent it gets an inactivity timeout of finTimeout (HAProxy's `timeout
 * client-fin` / `server-fin`): data still flowing the other way keeps the pair, only silence ends
 * it, so a peer that never closes after a FIN cannot pin a relay forever.
 * An error or reset on one side destroys the other at once. There is no idle timeout unless one is
 * configured: TCP keepalive finds dead peers, and watches may be silent for minutes.
 */
import net from 'node:net';
import type { Backend, Relay } from './backend';
import type { BackendPool } from './backend-pool';

/** A client connection on a frontend, as accepted (IPv4 addresses, read once at accept). */
export interface ClientConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** The first keepalive probe after this long idle: dead peers found in minutes, not two hours. */
export const KEEPALIVE_DELAY_MS = 30_000;
/**
 * Keepalive is switched on by a sweep this often (see Frontend), not at connect: it costs four
 * setsockopt calls per socket in libuv, about a fifth of the syscalls of a short connection, and
 * only connections that outlive the keepalive delay ever send a probe. Turning it on up to this
 * late only delays finding a dead peer by as much.
 */
export const KEEPALIVE_SWEEP_MS = 5_000;
/**
 * Client bytes held for a replay, at most. A TLS ClientHello is one record (at most 16 KiB, RFC
 * 8446 section 5.1) and usually 0.3-2 KB; past this the connection is simply not retried.
 */
export const REPLAY_LIMIT = 32 * 1024;
/** The content type of a TLS handshake record: the first byte of every ClientHello. */
const TLS_HANDSHAKE = 0x16;
/** Timers may fire up to a millisecond before performance.now() says they are due. */
const TIMER_SLACK_MS = 1;

/** What happens to the client after a failed attempt. */
export type NextStep = 'retry' | 'other' | 'none';

/** What a relay needs from the frontend that accepted it (read anew on each connection). */
export interface RelayHost {
  readonly pool: BackendPool;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly idleTimeoutMs: number;
  /** 0: no hedging. */
  readonly hedgeDelayMs: number;
  /** 0: no timeout after a FIN. */
  readonly finTimeoutMs: number;
  /** An attempt connected after `ms`. */
  connected(backend: Backend, ms: number): void;
  /** A second connect was started because the one to `backend` is slow. */
  hedged(backend: Backend): void;
  /** The second connect, to `backend`, overtook the slow one, to `slow`. */
  hedgeWon(backend: Backend, slow: Backend): void;
  /** A half-closed pair was closed by the FIN timeout. */
  finTimedOut(): void;
  /**
   * An attempt failed: while connecting (`connecting`), or connected but closed before answering.
   * `next`: a retry on another backend started, another attempt in flight carries on, or nothing.
   */
  connectFailed(backend: Backend, reason: string, next: NextStep, connecting: boolean): void;
  unserved(reason: string): void;
  relayDone(relay: ClientRelay): void;
}

const RELAY = Symbol('vipd.relay');
const PEER = Symbol('vipd.peer');
const BACKEND = Symbol('vipd.backend');
const STARTED = Symbol('vipd.started');
const HEDGED = Symbol('vipd.hedged');
const SPARE = Symbol('vipd.spare');
interface Linked extends net.Socket {
  [RELAY]: ClientRelay;
  [PEER]: Linked;
}
/** A connection to a backend. */
interface Attempt extends Linked {
  [BACKEND]: Backend;
  /** performance.now() when the connect started. */
  [STARTED]: number;
  /** It has had its hedge (or had no backend to hedge to): no second one. */
  [HEDGED]: boolean;
  /** It is the hedge of a slow attempt. */
  [SPARE]: boolean;
}

// biome-ignore lint/suspicious/noConstEnum: inlined by tsc (numbers on the per-connection path); never exported.
const enum Phase {
  Connecting,
  Relaying,
  Done,
}

/** Connect options per backend, built once: net.connect copies them, so sharing is safe. */
const connectOptionsCache = new WeakMap<Backend, net.NetConnectOpts>();
function connectOptions(backend: Backend): net.NetConnectOpts {
  let options = connectOptionsCache.get(backend);
  if (options === undefined) {
    options = {
      host: backend.address,
      port: backend.port,
      allowHalfOpen: true,
      noDelay: true,
    };
    connectOptionsCache.set(backend, options);
  }
  return options;
}

export class ClientRelay implements Relay {
  readonly client: Linked;
  /** Connecting: an attempt in flight (the older one); then the backend connection relayed to. */
  upstream: Attempt | undefined;
  /** The client as the connection observer was told of it; set by the frontend when it has one. */
  connection: ClientConnection | undefined;
  /** Connecting: a second attempt in flight (a hedge, or a retry beside an overdue attempt). */
  private second: Attempt | undefined;
  private phase = Phase.Connecting;
  /** Every backend attempted so far, once there is more than one attempt (see attempted()). */
  private tried: Backend[] | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Sockets of the relaying pair not yet closed. */
  private open = 2;
  private keepAlive = false;
  /** Relaying, until the backend's first byte: it can still be swapped for another backend. */
  private unanswered = false;
  /** Every client byte forwarded so far is in `held` (or none was forwarded). */
  private replayable = true;
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  /** The sides whose inactivity timeout is the FIN timeout: 1 the client, 2 the backend. */
  private finArmed = 0;

  constructor(
    client: net.Socket,
    private readonly host: RelayHost,
  ) {
    this.client = client as Linked;
    this.client[RELAY] = this;
    this.client.on('error', ignoreError);
    this.client.on('close', onClose);
    this.connectNext(performance.now());
  }

  /** The backend relayed to (or the older attempt's, while connecting). */
  get backend(): Backend | undefined {
    return this.upstream?.[BACKEND];
  }

  /** Bytes read from the client so far (relayed to a backend). */
  get bytesIn(): number {
    return this.client.bytesRead;
  }

  /** Bytes read from the backend so far (relayed to the client). */
  get bytesOut(): number {
    return this.upstream?.bytesRead ?? 0;
  }

  /** Turns TCP keepalive on for both sides once connected; called by the frontend's sweep. */
  enableKeepAlive(): void {
    if (this.keepAlive || this.phase !== Phase.Relaying) return;
    this.keepAlive = true;
    this.client.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.upstream?.setKeepAlive(true, KEEPALIVE_DELAY_MS);
  }

  /** Abort both sides. Idempotent. */
  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
    this.second?.destroy();
  }

  // --- connecting ------------------------------------------------------------------------------

  /** Starts an attempt on the next backend, or closes the client when there is none. */
  private connectNext(now: number): boolean {
    const backend = this.host.pool.pick(this.tried);
    if (backend === undefined) {
      if (this.upstream !== undefined) return false;
      this.host.unserved(this.tried === undefined ? 'no backend available' : 'every backend tried failed');
      this.client.destroy();
      return false;
    }
    this.launch(backend, now);
    return true;
  }

  private launch(backend: Backend, now: number, spare = false): void {
    if (this.tried !== undefined) this.tried.push(backend);
    const attempt = net.connect(connectOptions(backend)) as Attempt;
    attempt[RELAY] = this;
    attempt[BACKEND] = backend;
    attempt[STARTED] = now;
    attempt[HEDGED] = false;
    attempt[SPARE] = spare;
    attempt.on('error', onUpstreamError);
    attempt.on('connect', onUpstreamConnect);
    if (this.upstream === undefined) this.upstream = attempt;
    else this.second = attempt;
    this.arm(now);
  }

  /** Every backend attempted for this client, in flight or failed. */
  private attempted(): Backend[] {
    if (this.tried === undefined) {
      this.tried = [];
      if (this.upstream !== undefined) this.tried.push(this.upstream[BACKEND]);
      if (this.second !== undefined) this.tried.push(this.second[BACKEND]);
    }
    return this.tried;
  }

  /** The timer for the next hedge moment or connect deadline of the attempts in flight. */
  private arm(now: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const first = this.upstream;
    if (this.phase !== Phase.Connecting || first === undefined) return;
    const limit = this.host.connectTimeoutMs;
    let at = first[STARTED] + limit;
    const second = this.second;
    if (second !== undefined) {
      at = Math.min(at, second[STARTED] + limit);
    } else if (!first[HEDGED]) {
      const hedge = this.host.hedgeDelayMs;
      if (hedge > 0 && hedge < limit) at = Math.min(at, first[STARTED] + hedge);
    }
    this.timer = setTimeout(onConnectTimer, Math.max(TIMER_SLACK_MS, at - now), this);
  }

  /** @internal The timer fired (deferred past the I/O poll): time out, hedge, re-arm. */
  connectTimerDue(): void {
    this.timer = undefined;
    if (this.phase !== Phase.Connecting) return;
    const now = performance.now();
    const due = now + TIMER_SLACK_MS;
    const limit = this.host.connectTimeoutMs;
    const second = this.second;
    if (second !== undefined && due - second[STARTED] >= limit) this.attemptFailed(second, 'connect timeout');
    const first = this.upstream;
    if (first !== undefined && due - first[STARTED] >= limit) this.attemptFailed(first, 'connect timeout');
    const left = this.upstream;
    if (this.phase !== Phase.Connecting || left === undefined || this.client.destroyed) return;
    if (this.second === undefined && !left[HEDGED] && this.overdue(left, due)) {
      left[HEDGED] = true;
      const backend = this.host.pool.pickUp(this.attempted());
      if (backend !== undefined) {
        this.host.hedged(left[BACKEND]);
        this.launch(backend, now, true);
        return;
      }
    }
    this.arm(now);
  }

  private overdue(attempt: Attempt, now: number): boolean {
    const hedge = this.host.hedgeDelayMs;
    return hedge > 0 && now - attempt[STARTED] >= hedge;
  }

  /** @internal An attempt failed (an error, or no answer within connectTimeout). */
  attemptFailed(attempt: Attempt, reason: string): void {
    if (this.phase !== Phase.Connecting || (attempt !== this.upstream && attempt !== this.second)) return;
    this.attempted();
    if (attempt === this.upstream) this.upstream = this.second;
    this.second = undefined;
    attempt.destroy();
    const backend = attempt[BACKEND];
    backend.connectFailed();
    this.failures += 1;
    const now = performance.now();
    const left = this.upstream;
    let next: NextStep = 'none';
    if (this.client.destroyed) {
      next = 'none';
    } else if (left !== undefined && !this.overdue(left, now)) {
      next = 'other';
    } else if (this.failures <= this.host.retries && this.connectNext(now)) {
      if (left !== undefined) left[HEDGED] = true;
      next = 'retry';
    } else if (left !== undefined) {
      next = 'other';
    }
    this.host.connectFailed(backend, reason, next, true);
    if (next === 'none' && !this.client.destroyed) {
      this.host.unserved(`connect failed: ${reason}`);
      this.client.destroy();
    } else if (next === 'other') {
      this.arm(now);
    }
  }

  /** @internal */
  upstreamConnected(attempt: Attempt): void {
    const client = this.client;
    if (this.phase !== Phase.Connecting || client.destroyed || (attempt !== this.upstream && attempt !== this.second)) {
      attempt.destroy();
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    // The other attempt, if any, was overtaken: not a failure of its backend.
    const loser = attempt === this.upstream ? this.second : this.upstream;
    this.second = undefined;
    this.upstream = attempt;
    loser?.destroy();
    const backend = attempt[BACKEND];
    this.host.connected(backend, performance.now() - attempt[STARTED]);
    if (attempt[SPARE] && loser !== undefined) this.host.hedgeWon(backend, loser[BACKEND]);
    this.phase = Phase.Relaying;
    backend.attach(this);
    client[PEER] = attempt;
    attempt[PEER] = client;
    attempt.on('close', onClose);
    client.on('drain', onDrain);
    attempt.on('drain', onDrain);
    client.on('end', onEnd);
    attempt.on('end', onEnd);
    const held = this.held;
    if (held !== undefined) {
      for (let i = 0; i < held.length; i++) attempt.write(held[i] as Buffer);
    }
    if (this.replayable && this.failures < this.host.retries) {
      this.unanswered = true;
      client.on('data', onClientDataHeld);
      attempt.on('data', onFirstAnswer);
    } else {
      this.held = undefined;
      client.on('data', onData);
      attempt.on('data', onData);
    }
    const idle = this.host.idleTimeoutMs;
    if (idle > 0) {
      setInactivityTimeout(client, idle);
      setInactivityTimeout(attempt, idle);
    }
    client.resume();
  }

  // --- until the backend's first byte ----------------------------------------------------------

  /** @internal A client chunk about to be forwarded to a backend that has not answered yet. */
  hold(chunk: Buffer): void {
    if (!this.replayable) return;
    if (this.held === undefined) {
      if (chunk[0] !== TLS_HANDSHAKE) {
        this.replayable = false;
        return;
      }
      this.held = [chunk];
    } else {
      this.held.push(chunk);
    }
    this.heldBytes += chunk.length;
    if (this.heldBytes > REPLAY_LIMIT) {
      this.held = undefined;
      this.replayable = false;
    }
  }

  /** @internal The backend's first byte: from now on both sides take the plain path. */
  answered(upstream: Attempt): void {
    this.unanswered = false;
    this.held = undefined;
    this.client.removeListener('data', onClientDataHeld);
    this.client.on('data', onData);
    upstream.removeListener('data', onFirstAnswer);
    upstream.on('data', onData);
  }

  /**
   * @internal The backend closed or reset before answering: swap it for another one if the
   * client's bytes allow; returns false when the close is to be passed on as usual.
   */
  closedUnanswered(upstream: Attempt, reason: string): boolean {
    const client = this.client;
    if (!this.unanswered || upstream !== this.upstream || this.phase !== Phase.Relaying) return false;
    if (!this.replayable || client.destroyed || client.readableEnded || upstream.bytesRead > 0) return false;
    this.unanswered = false;
    this.attempted();
    this.failures += 1;
    const backend = upstream[BACKEND];
    backend.detach(this);
    backend.connectFailed();
    // Unhook the client: until the next backend connects, its bytes wait in the kernel again.
    client.pause();
    client.removeListener('data', onClientDataHeld);
    client.removeListener('drain', onDrain);
    client.removeListener('end', onEnd);
    upstream.removeListener('close', onClose);
    upstream.destroy();
    this.upstream = undefined;
    this.phase = Phase.Connecting;
    const now = performance.now();
    const retrying = this.connectNext(now);
    this.host.connectFailed(backend, reason, retrying ? 'retry' : 'none', false);
    return true;
  }

  // --- closing ---------------------------------------------------------------------------------

  /** @internal `socket` got the FIN of its peer: it gets the FIN timeout, if shorter than idle. */
  halfClosed(socket: Linked): void {
    const fin = this.host.finTimeoutMs;
    const idle = this.host.idleTimeoutMs;
    if (fin > 0 && (idle === 0 || fin < idle)) {
      setInactivityTimeout(socket, fin);
      this.finArmed |= socket === this.client ? 1 : 2;
    }
  }

  /** @internal `socket` saw no traffic for its idle or FIN timeout. */
  inactive(socket: Linked): void {
    if (this.phase === Phase.Done) return;
    if ((this.finArmed & (socket === this.client ? 1 : 2)) !== 0) this.host.finTimedOut();
    this.destroy();
  }

  /** @internal */
  socketClosed(socket: Linked, hadError: boolean): void {
    if (socket !== this.client && socket !== this.upstream) return;
    if (this.phase === Phase.Connecting) {
      // The client went away (or was destroyed) before a backend answered.
      clearTimeout(this.timer);
      this.timer = undefined;
      this.upstream?.destroy();
      this.second?.destroy();
      this.finish();
      return;
    }
    const peer = socket[PEER];
    // A clean close means this side's FIN was passed on and everything for it was delivered; the
    // peer then finishes by itself once its own buffered writes are flushed. Anything else (reset,
    // error, destroy) means the peer can no longer be served.
    if (!peer.destroyed && (hadError || !socket.readableEnded || !socket.writableFinished)) peer.destroy();
    if (--this.open === 0) this.finish();
  }

  private finish(): void {
    if (this.phase === Phase.Done) return;
    const wasRelaying = this.phase === Phase.Relaying;
    this.phase = Phase.Done;
    this.held = undefined;
    if (wasRelaying) this.backend?.detach(this);
    this.host.relayDone(this);
  }
}

/** Arms an inactivity timeout on a socket, with one shared listener however often it is re-armed. */
function setInactivityTimeout(socket: Linked, ms: number): void {
  // socket.setTimeout(ms, callback) would add a once() wrapper (a closure) on every call.
  socket.setTimeout(ms);
  if (socket.listenerCount('timeout') === 0) socket.on('timeout', onInactive);
}

function ignoreError(): void {
  // 'close' follows every error; that is where the relay reacts.
}

function onUpstreamError(this: Attempt, err: NodeJS.ErrnoException): void {
  const relay = this[RELAY];
  const reason = err.code ?? err.message;
  // While relaying, 'close' follows and is where the relay reacts, unless nothing was answered yet.
  if (!relay.closedUnanswered(this, reason)) relay.attemptFailed(this, reason);
}

function onConnectTimer(relay: ClientRelay): void {
  // Timers run before I/O is polled: after a stall (a GC pause, a busy loop) a connect already
  // completed in the kernel would otherwise lose to a timer that is only late because we were.
  setImmediate(onConnectTimerDeferred, relay);
}

function onConnectTimerDeferred(relay: ClientRelay): void {
  relay.connectTimerDue();
}

function onUpstreamConnect(this: Attempt): void {
  this[RELAY].upstreamConnected(this);
}

function onData(this: Linked, chunk: Buffer): void {
  const peer = this[PEER];
  if (peer.writable) {
    if (!peer.write(chunk)) this.pause();
  }
}

function onClientDataHeld(this: Linked, chunk: Buffer): void {
  const peer = this[PEER];
  if (peer.writable) {
    this[RELAY].hold(chunk);
    if (!peer.write(chunk)) this.pause();
  }
}

function onFirstAnswer(this: Attempt, chunk: Buffer): void {
  this[RELAY].answered(this);
  const peer = this[PEER];
  if (peer.writable) {
    if (!peer.write(chunk)) this.pause();
  }
}

function onDrain(this: Linked): void {
  this[PEER].resume();
}

function onEnd(this: Linked): void {
  const relay = this[RELAY];
  if (this !== relay.client && relay.closedUnanswered(this as Attempt, 'closed before answering')) return;
  const peer = this[PEER];
  if (peer.writable) peer.end();
  relay.halfClosed(this);
}

function onInactive(this: Linked): void {
  this[RELAY].inactive(this);
}

function onClose(this: Linked, hadError: boolean): void {
  this[RELAY].socketClosed(this, hadError);
}
