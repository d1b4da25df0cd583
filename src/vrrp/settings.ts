import type { Config } from '../config/load';
import type { ElectionSettings } from './types';

/** What the config does not say: from the state file and the command line. */
export interface RunState {
  /** The state file says this member knew the cluster had formed (vrrp/formed-file.ts). */
  readonly formed: boolean;
  /** `vipd run --dry-run`: an observer, never a candidate (a witness is one whatever this says). */
  readonly observer: boolean;
}

/** The election's view of the config. The bootstrap member is the first peer listed. */
export function electionSettings(config: Config, run: RunState): ElectionSettings {
  const e = config.election;
  return {
    clusterId: e.clusterId,
    self: { name: config.self.name, address: config.self.address },
    members: config.peers.map((p) =>
      p.role === 'witness' ? { name: p.name, address: p.address, witness: true } : { name: p.name, address: p.address },
    ),
    intervalMs: e.interval,
    deadAfter: e.deadAfter,
    maxDeadAfter: e.maxDeadAfter,
    priority: e.priority,
    preempt: e.preempt,
    preemptDelayMs: e.preemptDelay,
    quorum: e.quorum,
    bootstrap: config.peers[0]?.name ?? config.self.name,
    formed: run.formed,
    observer: run.observer || config.self.role === 'witness',
    vipLifetimeMs: config.vip.lifetime,
  };
}
