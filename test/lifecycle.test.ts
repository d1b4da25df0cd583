import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeInReverse, type Part, startInOrder } from '../src/lifecycle';

/** Parts that record their starts and closes; `slow` ones take a few ms; `failing` actions ("start b") throw. */
function fakeParts(names: readonly string[], opts: { slow?: readonly string[]; failing?: readonly string[] } = {}) {
  const log: string[] = [];
  const act = async (what: string, name: string) => {
    if (opts.slow?.includes(name)) await sleep(5);
    log.push(`${what} ${name}`);
    if (opts.failing?.includes(`${what} ${name}`)) throw new Error(`${what} ${name} failed`);
  };
  const parts: Part[] = names.map((name) =>
    name.startsWith('-')
      ? { close: () => act('close', name) }
      : { start: () => act('start', name), close: () => act('close', name) },
  );
  return { log, parts };
}

describe('lifecycle: one list, started in order, closed in reverse', () => {
  it('starts each part after the one before it, and closes them last first', async () => {
    const { log, parts } = fakeParts(['-vip', 'proxy', 'election', 'admin'], { slow: ['proxy', 'election'] });
    await startInOrder(parts);
    await closeInReverse(parts);
    assert.deepEqual(log, [
      'start proxy',
      'start election',
      'start admin',
      'close admin',
      'close election',
      'close proxy',
      'close -vip',
    ]);
  });

  it('a start that fails stops the start; closing then closes every part, started or not', async () => {
    const { log, parts } = fakeParts(['-vip', 'proxy', 'election', 'admin'], { failing: ['start election'] });
    await assert.rejects(startInOrder(parts), /start election failed/);
    await closeInReverse(parts);
    assert.deepEqual(log, [
      'start proxy',
      'start election',
      'close admin',
      'close election',
      'close proxy',
      'close -vip',
    ]);
  });

  it('a close that throws leaves none of the others open; its error is thrown after', async () => {
    const failing = ['close election', 'close proxy'];
    const { log, parts } = fakeParts(['-vip', 'proxy', 'election', 'admin'], { failing });
    await assert.rejects(closeInReverse(parts), /close election failed/);
    assert.deepEqual(log, ['close admin', 'close election', 'close proxy', 'close -vip']);
  });
});
