/**
 * The lab's drill as a test, in namespaces it creates and removes: after each event (crash, link
 * cut, graceful stop, partition) exactly one other node holds the VIP and the client reaches it
 * again. Generous bounds: correctness, not speed (the lab prints the speed).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { it } from 'node:test';
import { runLab } from '../src/lab/lab';

it('the lab drill: every event moves the VIP to one other node and the client recovers', { timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const outcomes = await runLab({ verbose: false, out: (l) => lines.push(l) });
  console.log(lines.map((l) => `# ${l}`).join('\n'));
  assert.equal(outcomes.length, 4);
  for (const o of outcomes) {
    assert.notEqual(o.to, o.from, `${o.event}: the VIP moved`);
    assert.match(o.to, /^cp[123]$/, `${o.event}: exactly one holder (${o.to})`);
    assert.ok(o.vipMovedMs !== undefined && o.vipMovedMs < 10_000, `${o.event}: moved within 10 s`);
    assert.ok(o.outageMs !== undefined && o.outageMs < 10_000, `${o.event}: the client recovered`);
  }
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('vipd-lab-'));
  assert.deepEqual(left, [], 'the lab removed its namespaces');
});
