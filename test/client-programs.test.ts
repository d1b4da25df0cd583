/**
 * The drill's client programs (src/lab: the watch, the load, the storm, the process sampler), each
 * run quickly against a stand-in apiserver on loopback: they work and report what happened,
 * including through the stand-in's death and return. No goal of the failover work is asserted
 * here (the drill and the benchmark measure those on the namespaced bed); no root needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { runLoad, summarize, waitForBackends } from '../src/lab/load-client';
import { ProcessSampler } from '../src/lab/process-sampler';
import { FakeApiserver, generateCert } from '../src/lab/stand-in-apiserver';
import { StormClient, StormLog } from '../src/lab/storm-client';
import { waitFor } from '../src/lab/wait';
import { WatchClient, WatchLog } from '../src/lab/watch-client';

const HOST = '127.0.0.1';

describe("the drill's client programs on loopback", { timeout: 60_000 }, () => {
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
    const client = new WatchClient({ server: `https://${HOST}:${port}`, backoffMs: 50 }, (r) =>
      log.add(JSON.stringify(r)),
    );
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
    assert.deepEqual(
      summarize(0, [
        { t: 0, ms: 3 },
        { t: 0, ms: 1 },
        { t: 0, ms: 2, error: 'x' },
      ]),
      { started: 0, done: 2, failed: 1, errors: { x: 1 }, p50Ms: 2, p99Ms: 3, maxMs: 3 },
    );
  });

  it('the storm: 200 idle clients connect, and all reconnect after their server dies and returns', async () => {
    const log = new StormLog();
    const storm = new StormClient({ host: HOST, port, clients: 200, backoffMs: 50, maxBackoffMs: 200 }, (r) =>
      log.add(JSON.stringify(r)),
    );
    try {
      await storm.start();
      await waitFor('200 clients up', () => log.established === 200, { timeoutMs: 10_000 });
      assert.equal(storm.established, 200);
      await waitFor('200 watches held by the server', () => server.activeConnections >= 200, { timeoutMs: 5000 });
      const fault = Date.now();
      await restart();
      await waitFor('every client back', () => log.reconnects(fault, 200).every((r) => r !== undefined), {
        timeoutMs: 15_000,
      });
      assert.equal(log.established, 200);
    } finally {
      storm.close();
    }
  });

  it('the programs run as the drill runs them: files started with node, JSON lines out, stop when stdin closes', async () => {
    const watch = await program(
      'watch-client.js',
      [`https://${HOST}:${port}`, '20'],
      (lines) => lines.filter((l) => l.kind === 'event').length >= 3,
    );
    assert.ok(
      watch.some((l) => l.kind === 'start'),
      'a watch started',
    );
    const storm = await program(
      'storm-client.js',
      [HOST, String(port), '--clients', '20'],
      (lines) => lines.filter((l) => l.up === true).length >= 20,
    );
    assert.deepEqual(new Set(storm.map((l) => l.slot)).size, 20, 'every client reported up');
    const load = await program('load-client.js', [HOST, String(port), '--clients', '1', '--seconds', '0.3'], (lines) =>
      lines.some((l) => l.kind === 'result'),
    );
    const result = load.find((l) => l.kind === 'result');
    assert.ok(result !== undefined && Number(result.done) > 0 && result.failed === 0, JSON.stringify(result));
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

/**
 * Runs a client program (dist/src/lab/SCRIPT) until its output lines satisfy `enough` (at most
 * 10 s), then closes its stdin and waits for it to exit (it must, by itself, within 5 s).
 */
async function program(
  script: string,
  args: readonly string[],
  enough: (lines: Record<string, unknown>[]) => boolean,
): Promise<Record<string, unknown>[]> {
  const child = spawn(process.execPath, [join(__dirname, '..', 'src', 'lab', script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  child.stdin.on('error', () => undefined); // a program that ended by itself: EPIPE on the close
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const lines: Record<string, unknown>[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${script}: not enough output in 10 s: ${JSON.stringify(lines)}`)),
        10_000,
      );
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (enough(lines)) done();
      });
      void exited.then(() => {
        if (enough(lines)) done();
      });
    });
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    assert.equal(await exited, 0, `${script} exited by itself, with 0`);
    clearTimeout(timer);
    return lines;
  } finally {
    child.kill('SIGKILL');
  }
}
