/**
 * What the drill's client saw: one result per connect to VIP:port (connect-client.ts, every few ms), and
 * the outage figures computed from them. An outage runs from the last successful connect before
 * the failures to the first one after, so it is never shorter than the stretch a client really
 * went without the service.
 */
import { sleep } from './wait';

export interface ProbeResult {
  /** Wall-clock ms when the connect started. */
  readonly t: number;
  readonly ok: boolean;
}

export class ClientLog {
  readonly results: ProbeResult[] = [];

  /** One line of connect-client.ts's output; anything that is not a probe result is ignored. */
  add(line: string): void {
    try {
      const r = JSON.parse(line) as Partial<ProbeResult>;
      if (typeof r.t === 'number' && typeof r.ok === 'boolean') this.results.push({ t: r.t, ok: r.ok });
    } catch {
      // not a probe line
    }
  }

  /** The longest run of failed connects since `since`. undefined: the client is still failing. */
  longestOutage(since: number): number | undefined {
    let longest = 0;
    for (const o of this.outages(since, Infinity)) {
      if (o.ms === undefined) return undefined;
      longest = Math.max(longest, o.ms);
    }
    return longest;
  }

  /** The total length of the outages in [from, to]; one still on at `to` counts up to `to`. */
  downtime(from: number, to: number): number {
    return this.outages(from, to).reduce((sum, o) => sum + (o.ms ?? to - o.start), 0);
  }

  /** Waits until the last half second of connects all succeeded: at most `limitMs`. */
  async steady(limitMs: number): Promise<void> {
    const until = Date.now() + limitMs;
    await sleep(500);
    while (Date.now() < until) {
      const now = Date.now();
      const recent = this.results.filter((r) => r.t > now - 500);
      if (recent.length > 10 && recent.every((r) => r.ok)) return;
      await sleep(100);
    }
  }

  /** Each run of failures in [from, to]: its start (the last success before it) and length. */
  private outages(from: number, to: number): { start: number; ms: number | undefined }[] {
    const out: { start: number; ms: number | undefined }[] = [];
    let lastOk = from;
    let failing = false;
    for (const r of this.results) {
      if (r.t < from) continue;
      if (r.t > to) break;
      if (!r.ok) failing = true;
      else {
        if (failing) out.push({ start: lastOk, ms: r.t - lastOk });
        failing = false;
        lastOk = r.t;
      }
    }
    if (failing) out.push({ start: lastOk, ms: undefined });
    return out;
  }
}
