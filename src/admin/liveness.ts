/**
 * The rules /healthz and /readyz answer by, as pure functions of what the daemon's parts report.
 * Liveness (the kubelet restarts vipd when it fails) asks only whether the election still runs:
 * a restart of the master is a failover, so nothing slower or outside this process may fail it.
 * Readiness adds that the start is over and the balancer listens.
 */
import { stallMs } from '../vrrp/timing';
import type { ElectionSettings, Role } from '../vrrp/types';
import type { Check } from './status';

/** Where the daemon is in its life: readiness ends when a stop begins. */
export type DaemonPhase = 'starting' | 'running' | 'stopping';

/** /healthz never fails sooner than this without an election step, however short the interval. */
const MIN_LIMIT_MS = 5_000;
/** Intervals without a step before /healthz fails: a member that hears no peer steps once per interval. */
const LIMIT_INTERVALS = 3;

/**
 * How long the election may go without a step before /healthz fails: a few intervals plus the
 * margin by which the election itself tells a late tick from a stall (vrrp/timing.ts stallMs), and
 * at least 5 s. At election.interval 10s a member alone steps every 10 s: a fixed 5 s had the
 * kubelet restart a healthy vipd, and a restarted master is a failover.
 */
export function livenessLimitMs(timing: Pick<ElectionSettings, 'intervalMs' | 'deadAfter'>): number {
  return Math.max(MIN_LIMIT_MS, LIMIT_INTERVALS * timing.intervalMs + stallMs(timing));
}

export interface LivenessInput {
  readonly phase: DaemonPhase;
  /** The election runner's liveness(): started and not closed, and the time since its last step. */
  readonly election: { readonly running: boolean; readonly sinceLastStepMs: number };
  /** livenessLimitMs of the election's settings. */
  readonly limitMs: number;
}

/** /healthz: the election's loop is alive. */
export function liveness(input: LivenessInput): Check {
  const { phase, limitMs } = input;
  const { running, sinceLastStepMs } = input.election;
  if (!running) return { ok: phase === 'starting', reason: phase === 'starting' ? 'starting' : 'election stopped' };
  if (sinceLastStepMs > limitMs) {
    return { ok: false, reason: `the election has not run for ${Math.round(sinceLastStepMs)} ms` };
  }
  return { ok: true, reason: 'election running' };
}

export interface ReadinessInput {
  readonly phase: DaemonPhase;
  /** liveness() now. */
  readonly live: Check;
  /** This member's role in the election. */
  readonly role: Role;
  readonly dryRun: boolean;
  /** The balancer's frontends; undefined when the balancer is off (proxy.enabled: false). */
  readonly frontends: readonly { readonly name: string; readonly listening: boolean }[] | undefined;
}

/** /readyz: started and not stopping, alive, and every frontend listening. */
export function readiness(input: ReadinessInput): Check {
  const { phase, live, role, dryRun, frontends } = input;
  if (phase !== 'running') return { ok: false, reason: phase };
  if (!live.ok) return live;
  // A dry run binds no listener (it runs next to the balancer it would replace).
  const closed = dryRun ? [] : (frontends ?? []).filter((f) => !f.listening).map((f) => f.name);
  if (closed.length > 0) return { ok: false, reason: `frontends not listening: ${closed.join(', ')}` };
  const proxy = frontends === undefined ? '' : dryRun ? ', proxy checking backends (dry run)' : ', proxy listening';
  return { ok: true, reason: `config loaded, election running (${role})${proxy}` };
}
