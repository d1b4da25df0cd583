import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, RateLimitedLog, resolveLogFormat } from '../src/log/logger';
import { duplicateKeys } from './helpers/strict-json';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n'))
        if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
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

describe("duplicateKeys (the tests' strict reading of log lines)", () => {
  it('finds a key twice in one object at any depth, and only then', () => {
    assert.deepEqual(duplicateKeys('{"a":1,"b":{"c":2,"c":3},"a":"x","d":[{"e":1,"e":2}]}'), ['b.c', 'a', 'd[].e']);
    assert.deepEqual(duplicateKeys('{"a":{"k":1},"b":{"k":1},"s":"{\\"a\\":1,\\"a\\":2}","n":[1,2,{}]}'), []);
    assert.throws(() => duplicateKeys('{"a":'));
  });

  it("a child logger that repeats its parent's binding writes the key twice (what the daemon must not do)", () => {
    const text: string[] = [];
    const log = createLogger({
      level: 'info',
      destination: {
        write: (l: string) => {
          text.push(l);
        },
      },
    });
    log.child({ component: 'proxy' }).child({ component: 'proxy' }).info('x');
    log.child({ component: 'proxy' }).info({ frontend: 'f' }, 'y');
    assert.deepEqual(
      text.map((l) => duplicateKeys(l.trim())),
      [['component'], []],
    );
  });
});

describe('log formats', () => {
  it('text: one readable line per event (time, level, message, then the fields); json stays JSON', () => {
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        out.push(chunk.toString('utf8'));
        done();
      },
    });
    const log = createLogger({ level: 'info', node: 'cp1', format: 'text', destination: sink });
    log.child({ component: 'election' }).warn({ peers: ['cp2'] }, 'not hearing from cp2');
    const line = out.join('');
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: not hearing from cp2 /);
    assert.match(line, /"component":"election"/);
    assert.throws(() => JSON.parse(line.trim()));
    assert.equal(resolveLogFormat('json'), 'json');
    assert.equal(resolveLogFormat('text'), 'text');
    // Under the test runner stdout is a pipe: auto means JSON, as in a pod.
    assert.equal(resolveLogFormat('auto'), process.stdout.isTTY === true ? 'text' : 'json');
  });
});
