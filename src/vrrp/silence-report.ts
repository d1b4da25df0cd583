/**
 * Who this member does not hear, told to the operator: a member that hears no peer would otherwise
 * log nothing after its start, and the likeliest install mistake (a firewall dropping UDP 7580)
 * would go unnoticed until a failover does not happen. Pure: the runner calls `next` once a second
 * with the election's snapshot and logs what it returns.
 *
 * A peer silent for WARN_AFTER_MS is reported (warn), again every REPEAT_MS while it stays silent
 * (one line naming every silent peer), and its return is reported once (info).
 */
export const WARN_AFTER_MS = 5_000;
export const REPEAT_MS = 60_000;

export interface PeerHearing {
  readonly name: string;
  readonly address: string;
  readonly alive: boolean;
  /** When it was last heard (the runner's clock), or undefined: never since this start. */
  readonly lastHeard: number | undefined;
}

export interface SilenceState {
  /** Since when each silent peer has been silent (first seen silent, or last heard). */
  readonly silentSince: ReadonlyMap<string, number>;
  /** The peers reported silent, and when the last report went out. */
  readonly reported: ReadonlySet<string>;
  readonly lastReportAt: number;
}

export const NO_SILENCE: SilenceState = { silentSince: new Map(), reported: new Set(), lastReportAt: -Infinity };

export interface SilenceLines {
  /** Peers silent long enough to report now (empty: no warn line). */
  readonly silent: readonly { name: string; address: string; silentForMs: number; everHeard: boolean }[];
  /** Peers reported silent before and heard again. */
  readonly back: readonly string[];
}

export function nextSilence(
  state: SilenceState,
  peers: readonly PeerHearing[],
  now: number,
): { state: SilenceState; lines: SilenceLines } {
  const silentSince = new Map<string, number>();
  for (const p of peers) {
    if (p.alive) continue;
    silentSince.set(p.name, state.silentSince.get(p.name) ?? p.lastHeard ?? now);
  }
  const back = [...state.reported].filter((name) => !silentSince.has(name));
  const due = peers.filter((p) => !p.alive && now - (silentSince.get(p.name) as number) >= WARN_AFTER_MS);
  const fresh = due.some((p) => !state.reported.has(p.name));
  const report = due.length > 0 && (fresh || now - state.lastReportAt >= REPEAT_MS);
  const reported = new Set([...state.reported].filter((name) => silentSince.has(name)));
  if (report) for (const p of due) reported.add(p.name);
  return {
    state: { silentSince, reported, lastReportAt: report ? now : state.lastReportAt },
    lines: {
      silent: report
        ? due.map((p) => ({
            name: p.name,
            address: p.address,
            silentForMs: Math.round(now - (silentSince.get(p.name) as number)),
            everHeard: p.lastHeard !== undefined,
          }))
        : [],
      back,
    },
  };
}
