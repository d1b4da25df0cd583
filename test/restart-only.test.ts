import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FileConfig, type Loaded, parseConfigText } from '../src/config/load';
import { RESTART_ONLY_KEYS, restartOnlyChanges } from '../src/config/restart-only';
import { configSchema, electionSchema, healthSchema, proxySchema } from '../src/config/schema';

/** What src/reload.ts applies in place. Every other key of the config is restart-only. */
const RELOADED_KEYS = [
  'election.priority',
  'election.preempt',
  'election.preemptDelay',
  'proxy.enabled',
  'proxy.drainTimeout',
  'proxy.frontends',
  'track',
];

const config = (election = '', extra = '', vip = '10.0.0.100/24'): Loaded<FileConfig> =>
  parseConfigText(
    `
nodeName: cp1
peers:
  - { name: cp1, address: 10.0.0.11 }
  - { name: cp2, address: 10.0.0.12 }
  - { name: cp3, address: 10.0.0.13 }
vip: { address: ${vip}, interface: eth0 }
election:
  secretFile: /etc/vipd/secret
${election}
${extra}`,
    'test.yaml',
    { readSecret: false },
  );

describe('restart-only keys', () => {
  it('priority, preemption, the balancer and the tracked apiserver change in place', () => {
    const changed = config(
      '  priority: 200\n  preempt: false\n  preemptDelay: 5s',
      `
proxy: { drainTimeout: 5s, frontends: [{ name: api, bind: 0.0.0.0:8443 }] }
track: { apiserver: { enabled: false } }`,
    );
    assert.deepEqual(restartOnlyChanges(config(), changed), []);
  });

  it('a key that defines the cluster, a socket or the VIP is named, in order; and the secret', () => {
    const running = config();
    assert.deepEqual(restartOnlyChanges(running, config('  port: 7590\n  interval: 200ms')), [
      'election.port',
      'election.interval',
    ]);
    assert.deepEqual(restartOnlyChanges(running, config('', 'health: { listen: 127.0.0.1:7600 }')), ['health.listen']);
    assert.deepEqual(restartOnlyChanges(running, config('', 'proxy: { threads: 2 }')), ['proxy.threads']);
    assert.deepEqual(restartOnlyChanges(running, config('  clusterId: 7', '', '10.0.0.101/24')), [
      'vip',
      'election.clusterId',
    ]);
    const secret = Buffer.from('another secret!!');
    assert.deepEqual(restartOnlyChanges(running, { ...running, secret }), ['the secret']);
  });

  it('every key of the config is either restart-only or applied by a reload, never both', () => {
    // A new key fails here until it is placed: in RESTART_ONLY (config/restart-only.ts), or applied by reload.ts.
    const nested: Record<string, readonly string[]> = {
      election: Object.keys(electionSchema.shape),
      health: Object.keys(healthSchema.shape),
      proxy: Object.keys(proxySchema.shape),
    };
    const keys = Object.keys(configSchema.shape).flatMap((k) => nested[k]?.map((s) => `${k}.${s}`) ?? [k]);
    for (const key of keys) {
      const places = [RESTART_ONLY_KEYS.includes(key), RELOADED_KEYS.includes(key)].filter(Boolean).length;
      assert.equal(places, 1, `${key}: ${places === 0 ? 'neither restart-only nor applied by a reload' : 'both'}`);
    }
    assert.deepEqual(
      [...RESTART_ONLY_KEYS, ...RELOADED_KEYS].filter((k) => !keys.includes(k)),
      [],
      'keys the config lacks',
    );
  });
});
