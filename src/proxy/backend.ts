/**
 * One backend of one frontend: where it is, what the checks last said, and the connections it
 * carries. It holds its own labelled metric children so counting a connection is a field update
 * and an increment, never a label lookup.
 */
import type { CheckRecord } from '../checks/probe';
import type { HealthState } from '../checks/rise-fall';
import type { BackendSettings } from './settings';

/** What a relayed connection exposes to the backend that carries it. */
export interface Relay {
  /** Abort both sides at once. */
  destroy(): void;
}

export interface BackendMeters {
  readonly up: { set(value: number): void };
  readonly active: { inc(): void; dec(): void };
  readonly total: { inc(): void };
  readonly connectFailures: { inc(): void };
  readonly checkSuccess: { inc(): void };
  readonly checkFailure: { inc(): void };
  readonly passiveMarkdowns: { inc(): void };
  readonly hedges: { inc(): void };
  readonly hedgeWins: { inc(): void };
}

const noop = () => undefined;
export const NO_METERS: BackendMeters = {
  up: { set: noop },
  active: { inc: noop, dec: noop },
  total: { inc: noop },
  connectFailures: { inc: noop },
  checkSuccess: { inc: noop },
  checkFailure: { inc: noop },
  passiveMarkdowns: { inc: noop },
  hedges: { inc: noop },
  hedgeWins: { inc: noop },
};

export class Backend {
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
  /** Connected relays (connects in progress are not counted: leastconn weighs real load). */
  readonly relays = new Set<Relay>();
  total = 0;
  connectFailures = 0;
  lastCheck: CheckRecord | undefined;

  constructor(
    settings: BackendSettings,
    readonly meters: BackendMeters = NO_METERS,
  ) {
    this.name = settings.name;
    this.address = settings.address;
    this.port = settings.port;
    meters.up.set(1);
  }

  get active(): number {
    return this.relays.size;
  }

  /**
   * Up for the pool: neither the active checks nor a passive check hold it down. `unknown` counts
   * as up: like HAProxy's start, traffic flows before the first check, and the connect retry
   * covers a backend that turns out to be dead.
   */
  get routable(): boolean {
    return this.health !== 'down' && !this.passiveDown;
  }

  /** Gets new connections. */
  get eligible(): boolean {
    return !this.draining && this.routable;
  }

  setHealth(state: HealthState): void {
    this.health = state;
    this.meters.up.set(this.routable ? 1 : 0);
  }

  /** A passive mark-down (`at`: wall-clock ms) or its end. */
  setPassiveDown(down: boolean, at = 0): void {
    this.passiveDown = down;
    this.passiveSince = at;
    this.passiveSuccesses = 0;
    this.meters.up.set(this.routable ? 1 : 0);
  }

  attach(relay: Relay): void {
    this.relays.add(relay);
    this.total += 1;
    this.meters.active.inc();
    this.meters.total.inc();
  }

  detach(relay: Relay): void {
    if (this.relays.delete(relay)) this.meters.active.dec();
  }

  connectFailed(): void {
    this.connectFailures += 1;
    this.meters.connectFailures.inc();
  }

  /** Destroys every connection this backend carries (on-marked-down shutdown-sessions). */
  destroyRelays(): number {
    const n = this.relays.size;
    for (const relay of [...this.relays]) relay.destroy();
    return n;
  }
}
