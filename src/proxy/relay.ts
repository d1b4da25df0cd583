/**
 * One client connection: choose a backend, connect (retrying on the next backend, like HAProxy's
 * `retries` + `option redispatch`), then relay bytes both ways until both sides are done.
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
 *
 * Half-close is preserved: a FIN from one side becomes end() on the other while data keeps flowing
 * the other way (`allowHalfOpen` on both sockets), which `kubectl exec` with stdin closed relies on.
 * An error or reset on one side destroys the other at once. There is no idle timeout unless one is
 * configured: TCP keepalive finds dead peers, and watches may be silent for minutes.
 */
import net from 'node:net';
import type { Backend, Relay } from './backend';
import type { BackendPool } from './backend-pool';

/** The first keepalive probe after this long idle: dead peers found in minutes, not two hours. */
export const KEEPALIVE_DELAY_MS = 30_000;
/**
 * Keepalive is switched on by a sweep this often (see Frontend), not at connect: it costs four
 * setsockopt calls per socket in libuv, about a fifth of the syscalls of a short connection, and
 * only connections that outlive the keepalive delay ever send a probe. Turning it on up to this
 * late only delays finding a dead peer by as much.
 */
export const KEEPALIVE_SWEEP_MS = 5_000;

/** What a relay needs from the frontend that accepted it (read anew on each connection). */
export interface RelayHost {
  readonly pool: BackendPool;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly idleTimeoutMs: number;
  connectFailed(backend: Backend, reason: string, willRetry: boolean): void;
  unserved(reason: string): void;
  relayDone(relay: ClientRelay): void;
}

const RELAY = Symbol('vipd.relay');
const PEER = Symbol('vipd.peer');
interface Linked extends net.Socket {
  [RELAY]: ClientRelay;
  [PEER]: Linked;
}

const enum Phase { Connecting, Relaying, Done }

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
  upstream: Linked | undefined;
  backend: Backend | undefined;
  private phase = Phase.Connecting;
  private tried: Backend[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Sockets of the relaying pair not yet closed. */
  private open = 2;
  private keepAlive = false;

  constructor(client: net.Socket, private readonly host: RelayHost) {
    this.client = client as Linked;
    this.client[RELAY] = this;
    this.client.on('error', ignoreError);
    this.client.on('close', onClose);
    this.connectNext();
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
  }

  private connectNext(): void {
    const backend = this.host.pool.pick(this.tried);
    if (backend === undefined) {
      this.host.unserved(this.tried === undefined ? 'no backend available' : 'every backend tried failed');
      this.client.destroy();
      return;
    }
    this.backend = backend;
    const upstream = net.connect(connectOptions(backend)) as Linked;
    upstream[RELAY] = this;
    upstream.on('error', onUpstreamError);
    upstream.on('connect', onUpstreamConnect);
    this.upstream = upstream;
    this.timer = setTimeout(onConnectTimeout, this.host.connectTimeoutMs, this);
  }

  /** @internal */
  attemptFailed(upstream: Linked, reason: string): void {
    if (this.phase !== Phase.Connecting || upstream !== this.upstream) return;
    clearTimeout(this.timer);
    upstream.destroy();
    const backend = this.backend as Backend;
    this.tried ??= [];
    this.tried.push(backend);
    backend.connectFailed();
    const retry = this.tried.length <= this.host.retries && !this.client.destroyed;
    this.host.connectFailed(backend, reason, retry);
    this.upstream = undefined;
    this.backend = undefined;
    if (retry) this.connectNext();
    else if (!this.client.destroyed) {
      this.host.unserved(`connect failed: ${reason}`);
      this.client.destroy();
    }
  }

  /** @internal */
  upstreamConnected(upstream: Linked): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (this.phase !== Phase.Connecting || client.destroyed) {
      upstream.destroy();
      return;
    }
    this.phase = Phase.Relaying;
    (this.backend as Backend).attach(this);
    client[PEER] = upstream;
    upstream[PEER] = client;
    upstream.on('close', onClose);
    client.on('data', onData);
    upstream.on('data', onData);
    client.on('drain', onDrain);
    upstream.on('drain', onDrain);
    client.on('end', onEnd);
    upstream.on('end', onEnd);
    const idle = this.host.idleTimeoutMs;
    if (idle > 0) {
      client.setTimeout(idle, onIdle);
      upstream.setTimeout(idle, onIdle);
    }
    client.resume();
  }

  /** @internal */
  socketClosed(socket: Linked, hadError: boolean): void {
    if (this.phase === Phase.Connecting) {
      // The client went away (or was destroyed) before a backend answered.
      clearTimeout(this.timer);
      this.upstream?.destroy();
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
    if (wasRelaying) this.backend?.detach(this);
    this.host.relayDone(this);
  }
}

function ignoreError(): void {
  // 'close' follows every error; that is where the relay reacts.
}

function onUpstreamError(this: Linked, err: NodeJS.ErrnoException): void {
  this[RELAY].attemptFailed(this, err.code ?? err.message);
}

function onConnectTimeout(relay: ClientRelay): void {
  if (relay.upstream !== undefined) relay.attemptFailed(relay.upstream, 'connect timeout');
}

function onUpstreamConnect(this: Linked): void {
  this[RELAY].upstreamConnected(this);
}

function onData(this: Linked, chunk: Buffer): void {
  const peer = this[PEER];
  if (peer.writable) {
    if (!peer.write(chunk)) this.pause();
  }
}

function onDrain(this: Linked): void {
  this[PEER].resume();
}

function onEnd(this: Linked): void {
  const peer = this[PEER];
  if (peer.writable) peer.end();
}

function onIdle(this: Linked): void {
  this[RELAY].destroy();
}

function onClose(this: Linked, hadError: boolean): void {
  this[RELAY].socketClosed(this, hadError);
}
