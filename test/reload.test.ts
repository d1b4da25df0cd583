import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Config, type LoadedConfig, parseConfigText } from '../src/config/load';
import { ConfigError } from '../src/errors';
import { createLogger } from '../src/log/logger';
import { type ReloadTargets, reloadConfig } from '../src/reload';
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
