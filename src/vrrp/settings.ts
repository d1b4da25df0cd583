import type { Config } from '../config/load';
import type { ElectionSettings } from './types';

/** The election's view of the config. */
export function electionSettings(config: Config): ElectionSettings {
  const e = config.election;
  return {
    clusterId: e.clusterId,
    self: { name: config.self.name, address: config.self.address },
    members: config.peers.map((p) => ({ name: p.name, address: p.address })),
    intervalMs: e.interval,
    deadAfter: e.deadAfter,
    maxDeadAfter: e.maxDeadAfter,
    priority: e.priority,
    preempt: e.preempt,
    preemptDelayMs: e.preemptDelay,
    quorum: e.quorum,
    vipLifetimeMs: config.vip.lifetime,
  };
}
