import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeInReverse, type Part, startInOrder, stopGracefully } from '../src/lifecycle';
import { createLogger } from '../src/log/logger';

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

describe('stopGracefully: the handover, then the parts in reverse', () => {
  /** A stop whose election hands over (running the hook only as a master would) and whose parts record it all. */
  async function stop(opts: { master: boolean; proxy: boolean }) {
    const { log, parts } = fakeParts(['-vip', 'election', 'admin']);
    const lines: string[] = [];
    const destination = { write: (l: string) => void lines.push((JSON.parse(l) as { msg: string }).msg) };
    await stopGracefully({
      tracker: { close: () => void log.push('close tracker') },
      election: {
        stop: async (beforeRelease) => {
          log.push('handover');
          if (opts.master) await beforeRelease();
          log.push('resign');
        },
      },
      proxy: opts.proxy
        ? {
            destroy: async () => void log.push('destroy proxy'),
            close: async () => void log.push('drain proxy'),
          }
        : undefined,
      parts,
      log: createLogger({ level: 'info', destination }),
    });
    return { log, lines };
  }

  it('a master: tracker stopped, relayed connections closed before the release, then the parts', async () => {
    const { log, lines } = await stop({ master: true, proxy: true });
    assert.deepEqual(log, [
      'close tracker',
      'handover',
      'destroy proxy',
      'resign',
      'drain proxy',
      'close admin',
      'close election',
      'close -vip',
    ]);
    assert.match(lines[0] ?? '', /^closing relayed connections before releasing the VIP/);
    assert.equal(lines.at(-1), 'vipd stopped');
  });

  it('a backup drains its connections after the handover; without a balancer nothing is logged for it', async () => {
    const backup = await stop({ master: false, proxy: true });
    assert.deepEqual(backup.log.slice(0, 4), ['close tracker', 'handover', 'resign', 'drain proxy']);
    const bare = await stop({ master: true, proxy: false });
    assert.deepEqual(bare.log, ['close tracker', 'handover', 'resign', 'close admin', 'close election', 'close -vip']);
    assert.deepEqual(bare.lines, ['vipd stopped']);
  });
});
