/**
 * One backend of one frontend: where it is, what the checks say of it, and the engine's counters
 * for it as last read. The native engine (src/native/relay-engine.ts) carries its connections and
 * picks among the backends by the state pushed to it (`onChange`); this object is the policy's view.
 * It holds its own labelled metric children, so a scrape never hashes label sets.
 */
import type { CheckRecord } from '../checks/probe';
import type { HealthState } from '../checks/rise-fall';
import type { BackendSettings } from './settings';

export interface BackendMeters {
  readonly up: { set(value: number): void };
  readonly active: { set(value: number): void };
  readonly total: { inc(by?: number): void };
  readonly connectFailures: { inc(by?: number): void };
  readonly checkSuccess: { inc(): void };
  readonly checkFailure: { inc(): void };
  readonly passiveMarkdowns: { inc(): void };
  readonly hedges: { inc(by?: number): void };
  readonly hedgeWins: { inc(by?: number): void };
}

const noop = () => undefined;
export const NO_METERS: BackendMeters = {
  up: { set: noop },
  active: { set: noop },
  total: { inc: noop },
  connectFailures: { inc: noop },
  checkSuccess: { inc: noop },
  checkFailure: { inc: noop },
  passiveMarkdowns: { inc: noop },
  hedges: { inc: noop },
  hedgeWins: { inc: noop },
};

/** Unique in the process: the engine knows backends by id. */
let nextId = 1;

export class Backend {
  readonly id = nextId++;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** What the active checks say (rise/fall). */
  health: HealthState = 'unknown';
  /**
   * Marked down by a failed connect (a passive check) and not yet cleared by `rise` active checks
   * started after `passiveSince` (wall-clock ms); `passiveSuccesses` counts those so far.
   */
  passiveDown = false;
  passiveSince = 0;
  passiveSuccesses = 0;
  /** Connects to it overtaken by a hedge since its last completed connect (see Frontend.hedgeWon). */
  overtaken = 0;
  /** Removed by a reload: carries its connections to their end but gets no new ones. */
  draining = false;
  lastCheck: CheckRecord | undefined;
  /** The engine's counters as last read: connections relayed now and in all, failures, hedges. */
  active = 0;
  total = 0;
  connectFailures = 0;
  hedges = 0;
  hedgeWins = 0;
  /** Told when `routable` or `draining` changes (the frontend pushes it to the engine). */
  onChange: (() => void) | undefined;

  constructor(
    settings: BackendSettings,
    readonly meters: BackendMeters = NO_METERS,
  ) {
    this.name = settings.name;
    this.address = settings.address;
    this.port = settings.port;
    meters.up.set(1);
  }

  /**
   * Up for the choice: neither the active checks nor a passive check hold it down. `unknown` counts
   * as up: like HAProxy's start, traffic flows before the first check, and the connect retry
   * covers a backend that turns out to be dead.
   */
  get routable(): boolean {
    return this.health !== 'down' && !this.passiveDown;
  }

  setHealth(state: HealthState): void {
    this.health = state;
    this.meters.up.set(this.routable ? 1 : 0);
    this.onChange?.();
  }

  /** A passive mark-down (`at`: wall-clock ms) or its end. */
  setPassiveDown(down: boolean, at = 0): void {
    this.passiveDown = down;
    this.passiveSince = at;
    this.passiveSuccesses = 0;
    this.meters.up.set(this.routable ? 1 : 0);
    this.onChange?.();
  }

  drain(): void {
    this.draining = true;
    this.onChange?.();
  }

  /** The engine's counters for it (`[active, total, connectFailures, hedges, hedgeWins]`): metrics by delta. */
  observe(stats: readonly number[]): void {
    const [active = 0, total = 0, failures = 0, hedges = 0, hedgeWins = 0] = stats;
    this.meters.active.set(active);
    if (total > this.total) this.meters.total.inc(total - this.total);
    if (failures > this.connectFailures) this.meters.connectFailures.inc(failures - this.connectFailures);
    if (hedges > this.hedges) this.meters.hedges.inc(hedges - this.hedges);
    if (hedgeWins > this.hedgeWins) this.meters.hedgeWins.inc(hedgeWins - this.hedgeWins);
    this.active = active;
    this.total = Math.max(this.total, total);
    this.connectFailures = Math.max(this.connectFailures, failures);
    this.hedges = Math.max(this.hedges, hedges);
    this.hedgeWins = Math.max(this.hedgeWins, hedgeWins);
  }
}
