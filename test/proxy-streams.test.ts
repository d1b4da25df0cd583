/**
 * What flows through a relay: long-lived watches across checks and reloads, idle timeouts, 256 MiB
 * both ways byte for byte, half-close in both orders, 2,000 connections at once.
 * The balancer end to end on loopback (test/helpers/loopback-proxy.ts): a vipd proxy on 127.0.0.20
 * in front of three stand-in apiservers on 127.0.0.21-23, with real sockets and 100ms health checks.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { describe, it } from 'node:test';
import { pattern } from '../src/lab/stand-in-apiserver';
import { waitFor } from '../src/lab/wait';
import { FRONT, LoopbackProxy, spec } from './helpers/loopback-proxy';
import { patternSha256, rawCall } from './helpers/raw-client';

describe('long-lived streams', { timeout: 60_000 }, () => {
  it('a watch stays open across many health-check cycles and across reloads', async () => {
    const bed = await LoopbackProxy.withStandIns();
    let req: ReturnType<typeof https.get> | undefined;
    try {
      const arrivals: number[] = [];
      let ended = false;
      const path = '/api/v1/watch/events?watch=1';
      req = https.get({ host: FRONT, port: bed.port, path, rejectUnauthorized: false, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          for (const _ of chunk.matchAll(/\n/g)) arrivals.push(performance.now());
        });
        res.on('close', () => {
          ended = true;
        });
      });
      req.on('error', () => {
        ended = true;
      });
      await waitFor('first event', () => arrivals.length > 0, { timeoutMs: 3000 });
      const watchBackend = bed.proxy.status().frontends[0]?.backends.find((b) => b.activeConnections === 1)?.name;
      assert.ok(watchBackend !== undefined);
      const checksBefore = bed.fakes.find((f) => f.name === watchBackend)?.requestCount ?? 0;

      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(
        (bed.fakes.find((f) => f.name === watchBackend)?.requestCount ?? 0) - checksBefore >= 6,
        'several check cycles ran meanwhile',
      );

      // Reload 1: new check timings and balance, same backends.
      await bed.proxy.reload(
        bed.config({
          balance: 'leastconn',
          healthCheck: { interval: '150ms', timeout: '100ms' },
        }),
      );
      await new Promise((r) => setTimeout(r, 400));
      // Reload 2: the watch's backend removed from the config; it drains, the watch keeps going.
      const others = bed.fakes.filter((f) => f.name !== watchBackend);
      await bed.proxy.reload(bed.config({}, { backends: others.map(spec) }));
      const countAtReload = arrivals.length;
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(ended, false, 'the watch was not cut');
      assert.ok(arrivals.length > countAtReload + 20, 'events kept flowing after the reload');
      const gaps = arrivals.slice(1).map((t, i) => t - (arrivals[i] ?? t));
      assert.ok(Math.max(...gaps) < 300, `longest pause between events ${Math.max(...gaps)}ms`);
      assert.equal(bed.backend(watchBackend)?.draining, true);
      for (let i = 0; i < 6; i++) {
        assert.notEqual(await bed.who(), watchBackend, 'a draining backend gets no new connections');
      }

      req.destroy();
      await waitFor('drained backend retired', () => bed.backend(watchBackend) === undefined, { timeoutMs: 2000 });
    } finally {
      req?.destroy();
      await bed.close();
    }
  });

  it('has no idle timeout by default, and honours one when configured', async () => {
    const bed = await LoopbackProxy.withStandIns({ idleTimeout: '300ms' });
    try {
      const idle = await bed.echo();
      const t0 = performance.now();
      await waitFor('idle connection closed', () => idle.closed, { timeoutMs: 2000 });
      assert.ok(performance.now() - t0 >= 250);
      await bed.proxy.reload(bed.config({ idleTimeout: '0s' }));
      const forever = await bed.echo();
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(forever.closed, false);
      assert.equal(await forever.roundTrip('x'), 'x');
    } finally {
      await bed.close();
    }
  });
});

describe('byte integrity', { timeout: 180_000 }, () => {
  const SIZE = 256 * 1024 * 1024;
  // Proxy, backends and client share one event loop here; relaxed checks keep a loop stall during
  // the transfer from marking the backend down (and on-marked-down from cutting the transfer).
  const relaxed = { healthCheck: { interval: '1s', timeout: '800ms' } };

  for (const threads of [1, 2]) {
    it(`256 MiB client -> backend arrives intact (sha256), proxy.threads ${threads}`, async () => {
      const bed = await LoopbackProxy.withStandIns(relaxed, { threads });
      try {
        const reply = (await rawCall(FRONT, bed.port, 'SINK', { payload: pattern(SIZE), timeoutMs: 60_000 }))
          .toString()
          .trim();
        assert.equal(reply, `${patternSha256(SIZE)} ${SIZE}`);
      } finally {
        await bed.close();
      }
    });
  }

  it('256 MiB backend -> client arrives intact (sha256), and the peer FIN comes through', async () => {
    const bed = await LoopbackProxy.withStandIns(relaxed);
    try {
      const socket = net.connect({ host: FRONT, port: bed.port, allowHalfOpen: true });
      const hash = createHash('sha256');
      let bytes = 0;
      socket.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      socket.write(`SOURCE ${SIZE}\n`);
      const noFin = new Promise((_, rej) => setTimeout(() => rej(new Error('no FIN within 60s')), 60_000).unref());
      await Promise.race([once(socket, 'end'), noFin]);
      assert.equal(bytes, SIZE);
      assert.equal(hash.digest('hex'), patternSha256(SIZE));
      socket.destroy();
      const bytesMetric = await bed.registry.getSingleMetric('vipd_proxy_bytes_total')?.get();
      const out = bytesMetric?.values.find((v) => v.labels.direction === 'out')?.value ?? 0;
      assert.ok(out >= SIZE, `vipd_proxy_bytes_total{direction="out"} = ${out}`);
    } finally {
      await bed.close();
    }
  });
});

describe('half-close', { timeout: 60_000 }, () => {
  it('client FIN first: the backend sees it and still answers', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      const reply = await rawCall(FRONT, bed.port, 'ECHO', { payload: [Buffer.from('hello after which I FIN')] });
      assert.match(reply.toString(), /^b[123]\nhello after which I FIN$/);
    } finally {
      await bed.close();
    }
  });

  it('backend FIN first: the client still gets to send afterwards', async () => {
    const bed = await LoopbackProxy.withStandIns();
    try {
      const socket = net.connect({ host: FRONT, port: bed.port, allowHalfOpen: true });
      let got = 0;
      socket.on('data', (c: Buffer) => {
        got += c.length;
      });
      const closed = once(socket, 'close');
      socket.write('SOURCE 1000\n');
      await once(socket, 'end');
      assert.equal(got, 1000);
      const done = Promise.race(bed.fakes.map((f) => once(f, 'sourceDone')));
      socket.end('sent after the server FIN');
      const [received] = (await done) as [number];
      assert.equal(received, 'sent after the server FIN'.length);
      await closed;
    } finally {
      await bed.close();
    }
  });
});

describe('scale', { timeout: 120_000 }, () => {
  for (const threads of [1, 2]) {
    it(`serves 2,000 concurrent connections, proxy.threads ${threads}`, async () => {
      // The clients, the stand-ins and the checks share this event loop: checks every 100 ms with an
      // 80 ms timeout mark the stand-ins down (and on-marked-down closes every connection) whenever
      // the loop is busy with a batch of 250 connects on a loaded machine.
      const relaxed = { healthCheck: { interval: '1s', timeout: '800ms' } };
      const bed = await LoopbackProxy.withStandIns(relaxed, { threads });
      const sockets: net.Socket[] = [];
      try {
        const N = 2000;
        let echoed = 0;
        const connectOne = () =>
          new Promise<void>((resolve, reject) => {
            const s = net.connect({ host: FRONT, port: bed.port });
            sockets.push(s);
            let buf = '';
            s.setEncoding('latin1');
            s.on('data', (c: string) => {
              buf += c;
              if (buf.endsWith('ping\n')) {
                echoed += 1;
                resolve();
              }
            });
            s.once('error', reject);
            s.once('close', () => reject(new Error(`closed after ${JSON.stringify(buf)}`)));
            s.write('ECHO\nping\n');
          });
        for (let i = 0; i < N; i += 250) {
          await Promise.all(Array.from({ length: Math.min(250, N - i) }, connectOne));
        }
        assert.equal(echoed, N);
        const st = bed.proxy.status().frontends[0];
        assert.equal(st?.activeConnections, N);
        const spread = st?.backends.map((b) => b.activeConnections) ?? [];
        if (threads === 1) assert.deepEqual(spread, [667, 667, 666]);
        // Each thread takes its own turns: the totals are within a connection per thread of a third.
        else
          assert.ok(
            spread.every((n) => Math.abs(n - N / 3) <= threads),
            `spread ${spread.join(', ')}`,
          );
        assert.equal(await bed.metric('vipd_proxy_connections_active'), N);
        for (const s of sockets) s.end();
        await waitFor('all closed', () => bed.active() === 0, { timeoutMs: 10_000 });
      } finally {
        for (const s of sockets) s.destroy();
        await bed.close();
      }
    });
  }
});
