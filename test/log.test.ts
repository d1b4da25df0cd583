import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, RateLimitedLog } from '../src/log/logger';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination }) };
}

describe('RateLimitedLog', () => {
  it('logs one line per key per window, then says how many it suppressed', () => {
    const { lines, log } = capture();
    let t = 0;
    const limited = new RateLimitedLog(log, 10_000, () => t);
    for (let i = 0; i < 50; i += 1) limited.warn('drop:bad_mac:10.0.0.9', { reason: 'bad_mac' }, 'dropped a heartbeat');
    limited.warn('drop:replay:10.0.0.9', { reason: 'replay' }, 'dropped a heartbeat');
    assert.equal(lines.length, 2);
    t = 10_000;
    limited.warn('drop:bad_mac:10.0.0.9', { reason: 'bad_mac' }, 'dropped a heartbeat');
    assert.equal(lines.length, 3);
    assert.equal(lines[2]?.suppressed, 49);
  });

  it('stays bounded when every packet claims another source (a spoofing flood)', () => {
    const { lines, log } = capture();
    let t = 0;
    const limited = new RateLimitedLog(log, 10_000, () => t, 64);
    for (let i = 0; i < 100_000; i += 1) {
      t = i / 100; // 100 k sources in one second
      limited.warn(`drop:bad_mac:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, {}, 'dropped a heartbeat');
    }
    assert.ok(limited.size <= 65, `${limited.size} entries`);
    assert.equal(lines.length, 65, 'one line per key, then one for the overflow');
    assert.equal(lines[64]?.overflow, true);
    // Once the window has passed, old keys are swept out and new ones get their own line again.
    t = 20_000;
    limited.warn('drop:bad_mac:192.0.2.1', {}, 'dropped a heartbeat');
    assert.equal(lines.length, 66);
    assert.equal(lines[65]?.overflow, undefined);
    assert.ok(limited.size <= 65);
  });
});
