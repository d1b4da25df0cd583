/**
 * A reload (SIGHUP, POST /-/reload, `vipd reload`): re-read the config file and apply it in place,
 * or refuse it whole so the running config stays. Refused: a file that does not load, a change to a
 * key only a restart changes (config/restart-only.ts), balancer settings the balancer rejects.
 * Applied, in this order: the balancer's frontends, backends and checks; the tracked apiserver,
 * restarted when its settings changed; the election's priority and preemption (a lower priority may
 * hand the VIP over, so it goes last, once nothing can refuse any more). `Reloader` holds the config
 * in force and runs the reloads one at a time.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Check } from './admin/status';
import { type Config, type HostLoadOptions, type LoadedConfig, loadConfigFile } from './config/load';
import { restartOnlyChanges } from './config/restart-only';
import { ConfigError, describeError } from './errors';
import type { Logger } from './log/logger';
import type { Reconfigurable } from './vrrp/types';

/** The parts a reload changes in place. */
export interface ReloadTargets {
  /** The balancer, if enabled: applies the new settings, or throws and keeps its own. */
  readonly proxy: { reload(config: Config): Promise<void> } | undefined;
  /** Restarts the apiserver tracker with the new `track` settings. */
  retrack(config: Config): void;
  readonly election: { reconfigure(settings: Reconfigurable): void };
}

export interface ReloadOptions {
  readonly log: Logger;
  /** Reads the file; loadConfigFile by default (tests give a config without a file). */
  readonly load?: (file: string, options: HostLoadOptions) => LoadedConfig;
}

/** What a reload did, and the config in force after it: the new one if applied, else the running one. */
export interface ReloadResult {
  readonly check: Check;
  readonly loaded: LoadedConfig;
}

export async function reloadConfig(
  running: LoadedConfig,
  targets: ReloadTargets,
  options: ReloadOptions,
): Promise<ReloadResult> {
  const { log } = options;
  const refuse = (fields: Record<string, unknown>, reason: string): ReloadResult => {
    log.error({ component: 'reload', ...fields }, `reload refused, the running config stays: ${reason}`);
    return { check: { ok: false, reason }, loaded: running };
  };
  let next: LoadedConfig;
  try {
    next = (options.load ?? loadConfigFile)(running.config.file, { hostname: running.config.nodeName });
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : undefined;
    return refuse({ config: running.config.file, problems }, refusalReason(err));
  }
  const fixed = restartOnlyChanges(running, next);
  if (fixed.length > 0) return refuse({ keys: fixed }, `these keys only change with a restart: ${fixed.join(', ')}`);
  try {
    await targets.proxy?.reload(next.config);
  } catch (err) {
    return refuse({ err }, refusalReason(err));
  }
  if (!isDeepStrictEqual(next.config.track, running.config.track)) targets.retrack(next.config);
  const e = next.config.election;
  targets.election.reconfigure({ priority: e.priority, preempt: e.preempt, preemptDelayMs: e.preemptDelay });
  log.info(
    { component: 'reload', config: next.config.file, priority: e.priority, preempt: e.preempt },
    'config reloaded',
  );
  return { check: { ok: true, reason: 'applied' }, loaded: next };
}

/**
 * The config in force, and the reloads that replace it: one at a time (a SIGHUP and a POST
 * /-/reload at once would both compare against the same running config), and never a rejection: an
 * unexpected error refuses the reload, it does not reach the crash handler, which would drop the VIP.
 */
export class Reloader {
  /** The reload in progress (or the last one): the next waits for it. */
  private last: Promise<Check> = Promise.resolve({ ok: true, reason: '' });

  constructor(
    private running: LoadedConfig,
    private readonly targets: ReloadTargets,
    private readonly options: ReloadOptions,
  ) {}

  /** The config in force: the one started with, or the last reload applied. */
  get loaded(): LoadedConfig {
    return this.running;
  }

  reload(): Promise<Check> {
    const next = this.last.then(() => this.reloadNow());
    this.last = next;
    return next;
  }

  private async reloadNow(): Promise<Check> {
    try {
      const { check, loaded } = await reloadConfig(this.running, this.targets, this.options);
      this.running = loaded;
      return check;
    } catch (err) {
      this.options.log.error({ component: 'reload', err }, 'reload failed: the running config stays');
      return { ok: false, reason: `reload failed: ${describeError(err)}` };
    }
  }
}

/** Why a reload was refused: a ConfigError's problems (each names its field), else the error's message. */
function refusalReason(err: unknown): string {
  return err instanceof ConfigError ? err.problems.join('; ') : describeError(err);
}
