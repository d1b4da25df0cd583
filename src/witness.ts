/**
 * The composition root of a witness (`vipd witness`, or `vipd run` on a node whose peer entry says
 * `role: witness`): the election as an observer, which votes and acknowledges and counts for the
 * majority but is never a candidate, and the admin endpoint. Nothing else: no VIP (vip/none.ts, so
 * no CAP_NET_ADMIN or CAP_NET_RAW), no balancer, no tracked apiserver, no connection lists (a witness
 * never takes over, so the members send it none). It runs wherever the members' heartbeats reach
 * it: a worker node, a small VM, another site behind a router. docs/election.md, "Witness".
 */
import { type DaemonPhase, liveness, livenessLimitMs } from './admin/liveness';
import { AdminServer } from './admin/server';
import { type AdminSource, type Check, type DaemonStatus, daemonStatus } from './admin/status';
import type { LoadedConfig } from './config/load';
import { heartbeatKey } from './config/secret-key';
import { configWarnings } from './config/warnings';
import { closeInReverse, type Part, startInOrder } from './lifecycle';
import type { Logger } from './log/logger';
import { createMetrics, type Metrics } from './metrics/metrics';
import { Reloader } from './reload';
import { VERSION } from './version';
import { NoVipOwner } from './vip/none';
import { FormedRecord } from './vrrp/formed-record';
import { ElectionRunner } from './vrrp/runner';
import { electionSettings } from './vrrp/settings';

export interface WitnessOptions {
  readonly log: Logger;
}

export class Witness implements AdminSource {
  readonly metrics: Metrics;
  readonly election: ElectionRunner;
  private readonly admin: AdminServer;
  private readonly formed: FormedRecord;
  private readonly reloader: Reloader;
  private readonly livenessLimitMs: number;
  private state: DaemonPhase = 'starting';
  private stopping: Promise<void> | undefined;
  private readonly parts: readonly Part[];

  constructor(
    loaded: LoadedConfig,
    private readonly options: WitnessOptions,
  ) {
    const { config } = loaded;
    const log = options.log;
    this.metrics = createMetrics();
    // A witness learns that the cluster formed like any member, and records it: restarted, it is
    // counted again at once (the record is what a restarted member reads).
    this.formed = new FormedRecord(config.election.stateDir, config.election.clusterId, config.self.name);
    this.formed.prepare();
    const settings = electionSettings(config, { formed: this.formed.exists(), observer: true });
    this.livenessLimitMs = livenessLimitMs(settings);
    this.election = new ElectionRunner({
      settings,
      secret: heartbeatKey(loaded.secret),
      port: config.election.port,
      log,
      metrics: this.metrics,
      vip: new NoVipOwner(),
      onFormed: (via) => this.formed.recordAsync(via),
    });
    this.admin = new AdminServer(this, config.health.listen);
    // A reload changes nothing a witness uses but its priority (which never counts): it is checked
    // and refused like a member's, so the file on disk stays one every member could run.
    this.reloader = new Reloader(
      loaded,
      { proxy: undefined, election: this.election, retrack: () => undefined },
      { log },
    );
    this.parts = [
      { start: () => this.election.start(), close: () => this.election.close() },
      { start: () => this.admin.start(), close: () => this.admin.close() },
    ];
  }

  async start(): Promise<void> {
    const { config } = this.reloader.loaded;
    this.options.log.info(
      {
        config: config.file,
        address: config.self.address,
        peers: config.peers.map((p) => p.name),
        quorum: config.election.quorum,
        role: 'witness',
      },
      'vipd witness starting: votes and acknowledges, holds no VIP, runs no balancer',
    );
    for (const warning of configWarnings(config)) {
      this.options.log.warn({ component: 'config', warning }, 'config warning');
    }
    try {
      await startInOrder(this.parts);
      this.state = 'running';
    } catch (err) {
      await closeInReverse(this.parts);
      throw err;
    }
  }

  /** Graceful: the resign tells the members at once that this vote is gone. Idempotent. */
  stop(): Promise<void> {
    if (this.stopping === undefined) {
      this.state = 'stopping';
      this.stopping = this.election
        .stop()
        .then(() => closeInReverse(this.parts))
        .then(() => this.options.log.info('vipd stopped'));
    }
    return this.stopping;
  }

  abort(): Promise<void> {
    return closeInReverse(this.parts);
  }

  reload(): Promise<Check> {
    return this.reloader.reload();
  }

  // ---- AdminSource ---------------------------------------------------------------------------

  healthy(): Check {
    return liveness({ phase: this.state, election: this.election.liveness(), limitMs: this.livenessLimitMs });
  }

  /** Ready: running and live (there is no listener to wait for). */
  ready(): Check {
    const live = this.healthy();
    if (this.state !== 'running') return { ok: false, reason: this.state };
    if (!live.ok) return live;
    return { ok: true, reason: `config loaded, election running (witness, ${this.election.snapshot().role})` };
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
  }

  status(): DaemonStatus {
    return daemonStatus({
      config: this.reloader.loaded.config,
      version: VERSION,
      dryRun: false,
      election: this.election.snapshot(),
      vipHeldSince: undefined,
      apiserver: undefined,
      frontends: undefined,
      now: { mono: performance.now(), wall: Date.now() },
    });
  }
}
