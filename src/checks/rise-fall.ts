/**
 * Rise/fall counting, as HAProxy does it: a backend changes state only after `rise` consecutive
 * successes (down -> up) or `fall` consecutive failures (up -> down), so one slow answer does not
 * flap it.
 *
 * The start is different on purpose. HAProxy starts a server "up, but going down at the first
 * failure" (server.c sets health = rise): nothing waits `rise` intervals before traffic flows, and a
 * dead server is out after one check. Here a checker starts `unknown` (routable, like HAProxy's
 * start) and its first result settles the state either way. A tracker that must not report a
 * failure before `fall` checks (the local apiserver at boot) starts `up` instead.
 */
export type HealthState = 'unknown' | 'up' | 'down';

export class RiseFall {
  private current: HealthState;
  /** Consecutive results that disagree with the current state. */
  private streak = 0;

  constructor(
    private rise: number,
    private fall: number,
    initial: HealthState = 'unknown',
  ) {
    this.current = initial;
  }

  get state(): HealthState {
    return this.current;
  }

  setThresholds(rise: number, fall: number): void {
    this.rise = rise;
    this.fall = fall;
  }

  /** Feeds one check result; returns the new state when it changed, else undefined. */
  record(ok: boolean): HealthState | undefined {
    if (this.current === 'unknown') {
      this.current = ok ? 'up' : 'down';
      this.streak = 0;
      return this.current;
    }
    const agrees = ok === (this.current === 'up');
    if (agrees) {
      this.streak = 0;
      return undefined;
    }
    this.streak += 1;
    if (this.streak < (ok ? this.rise : this.fall)) return undefined;
    this.current = ok ? 'up' : 'down';
    this.streak = 0;
    return this.current;
  }
}
