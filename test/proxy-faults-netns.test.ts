/**
 * The balancer under backend faults, on namespaced hosts (test/helpers/proxy-bed.ts): the real
 * `vipd run` in front of three stand-in HTTPS apiservers, and 4 clients each making new
 * TLS connections (an HTTPS GET /readyz apiece, 2 s client timeout) for 6 s:
 * - one apiserver blackholed from the start of the load (an nftables drop on its :9443, so SYNs get
 *   no answer at all, not even a reset): no request fails, none waits for the connect timeout;
 * - one apiserver SIGKILLed in the middle of the load: no request fails that it had not answered
 *   yet (what it had begun to answer dies with it: at most the requests in flight at the kill).
 * The figures are printed; the bounds asserted are generous (correctness, not speed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../src/lab/wait';
import { ProxyBed } from './helpers/proxy-bed';
import type { LoadSummary } from './helpers/tls-load';

const LOAD = { clients: 4, seconds: 6, timeoutMs: 2000 };
/** The goal for the blackhole: no request noticeably slower than through a healthy balancer. */
const GOAL_MS = 100;

function report(what: string, s: LoadSummary): void {
  console.log(
    `# ${what}: ${s.ok} done, ${s.failed} failed; p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms` +
      ` (the ${GOAL_MS} ms goal ${s.maxMs < GOAL_MS ? 'met' : 'missed'})`,
  );
  if (s.failures.length > 0) console.log(`#   failures: ${JSON.stringify(s.failures.slice(0, 10))}`);
  console.log(`#   slowest: ${JSON.stringify(s.slowest)}`);
}

describe('balancer faults on namespaced hosts (the real daemon)', { timeout: 180_000 }, () => {
  const bed = new ProxyBed();
  before(() => bed.build());
  after(() => bed.destroy());

  it('one apiserver blackholed (SYNs dropped): no request fails or waits for the connect timeout', async () => {
    await bed.blackhole('b2');
    let summary: LoadSummary;
    try {
      summary = await bed.load(LOAD);
      report('b2 blackholed', summary);
      const hedges = await bed.metric('vipd_proxy_hedges_total');
      const markdowns = await bed.metric('vipd_proxy_passive_markdowns_total', 'backend="b2"');
      console.log(
        `#   hedges ${hedges}, won by the hedge ${await bed.metric('vipd_proxy_hedge_wins_total')}, ` +
          `passive mark-downs of b2 ${markdowns}`,
      );
      // Read from the daemon's /metrics: the balancer's thread reports there too.
      assert.ok(hedges >= 1, 'connects to the blackholed apiserver were hedged');
      assert.ok(markdowns >= 1, 'and it was marked down once its connects kept being overtaken');
      // Leave it out of rotation before clearing the fault, so the next test starts from every
      // backend up rather than from a mark-down that lands in the middle of it.
      await bed.backendState('b2', 'down');
    } finally {
      await bed.clearBlackhole('b2');
    }
    assert.equal(summary.failed, 0, 'no request failed');
    assert.ok(summary.maxMs < 1000, `the slowest request took ${summary.maxMs} ms`);
    assert.ok(summary.ok > 100, `only ${summary.ok} requests in ${LOAD.seconds} s`);
  });

  it('one apiserver SIGKILLed in the middle of the load: only requests it was answering fail', async () => {
    await bed.allUp();
    const summary = await bed.load(LOAD, async () => {
      await sleep(LOAD.seconds * 500);
      bed.killStandIn('b2');
    });
    report('b2 SIGKILLed at 3 s', summary);
    console.log(
      `#   retries ${await bed.metric('vipd_proxy_retries_total')} (before an answer ` +
        `${await bed.metric('vipd_proxy_unanswered_retries_total')}), passive mark-downs ` +
        `${await bed.metric('vipd_proxy_passive_markdowns_total')}`,
    );
    // What a balancer that passes TLS through can save is every connection the dying apiserver had
    // not answered yet (refused, reset in its accept queue, closed before its first byte): those
    // are retried elsewhere. A request whose TLS session that apiserver had already begun dies with
    // it, here and behind HAProxy alike: at most the one request each client had in flight.
    const unanswered = summary.failures.filter((f) => !f.answered);
    assert.deepEqual(unanswered, [], 'no connection failed that the dying apiserver had not answered yet');
    assert.ok(summary.failed <= LOAD.clients, `${summary.failed} failed: more than the requests in flight at the kill`);
    assert.ok(summary.ok > 100, `only ${summary.ok} requests in ${LOAD.seconds} s`);
  });
  it('the daemon (balancer thread, checks, election) logged no line with a key twice', () => {
    assert.deepEqual(bed.daemon?.duplicateKeyLines ?? ['no daemon'], []);
  });
});
