/**
 * The native engine's choice of a backend (native/relay.cc, "choosing a backend"), with real
 * sockets on loopback: plain TCP listeners as backends that record which of them each client
 * reached. roundrobin takes each eligible backend in turn, skipping down and draining ones and
 * resuming the rotation where it was; when none is up it falls back to those marked down, never to
 * draining ones; leastconn takes the one with the fewest relayed connections, ties in turn; a
 * failed connect is retried on a backend not tried yet. Also: the engine's counters, its events in
 * order, and close() with connections open.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { waitFor } from '../src/lab/wait';
import {
  type ClientConnection,
  dispatchRelayEvents,
  type EngineBackend,
  loadRelayBinding,
  type NativeRelayEngine,
  type NextStep,
  type RelayEvents,
} from '../src/native/relay-engine';

const FRONT = '127.0.0.30';
const HOSTS = ['127.0.0.31', '127.0.0.32', '127.0.0.33', '127.0.0.34'];

interface Listener {
  readonly host: string;
  readonly port: number;
  readonly server: net.Server;
  /** Connections accepted and still open. */
  readonly sockets: Set<net.Socket>;
  accepted: number;
}

async function listener(host: string): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const l: Listener = { host, port: 0, server: net.createServer(), sockets, accepted: 0 };
  l.server.on('connection', (s) => {
    l.accepted += 1;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    // Says who it is, so the client knows where it landed.
    s.write(host);
  });
  l.server.listen(0, host);
  await once(l.server, 'listening');
  return Object.assign(l, { port: (l.server.address() as net.AddressInfo).port });
}

/** Everything the engine reported, in order. */
class Recorder implements RelayEvents {
  readonly log: string[] = [];
  opened(c: ClientConnection): void {
    this.log.push(`opened ${c.remotePort}`);
  }
  closed(c: ClientConnection): void {
    this.log.push(`closed ${c.remotePort}`);
  }
  connected(backend: number): void {
    this.log.push(`connected ${backend}`);
  }
  connectFailed(backend: number, reason: string, next: NextStep, connecting: boolean): void {
    this.log.push(`failed ${backend} ${reason} ${next} ${connecting}`);
  }
  hedgeWon(backend: number, slow: number): void {
    this.log.push(`hedge ${backend} ${slow}`);
  }
  unserved(reason: string): void {
    this.log.push(`unserved ${reason}`);
  }
  backendIdle(backend: number): void {
    this.log.push(`idle ${backend}`);
  }
  drained(): void {
    this.log.push('drained');
  }
  acceptError(code: string): void {
    this.log.push(`accept ${code}`);
  }
}

class Bed {
  readonly events = new Recorder();
  readonly engine: NativeRelayEngine;
  readonly clients = new Set<net.Socket>();
  port = 0;
  constructor(
    readonly backends: Listener[],
    leastconn = false,
  ) {
    const { RelayEngine } = loadRelayBinding();
    this.engine = new RelayEngine((b) => dispatchRelayEvents(b, this.events), 1, true);
    this.engine.configure(1000, 3, 0, 0, 30_000, leastconn, 5000);
    this.set();
    this.port = this.engine.listen(FRONT, 0, 128);
  }
  set(state: Partial<Record<number, Partial<EngineBackend>>> = {}): void {
    this.engine.setBackends(
      this.backends.map((b, i) => ({
        id: i + 1,
        address: b.host,
        port: b.port,
        routable: true,
        draining: false,
        ...state[i + 1],
      })),
    );
  }
  /** One client: resolves with the backend host that greeted it; the connection stays open. */
  async connect(): Promise<string> {
    const c = net.connect(this.port, FRONT);
    this.clients.add(c);
    c.on('error', () => undefined);
    const [data] = (await once(c, 'data')) as [Buffer];
    return data.toString();
  }
  async connectMany(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.connect());
    return out;
  }
  close(): void {
    for (const c of this.clients) c.destroy();
    this.engine.close();
  }
}

describe('the native engine: choice of a backend', { timeout: 60_000 }, () => {
  const listeners: Listener[] = [];
  const beds: Bed[] = [];
  const start = async (n: number, leastconn = false) => {
    while (listeners.length < n) listeners.push(await listener(HOSTS[listeners.length] as string));
    const bed = new Bed(listeners.slice(0, n), leastconn);
    beds.push(bed);
    return bed;
  };
  const [b1, b2, b3, b4] = HOSTS;
  after(() => {
    for (const b of beds) b.close();
    for (const l of listeners) {
      for (const s of l.sockets) s.destroy();
      l.server.close();
    }
  });

  it('roundrobin takes each backend in turn', async () => {
    const bed = await start(3);
    assert.deepEqual(await bed.connectMany(7), [b1, b2, b3, b1, b2, b3, b1]);
  });

  it('skips down and draining backends, and resumes the rotation where it was', async () => {
    const bed = await start(4);
    bed.set({ 2: { routable: false }, 3: { draining: true } });
    assert.deepEqual(await bed.connectMany(4), [b1, b4, b1, b4]);
    bed.engine.setBackendState(2, true, false);
    assert.deepEqual(await bed.connectMany(3), [b1, b2, b4]);
  });

  it('falls back to down backends when none is up, never to draining ones', async () => {
    const bed = await start(3);
    bed.set({ 1: { routable: false }, 2: { routable: false }, 3: { routable: false, draining: true } });
    assert.deepEqual(await bed.connectMany(3), [b1, b2, b1]);
  });

  it('leastconn takes the backend with the fewest connections, ties in turn, skipping down ones', async () => {
    const bed = await start(3, true);
    assert.deepEqual(await bed.connectMany(4), [b1, b2, b3, b1]);
    // b1 has two open, b2 and b3 one each: the next two go to b2 and b3.
    assert.deepEqual(await bed.connectMany(2), [b2, b3]);
    bed.engine.setBackendState(2, false, false);
    assert.deepEqual(await bed.connectMany(3), [b1, b3, b1]);
    const active = [1, 2, 3].map((id) => bed.engine.backendStats(id)[0]);
    assert.deepEqual(active, [4, 2, 3]);
  });

  it('a refused connect is retried on a backend not tried yet; the events say so, in order', async () => {
    const dead = await listener(b4 as string);
    dead.server.close(); // nothing listens there now: connects are refused
    await once(dead.server, 'close');
    const { RelayEngine } = loadRelayBinding();
    const events = new Recorder();
    const engine = new RelayEngine((b) => dispatchRelayEvents(b, events), 1, true);
    try {
      engine.configure(1000, 3, 0, 0, 30_000, false, 5000);
      const live = listeners[0] as Listener;
      engine.setBackends([
        { id: 7, address: dead.host, port: dead.port, routable: true, draining: false },
        { id: 8, address: live.host, port: live.port, routable: true, draining: false },
      ]);
      const port = engine.listen(FRONT, 0, 128);
      const c = net.connect(port, FRONT);
      c.on('error', () => undefined);
      const [data] = (await once(c, 'data')) as [Buffer];
      assert.equal(data.toString(), live.host);
      const clientPort = c.localPort;
      c.destroy();
      await waitFor('the close reported', () => events.log.includes(`closed ${clientPort}`), { timeoutMs: 5000 });
      assert.deepEqual(events.log, [
        `opened ${clientPort}`,
        'failed 7 ECONNREFUSED retry true',
        'connected 8',
        `closed ${clientPort}`,
      ]);
      assert.deepEqual(engine.backendStats(7), [0, 0, 1, 0, 0], 'one failure on the dead one');
      assert.deepEqual(engine.backendStats(8), [0, 1, 0, 0, 0], 'one connection relayed by the live one');
      const [connections, , , retries, , unserved] = engine.stats();
      assert.deepEqual([connections, retries, unserved], [0, 1, 0]);
    } finally {
      engine.close();
    }
  });

  it('no backend at all: the client is closed and counted unserved', async () => {
    const { RelayEngine } = loadRelayBinding();
    const events = new Recorder();
    const engine = new RelayEngine((b) => dispatchRelayEvents(b, events), 2, false);
    try {
      engine.configure(1000, 3, 0, 0, 30_000, false, 5000);
      engine.setBackends([]);
      const port = engine.listen(FRONT, 0, 128);
      const c = net.connect(port, FRONT);
      c.on('error', () => undefined);
      await once(c, 'close');
      await waitFor('the event', () => events.log.length > 0, { timeoutMs: 5000 });
      assert.deepEqual(events.log, ['unserved no backend available']);
      assert.equal(engine.stats()[5], 1);
    } finally {
      engine.close();
    }
  });

  it('a listening engine its owner dropped is not collected: it serves until close()', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const live = listeners[0] ?? (await listener(b1 as string));
    const { RelayEngine } = loadRelayBinding();
    let port = 0;
    const ref = (() => {
      const engine = new RelayEngine(() => undefined, 1, false);
      engine.configure(1000, 3, 0, 0, 30_000, false, 5000);
      engine.setBackends([{ id: 1, address: live.host, port: live.port, routable: true, draining: false }]);
      port = engine.listen(FRONT, 0, 128);
      return new WeakRef(engine);
    })();
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    const engine = ref.deref();
    assert.ok(engine !== undefined, 'still there after garbage collections');
    try {
      const c = net.connect(port, FRONT);
      c.on('error', () => undefined);
      const [data] = (await once(c, 'data')) as [Buffer];
      assert.equal(data.toString(), live.host);
      c.destroy();
    } finally {
      engine.close();
    }
  });

  it('close() with connections open ends them, and takeEvents() has the last closes', async () => {
    const bed = await start(2);
    await bed.connectMany(2);
    bed.engine.close();
    const last = bed.engine.takeEvents();
    assert.ok(last !== undefined);
    dispatchRelayEvents(last, bed.events);
    assert.equal(bed.events.log.filter((l) => l.startsWith('closed')).length, 2);
    const ends = [...bed.clients].map((c) => (c.destroyed ? Promise.resolve() : once(c, 'close')));
    await Promise.all(ends);
    bed.engine.close(); // idempotent
  });
});
