/**
 * Active checks of one target on a timer, with rise/fall deciding its state. Owns its timer and
 * the check in flight; close() cancels both. Used for each backend of a frontend and for the local
 * apiserver tracker.
 *
 * Checks start `interval` apart, measured start to start (a slow check does not stretch the
 * period), and never overlap. The first check runs at once so a dead backend leaves rotation
 * within one timeout of start instead of after an interval.
 */

import { describeError } from '../errors';
import { type CheckRecord, type ProbeTarget, probe } from './probe';
import { type HealthState, RiseFall } from './rise-fall';
import type { CheckSettings } from './settings';

/** Called after every check; `change` is the new state when this result changed it. */
export type CheckListener = (record: CheckRecord, change: HealthState | undefined) => void;

export interface HealthCheckerOptions {
  /** See rise-fall.ts: 'unknown' lets the first result decide, 'up' needs `fall` failures. */
  readonly initial?: HealthState;
  /** The check itself; injectable for tests. */
  readonly probe?: (target: ProbeTarget, check: CheckSettings, signal: AbortSignal) => Promise<CheckRecord>;
}

export class HealthChecker {
  private readonly riseFall: RiseFall;
  private readonly run: NonNullable<HealthCheckerOptions['probe']>;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private lastStart = 0;
  private lastRecord: CheckRecord | undefined;
  private started = false;
  private closed = false;

  constructor(
    private readonly target: ProbeTarget,
    private check: CheckSettings,
    private readonly listener: CheckListener,
    options: HealthCheckerOptions = {},
  ) {
    this.riseFall = new RiseFall(check.rise, check.fall, options.initial ?? 'unknown');
    this.run = options.probe ?? probe;
  }

  get state(): HealthState {
    return this.riseFall.state;
  }

  get last(): CheckRecord | undefined {
    return this.lastRecord;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.tick();
  }

  /** New interval/timeout/thresholds apply from the next check; the current state is kept. */
  update(check: CheckSettings): void {
    this.check = check;
    this.riseFall.setThresholds(check.rise, check.fall);
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.schedule();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
    this.inFlight = undefined;
  }

  private schedule(): void {
    const wait = Math.max(0, this.lastStart + this.check.intervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, wait);
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    this.lastStart = performance.now();
    const controller = new AbortController();
    this.inFlight = controller;
    let record: CheckRecord;
    try {
      record = await this.run(this.target, this.check, controller.signal);
    } catch (err) {
      record = {
        ok: false,
        detail: describeError(err),
        at: Date.now(),
        durationMs: Math.round(performance.now() - this.lastStart),
      };
    }
    if (this.closed || controller.signal.aborted) return;
    this.inFlight = undefined;
    this.lastRecord = record;
    const change = this.riseFall.record(record.ok);
    this.schedule();
    this.listener(record, change);
  }
}
