import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Config, type LoadedConfig, parseConfigText } from '../src/config/load';
import { ConfigError } from '../src/errors';
import { sleep, waitFor } from '../src/lab/wait';
import { createLogger } from '../src/log/logger';
import { Reloader, type ReloadTargets, reloadConfig } from '../src/reload';
import { minimalConfig } from './helpers/config-text';

const loaded = (election = '', extra = ''): LoadedConfig => {
  const { config, secret } = parseConfigText(
    minimalConfig('/etc/vipd/secret', `${election}\n${extra}`),
    '/etc/vipd/vipd.yaml',
    {
      readSecret: false,
    },
  );
  return { config: { ...config, vip: { ...config.vip, interface: 'eth0' }, interfaceFrom: 'vip.interface' }, secret };
};

/** Targets that record what the reload asked of them, in order; the balancer refuses if told to. */
function targets(proxyRefuses?: Error): { calls: string[]; targets: ReloadTargets } {
  const calls: string[] = [];
  return {
    calls,
    targets: {
      proxy: {
        reload: async (config: Config) => {
          calls.push(`proxy ${config.proxy.drainTimeout}`);
          if (proxyRefuses !== undefined) throw proxyRefuses;
        },
      },
      retrack: (config) => calls.push(`retrack ${config.track.apiserver.enabled}`),
      election: { reconfigure: (s) => calls.push(`election ${s.priority} ${s.preempt} ${s.preemptDelayMs}`) },
    },
  };
}

async function reload(running: LoadedConfig, next: LoadedConfig | Error, proxyRefuses?: Error) {
  const lines: Record<string, unknown>[] = [];
  const destination = {
    write: (l: string) => {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    },
  };
  const log = createLogger({ level: 'info', destination });
  const t = targets(proxyRefuses);
  const result = await reloadConfig(running, t.targets, {
    log,
    load: (file, options) => {
      assert.equal(file, running.config.file);
      assert.equal(options.hostname, 'cp1');
      if (next instanceof Error) throw next;
      return next;
    },
  });
  return { ...result, calls: t.calls, lines };
}

describe('reload', () => {
  it('applies the balancer, then priority and preemption; the tracker restarts for new track settings', async () => {
    const running = loaded();
    const next = loaded('  priority: 150\n  preempt: false\n  preemptDelay: 2s', 'proxy: { drainTimeout: 5s }');
    const r = await reload(running, next);
    assert.deepEqual(r.check, { ok: true, reason: 'applied' });
    assert.equal(r.loaded, next);
    assert.deepEqual(r.calls, ['proxy 5000', 'election 150 false 2000']);
    assert.equal(r.lines.at(-1)?.msg, 'config reloaded');

    const tracked = await reload(running, loaded('', 'track: { apiserver: { enabled: false } }'));
    assert.deepEqual(tracked.calls, ['proxy 20000', 'retrack false', 'election 100 true 0']);
  });

  it('refuses a file that does not load, naming its problems; nothing is touched', async () => {
    const running = loaded();
    const r = await reload(running, new ConfigError(['election.port: got 0', 'peers: required']));
    assert.deepEqual(r.check, { ok: false, reason: 'election.port: got 0; peers: required' });
    assert.equal(r.loaded, running);
    assert.deepEqual(r.calls, []);
    assert.deepEqual(r.lines[0]?.problems, ['election.port: got 0', 'peers: required']);
    assert.equal(r.lines[0]?.msg, 'reload refused, the running config stays: election.port: got 0; peers: required');
  });

  it('refuses a change to a restart-only key, naming the keys; nothing is touched', async () => {
    const running = loaded();
    const r = await reload(running, loaded('  priority: 150\n  port: 7590'));
    assert.deepEqual(r.check, { ok: false, reason: 'these keys only change with a restart: election.port' });
    assert.equal(r.loaded, running);
    assert.deepEqual(r.calls, []);
    assert.deepEqual(r.lines[0]?.keys, ['election.port']);
  });

  it('settings the balancer refuses keep the running config, the tracker and the election as they were', async () => {
    const running = loaded();
    const r = await reload(
      running,
      loaded('  priority: 150', 'track: { apiserver: { enabled: false } }'),
      new Error('cannot bind 0.0.0.0:6443'),
    );
    assert.deepEqual(r.check, { ok: false, reason: 'cannot bind 0.0.0.0:6443' });
    assert.equal(r.loaded, running);
    assert.deepEqual(r.calls, ['proxy 20000']);
  });
});

describe('Reloader: the config in force, reloads one at a time', () => {
  /**
   * A Reloader whose loads hand out `files` in turn; with `hold`, the balancer's reload finishes
   * only when `finish` is called.
   */
  function reloader(
    running: LoadedConfig,
    files: LoadedConfig[],
    { hold = true, retrack = () => {} }: { hold?: boolean; retrack?: ReloadTargets['retrack'] } = {},
  ) {
    const calls: string[] = [];
    const lines: Record<string, unknown>[] = [];
    const finishers: Array<() => void> = [];
    const destination = { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
    const r = new Reloader(
      running,
      {
        proxy: {
          reload: async (config) => {
            calls.push(`proxy ${config.election.priority} start`);
            if (hold) await new Promise<void>((resolve) => finishers.push(resolve));
            calls.push(`proxy ${config.election.priority} done`);
          },
        },
        retrack,
        election: { reconfigure: (s) => calls.push(`election ${s.priority}`) },
      },
      {
        log: createLogger({ level: 'info', destination }),
        load: () => {
          const next = files.shift();
          assert.ok(next !== undefined, 'a load too many');
          calls.push(`load ${next.config.election.priority}`);
          return next;
        },
      },
    );
    return { r, calls, lines, finish: () => finishers.shift()?.() };
  }

  it('a second reload waits for the first, and compares against what the first applied', async () => {
    const first = loaded('  priority: 150');
    const second = loaded('  priority: 160');
    const { r, calls, finish } = reloader(loaded(), [first, second]);
    const a = r.reload();
    const b = r.reload();
    await waitFor('the first reload at the balancer', () => calls.length === 2);
    await sleep(20);
    assert.deepEqual(calls, ['load 150', 'proxy 150 start'], 'the second has not started');
    finish();
    assert.deepEqual(await a, { ok: true, reason: 'applied' });
    assert.equal(r.loaded, first);
    await waitFor('the second reload at the balancer', () => calls.length === 6);
    finish();
    assert.deepEqual(await b, { ok: true, reason: 'applied' });
    assert.equal(r.loaded, second);
    assert.deepEqual(calls, [
      'load 150',
      'proxy 150 start',
      'proxy 150 done',
      'election 150',
      'load 160',
      'proxy 160 start',
      'proxy 160 done',
      'election 160',
    ]);
  });

  it('an unexpected error refuses the reload instead of rejecting; the next reload still runs', async () => {
    const running = loaded();
    let explode = true;
    const retrack = () => {
      if (explode) throw new Error('tracker exploded');
    };
    const untracked = 'track: { apiserver: { enabled: false } }';
    const next = loaded('  priority: 160', untracked);
    const { r, lines } = reloader(running, [loaded('  priority: 150', untracked), next], { hold: false, retrack });
    assert.deepEqual(await r.reload(), { ok: false, reason: 'reload failed: tracker exploded' });
    assert.equal(r.loaded, running, 'the running config stays');
    assert.equal(lines.at(-1)?.msg, 'reload failed: the running config stays');
    explode = false;
    assert.deepEqual(await r.reload(), { ok: true, reason: 'applied' });
    assert.equal(r.loaded, next);
  });
});
