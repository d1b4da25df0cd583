/**
 * Tracks this node's own apiserver (keepalived's `vrrp_script` + `track_script` in the kubeadm
 * guide, built in): an HTTPS GET of https://<node address>:<port><path> on a timer, with the
 * balancer's checker and rise/fall counting. After `fall` failures in a row it reports a
 * TrackEffect for the election (lower the priority by `weight`, or FAULT); after `rise` successes,
 * `ok` again.
 *
 * It starts as `ok` and needs `fall` failures before it reports anything: at boot the apiserver
 * is a static pod the kubelet starts after vipd, and a member must not drop out of the election
 * just because it came up first. (kube-vip #1236: the entry point to the apiserver must not depend
 * on the apiserver.)
 *
 * `TrackedApiserver` is the tracker in force, as the daemon runs it: a reload may replace it.
 */
import { HealthChecker, type HealthCheckerOptions } from '../checks/health-checker';
import { type CheckRecord, type CheckReport, checkReport } from '../checks/probe';
import type { HealthState } from '../checks/rise-fall';
import { checkSettings } from '../checks/settings';
import { formatHostPort } from '../config/host-port';
import type { Config } from '../config/load';
import type { TrackApiserverConfig } from '../config/schema';
import type { Logger } from '../log/logger';
import type { TrackEffect } from '../vrrp/types';

export interface ApiserverTrackerOptions {
  /** This node's address (config.self.address). */
  readonly address: string;
  readonly settings: TrackApiserverConfig;
  readonly log: Logger;
  /** Replaces the HTTPS check; for tests. */
  readonly probe?: HealthCheckerOptions['probe'];
}

export interface ApiserverTrackerStatus {
  readonly url: string;
  readonly state: HealthState;
  readonly effect: TrackEffect;
  readonly lastCheck: CheckReport | null;
}

const OK: TrackEffect = { kind: 'ok' };

export class ApiserverTracker {
  private readonly checker: HealthChecker;
  private readonly log: Logger;
  private readonly url: string;
  private current: TrackEffect = OK;

  constructor(
    private readonly opts: ApiserverTrackerOptions,
    private readonly onChange: (effect: TrackEffect) => void,
  ) {
    const s = opts.settings;
    this.url = `https://${formatHostPort(opts.address, s.port)}${s.path}`;
    this.log = opts.log.child({ component: 'track', track: 'apiserver' });
    // The local apiserver's certificate is kubeadm's; the question is only whether it serves.
    const check = checkSettings(s, 'https', { verify: false });
    this.checker = new HealthChecker(
      { address: opts.address, port: s.port },
      check,
      (record, change) => this.onCheck(record, change),
      { initial: 'up', ...(opts.probe === undefined ? {} : { probe: opts.probe }) },
    );
  }

  start(): void {
    this.log.info(
      {
        url: this.url,
        interval: this.opts.settings.interval,
        fall: this.opts.settings.fall,
        rise: this.opts.settings.rise,
        mode: this.opts.settings.mode,
      },
      'tracking the local apiserver',
    );
    this.checker.start();
  }

  /** Stops checking. Idempotent. Reports nothing further. */
  close(): void {
    this.checker.close();
  }

  status(): ApiserverTrackerStatus {
    const last = this.checker.last;
    return {
      url: this.url,
      state: this.checker.state,
      effect: this.current,
      lastCheck: checkReport(last),
    };
  }

  private onCheck(record: CheckRecord, change: HealthState | undefined): void {
    if (change === undefined) return;
    const s = this.opts.settings;
    const effect: TrackEffect =
      change === 'up' ? OK : s.mode === 'weight' ? { kind: 'weight', weight: s.weight } : { kind: 'fault' };
    this.current = effect;
    if (change === 'up') this.log.info({ url: this.url, check: record.detail }, 'local apiserver healthy again');
    else this.log.warn({ url: this.url, check: record.detail, fall: s.fall, effect }, 'local apiserver unhealthy');
    this.onChange(effect);
  }
}

/** The tracked condition's name in the election (and in its logs). */
const APISERVER_TRACK = 'apiserver';

/** The election as the tracked apiserver sees it: where its verdicts go. */
interface TrackTarget {
  track(name: string, effect: TrackEffect): void;
}

/**
 * The apiserver tracker in force (none while `track.apiserver` is disabled): its verdicts are
 * logged and handed to the election. A reload with new `track` settings replaces it (`retrack`).
 */
export class TrackedApiserver {
  private tracker: ApiserverTracker | undefined;

  constructor(
    config: Pick<Config, 'self' | 'track'>,
    private readonly deps: {
      readonly log: Logger;
      readonly election: TrackTarget;
      /** Replaces the HTTPS check; for tests. */
      readonly probe?: HealthCheckerOptions['probe'];
    },
  ) {
    this.tracker = this.build(config);
  }

  start(): void {
    this.tracker?.start();
  }

  /** Stops checking. Idempotent. */
  close(): void {
    this.tracker?.close();
  }

  /** The tracker's status; undefined while tracking is disabled. */
  status(): ApiserverTrackerStatus | undefined {
    return this.tracker?.status();
  }

  /**
   * New `track` settings: the tracker restarts with them, and its verdict starts over from healthy
   * (the new one reports nothing before `fall` failures, so the old verdict must not outlive it).
   */
  retrack(config: Pick<Config, 'self' | 'track'>): void {
    this.tracker?.close();
    this.deps.election.track(APISERVER_TRACK, OK);
    this.tracker = this.build(config);
    this.tracker?.start();
  }

  private build(config: Pick<Config, 'self' | 'track'>): ApiserverTracker | undefined {
    if (!config.track.apiserver.enabled) return undefined;
    const { log, election, probe } = this.deps;
    return new ApiserverTracker(
      {
        address: config.self.address,
        settings: config.track.apiserver,
        log,
        ...(probe === undefined ? {} : { probe }),
      },
      (effect) => {
        log.info(
          { component: 'track', track: APISERVER_TRACK, effect: effect.kind },
          `apiserver check: ${effect.kind}`,
        );
        election.track(APISERVER_TRACK, effect);
      },
    );
  }
}
