/**
 * The composition root: builds vipd's parts from a config, starts them in order and stops them in
 * reverse (one list, lifecycle.ts), and answers the admin endpoint by asking the parts' owners. It
 * decides nothing itself: what a reload may change is config/restart-only.ts, the reload and the
 * config in force are reload.ts, the graceful stop's order is lifecycle.ts, the apiserver tracker in
 * force is track/apiserver.ts, liveness and readiness are admin/liveness.ts, /status is admin/status.ts.
 */

import { type DaemonPhase, liveness, livenessLimitMs, readiness } from './admin/liveness';
import { AdminServer } from './admin/server';
import { type AdminSource, type Check, type DaemonStatus, daemonStatus } from './admin/status';
import type { LoadedConfig } from './config/load';
import { heartbeatKey } from './config/secret-key';
import { configWarnings } from './config/warnings';
import { closeInReverse, type Part, startInOrder, stopGracefully } from './lifecycle';
import type { Logger, LogLevel } from './log/logger';
import { createMetrics, type Metrics } from './metrics/metrics';
import { ProxyThread } from './proxy/thread';
import { Reloader } from './reload';
import { ConnSync } from './takeover/conn-sync';
import { LogTickler, RawTickler, Takeover } from './takeover/takeover';
import { TrackedApiserver } from './track/apiserver';
import { VERSION } from './version';
import { DryRunVipOwner } from './vip/dry-run';
import { LinkWatch } from './vip/link-watch';
import { MultiVipOwner } from './vip/multi-owner';
import { NetlinkVipOwner } from './vip/netlink-owner';
import type { VipOwner } from './vip/owner';
import { FormedRecord } from './vrrp/formed-record';
import { linkEffect } from './vrrp/link-effect';
import { ElectionRunner } from './vrrp/runner';
import { electionSettings } from './vrrp/settings';

export interface DaemonOptions {
  readonly log: Logger;
  /** The log's format, for the balancer's thread (which has a logger of its own). */
  readonly logFormat?: 'json' | 'text';
  /** Take part in the election but only log VIP changes (and watch no link). */
  readonly dryRun: boolean;
}

export class Daemon implements AdminSource {
  readonly metrics: Metrics;
  readonly election: ElectionRunner;
  private readonly vip: VipOwner;
  private readonly admin: AdminServer;
  /** The balancer, on a thread of its own (proxy/thread.ts says why). */
  private readonly proxy: ProxyThread | undefined;
  /** The client connections on the VIP, shared with the peers; and their reset on a takeover. */
  private readonly connSync: ConnSync;
  private readonly takeover: Takeover;
  /** This node's own apiserver, tracked; a reload may replace its tracker. */
  private readonly apiserver: TrackedApiserver;
  private state: DaemonPhase = 'starting';
  /** /healthz fails after this long without an election step (admin/liveness.ts). */
  private readonly livenessLimitMs: number;
  private stopping: Promise<void> | undefined;
  /** The config in force; SIGHUP and POST /-/reload replace it, one at a time. */
  private readonly reloader: Reloader;
  private readonly formed: FormedRecord;
  /** Every part, in the order it starts; they close in reverse. */
  private readonly parts: readonly Part[];

  constructor(
    loaded: LoadedConfig,
    private readonly options: DaemonOptions,
  ) {
    const { config } = loaded;
    // A passphrase-like secret is stretched with scrypt (config/secret-key.ts); a random one is the key as written.
    const secret = heartbeatKey(loaded.secret);
    const log = options.log;
    this.metrics = createMetrics();
    const vipLog = log.child({ component: 'vip' });
    // One owner per address: a dual-stack pair moves together, held by the one election.
    const owners = config.vip.addresses.map((address) =>
      options.dryRun
        ? new DryRunVipOwner(vipLog, address, config.vip.interface)
        : new NetlinkVipOwner({ vip: { ...config.vip, address }, log: vipLog, metrics: this.metrics }),
    );
    this.vip = owners.length === 1 && owners[0] !== undefined ? owners[0] : new MultiVipOwner(owners);
    // A new cluster's first member serves alone until the others join; the record that the
    // cluster formed ends that for good (vrrp/formed-record.ts).
    this.formed = new FormedRecord(config.election.stateDir, config.election.clusterId, config.self.name);
    this.formed.prepare();
    const settings = electionSettings(config, { formed: this.formed.exists(), observer: options.dryRun });
    this.livenessLimitMs = livenessLimitMs(settings);
    // The connection lists travel on the election's socket, authenticated with its secret; the
    // epoch (this start) tells peers to drop what an earlier run of this member told them.
    this.connSync = new ConnSync({
      clusterId: settings.clusterId,
      self: settings.self,
      members: settings.members,
      secret,
      epoch: Date.now(),
      send: (bytes) => this.election.broadcast(bytes),
      deltaEveryMs: settings.intervalMs,
    });
    // Either family: the clients of each VIP (one, or a dual-stack pair) are listed and reset from it.
    const vips = config.vipAddresses.map((v) => v.ip);
    this.takeover = new Takeover({
      sync: this.connSync,
      tickler: options.dryRun
        ? new LogTickler(log)
        : new RawTickler({ vips, log, ticklesSent: this.metrics.ticklesSent }),
      vips,
      log,
      meters: { clientsReset: this.metrics.clientsReset },
    });
    this.metrics.setConnLists(() => ({ own: this.connSync.table.size, peers: this.connSync.counts() }));
    this.election = new ElectionRunner({
      settings,
      secret,
      port: config.election.port,
      log,
      metrics: this.metrics,
      vip: this.vip,
      channel: this.connSync,
      onVipHeld: (held) => this.takeover.onVipHeld(held),
      onFormed: (via) => this.formed.recordAsync(via),
    });
    this.admin = new AdminServer(this, config.health.listen);
    this.proxy = config.proxy.enabled
      ? new ProxyThread(config, {
          logLevel: log.level as LogLevel,
          logFormat: options.logFormat ?? 'json',
          node: config.nodeName,
          connections: this.takeover.observer,
          listen: !options.dryRun,
        })
      : undefined;
    this.apiserver = new TrackedApiserver(config, { log, election: this.election });
    this.reloader = new Reloader(
      loaded,
      { proxy: this.proxy, election: this.election, retrack: (next) => this.apiserver.retrack(next) },
      { log },
    );
    const linkWatch =
      options.dryRun || !config.vip.trackInterface
        ? undefined
        : new LinkWatch({ interface: config.vip.interface, log: log.child({ component: 'link' }) });
    linkWatch?.on('change', (state) => {
      log.info({ component: 'link', interface: config.vip.interface, link: state }, `link ${state}`);
      this.election.track(`link:${config.vip.interface}`, linkEffect(state));
    });
    this.parts = [
      // Prepared by the election's start; closed last, so the VIP is the last thing this member lets go.
      { close: () => this.vip.close() },
      // The listeners first: a port that cannot be bound fails the start before we join the election.
      { start: () => this.proxy?.start(), close: () => this.proxy?.destroy() },
      // The link state first, so a node whose link is down starts in FAULT and never claims.
      ...(linkWatch === undefined
        ? []
        : [
            {
              start: async () =>
                this.election.track(`link:${config.vip.interface}`, linkEffect(await linkWatch.start())),
              close: () => linkWatch.close(),
            },
          ]),
      { start: () => this.election.start(), close: () => this.election.close() },
      { start: () => this.connSync.start(), close: () => this.connSync.close() },
      { close: () => this.takeover.close() },
      // The tracker in force: a reload may replace it.
      { start: () => this.apiserver.start(), close: () => this.apiserver.close() },
      { start: () => this.admin.start(), close: () => this.admin.close() },
    ];
  }

  async start(): Promise<void> {
    const { config } = this.reloader.loaded;
    this.options.log.info(
      {
        config: config.file,
        vip: config.vip.address,
        ...(config.vip.addresses.length > 1 ? { vips: config.vip.addresses } : {}),
        interface: config.vip.interface,
        address: config.self.address,
        peers: config.peers.map((p) => p.name),
        quorum: config.election.quorum,
        dryRun: this.options.dryRun,
      },
      'vipd starting',
    );
    for (const warning of configWarnings(config)) {
      this.options.log.warn({ component: 'config', warning }, 'config warning');
    }
    try {
      await startInOrder(this.parts);
      this.state = 'running';
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Graceful: hand the VIP over, release it, close everything (lifecycle.ts). Idempotent; safe to await twice. */
  stop(): Promise<void> {
    if (this.stopping === undefined) {
      this.state = 'stopping';
      this.stopping = stopGracefully({
        tracker: this.apiserver,
        election: this.election,
        proxy: this.proxy,
        parts: this.parts,
        log: this.options.log,
      });
    }
    return this.stopping;
  }

  /** Abort without the handover: for a crash path (uncaught error). Still removes the VIP. */
  async abort(): Promise<void> {
    await this.close();
  }

  private close(): Promise<void> {
    return closeInReverse(this.parts);
  }

  /** SIGHUP or POST /-/reload: reload.ts applies the file in place or refuses it whole. */
  reload(): Promise<Check> {
    return this.reloader.reload();
  }

  // ---- AdminSource ---------------------------------------------------------------------------

  healthy(): Check {
    return liveness({ phase: this.state, election: this.election.liveness(), limitMs: this.livenessLimitMs });
  }

  ready(): Check {
    return readiness({
      phase: this.state,
      live: this.healthy(),
      role: this.election.snapshot().role,
      dryRun: this.options.dryRun,
      frontends: this.proxy?.status().frontends,
    });
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    const [own, proxy] = await Promise.all([this.metrics.registry.metrics(), this.proxy?.metricsText() ?? '']);
    return { contentType: this.metrics.registry.contentType, body: proxy === '' ? own : `${own}\n${proxy}` };
  }

  status(): DaemonStatus {
    return daemonStatus({
      config: this.reloader.loaded.config,
      version: VERSION,
      dryRun: this.options.dryRun,
      election: this.election.snapshot(),
      vipHeldSince: this.election.vipHeldSince(),
      apiserver: this.apiserver.status(),
      frontends: this.proxy?.status().frontends,
      now: { mono: performance.now(), wall: Date.now() },
    });
  }
}
