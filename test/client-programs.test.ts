/**
 * The drill's client programs (src/lab: the watch, the load, the storm, the process sampler), each
 * run quickly against a stand-in apiserver on loopback: they work and report what happened,
 * including through the stand-in's death and return. No goal of the failover work is asserted
 * here (the drill and the benchmark measure those on the namespaced bed); no root needed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { summarize, runLoad, waitForBackends } from '../src/lab/load-client';
import { ProcessSampler } from '../src/lab/process-sampler';
import { FakeApiserver, generateCert, waitFor } from '../src/lab/stand-in-apiserver';
import { StormClient, StormLog } from '../src/lab/storm-client';
import { WatchClient, WatchLog } from '../src/lab/watch-client';

const HOST = '127.0.0.1';

describe('the drill\'s client programs on loopback', { timeout: 60_000 }, () => {
  let server: FakeApiserver;
  let port = 0;
  const restart = async () => {
    await server.kill();
    server = await FakeApiserver.start({ host: HOST, port, name: 'again', cert: await generateCert([HOST]) });
  };

  before(async () => {
    server = await FakeApiserver.start({ host: HOST, name: 'first', cert: await generateCert([HOST]) });
    port = server.port;
  });
  after(() => server.kill());

  it('the watch (client-node) receives events, and restarts after its server dies', async () => {
    const log = new WatchLog();
    const client = new WatchClient({ server: `https://${HOST}:${port}`, backoffMs: 50 },
      (r) => log.add(JSON.stringify(r)));
    try {
      const start = Date.now();
      await client.start();
      assert.equal(log.unavailable, undefined, 'client-node loads (a devDependency)');
      assert.ok(await log.waitFor(() => log.flowingAfter(start), 5000), 'events arrive');
      const fault = Date.now();
      await restart();
      assert.ok(await log.waitFor(() => log.resumedAfter(fault) !== undefined, 10_000), 'a new watch delivers events');
      assert.ok(log.restartsAfter(fault) >= 1);
      assert.ok(log.endsAfter(fault).length >= 1, 'the old watch ended');
      assert.ok((log.lastEventBefore(fault) ?? Infinity) <= fault);
    } finally {
      client.close();
    }
  });

  it('the load counts requests done and failed, with latencies', async () => {
    const ok = await runLoad({ host: HOST, port, clients: 2, seconds: 1 });
    assert.ok(ok.done > 10, `requests done: ${ok.done}`);
    assert.equal(ok.failed, 0);
    assert.ok(ok.p50Ms <= ok.p99Ms && ok.p99Ms <= ok.maxMs);
    assert.deepEqual(await waitForBackends({ host: HOST, port, want: 1, timeoutMs: 5000 }), [server.name]);
    const failed = await runLoad({ host: HOST, port: 1, clients: 1, seconds: 0.2 }); // nothing listens on port 1
    assert.equal(failed.done, 0);
    assert.ok(failed.failed > 0 && failed.errors.ECONNREFUSED === failed.failed, JSON.stringify(failed.errors));
    assert.deepEqual(summarize(0, [{ t: 0, ms: 3 }, { t: 0, ms: 1 }, { t: 0, ms: 2, error: 'x' }]),
      { started: 0, done: 2, failed: 1, errors: { x: 1 }, p50Ms: 2, p99Ms: 3, maxMs: 3 });
  });

  it('the storm: 200 idle clients connect, and all reconnect after their server dies and returns', async () => {
    const log = new StormLog();
    const storm = new StormClient({ host: HOST, port, clients: 200, backoffMs: 50, maxBackoffMs: 200 },
      (r) => log.add(JSON.stringify(r)));
    try {
      await storm.start();
      await waitFor('200 clients up', () => log.established === 200, 10_000);
      assert.equal(storm.established, 200);
      await waitFor('200 watches held by the server', () => server.activeConnections >= 200, 5000);
      const fault = Date.now();
      await restart();
      await waitFor('every client back', () => log.reconnects(fault, 200).every((r) => r !== undefined), 15_000);
      assert.equal(log.established, 200);
    } finally {
      storm.close();
    }
  });

  it('the process sampler reads CPU and memory from /proc', async () => {
    const sampler = new ProcessSampler(() => [process.pid], 20);
    const until = Date.now() + 200;
    let spin = 0;
    while (Date.now() < until) spin += 1; // some CPU to see
    await new Promise((r) => setTimeout(r, 50));
    const cost = sampler.stop();
    assert.ok(spin > 0 && cost.cpuSeconds > 0 && cost.peakCpuPercent > 0 && cost.peakRssMiB > 10, JSON.stringify(cost));
    assert.deepEqual(sampler.stop(), cost, 'stop is idempotent');
  });
});
