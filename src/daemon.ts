/**
 * The composition root: builds vipd's parts from a config, starts them in order and stops them in
 * reverse. It decides nothing itself.
 */
import type { LoadedConfig } from './config/load';
import type { Logger } from './log/logger';
import { createMetrics, type Metrics } from './metrics/metrics';
import { DryRunVipOwner } from './vip/dry-run';
import type { VipOwner } from './vip/owner';
import { ElectionRunner } from './vrrp/runner';
import { electionSettings } from './vrrp/settings';

export interface DaemonOptions {
  readonly log: Logger;
  /** Take part in the election but only log VIP changes. */
  readonly dryRun: boolean;
}

export class Daemon {
  readonly metrics: Metrics;
  readonly election: ElectionRunner;
  private readonly vip: VipOwner;
  private stopping: Promise<void> | undefined;

  constructor(private readonly loaded: LoadedConfig, private readonly options: DaemonOptions) {
    const { config, secret } = loaded;
    this.metrics = createMetrics();
    this.vip = new DryRunVipOwner(options.log.child({ component: 'vip' }), config.vip.address, config.vip.interface);
    this.election = new ElectionRunner({
      settings: electionSettings(config),
      secret,
      port: config.election.port,
      log: options.log,
      metrics: this.metrics,
      vip: this.vip,
    });
  }

  async start(): Promise<void> {
    const { config } = this.loaded;
    this.options.log.info({
      config: config.file, vip: config.vip.address, interface: config.vip.interface, address: config.self.address,
      peers: config.peers.map((p) => p.name), quorum: config.election.quorum, dryRun: this.options.dryRun,
    }, 'vipd starting');
    try {
      await this.election.start();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Graceful: hand the VIP over, release it, close everything. Idempotent; safe to await twice. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.election.stop();
      await this.close();
      this.options.log.info('vipd stopped');
    })();
    return this.stopping;
  }

  private async close(): Promise<void> {
    await this.election.close();
    await this.vip.close();
  }
}
