/**
 * The backends of one frontend and the choice of the next one. Pure: no sockets, no timers.
 *
 * roundrobin: each eligible backend in turn (HAProxy's default; the kubeadm guide's choice).
 * leastconn: the eligible backend with the fewest connections, ties taken in turn (HAProxy's advice
 * for long sessions such as watches, which roundrobin piles up unevenly after a backend restarts).
 *
 * Down means marked down by the active checks or by a passive one (a failed connect, frontend.ts).
 * When no backend is eligible, the pick falls back to the ones marked down rather than refusing the
 * client: a check that is wrong for every backend (anonymous auth off, so /readyz answers 401), or
 * a cluster still booting, must not black-hole the control plane; a dead backend just fails the
 * connect and the retry moves on, as nginx does when all its upstreams are marked failed.
 */
import type { Backend } from './backend';
import type { BalanceMode } from './settings';

export class BackendPool {
  private members: Backend[] = [];
  private cursor = 0;

  constructor(public balance: BalanceMode) {}

  get backends(): readonly Backend[] {
    return this.members;
  }

  add(backend: Backend): void {
    this.members.push(backend);
  }

  remove(backend: Backend): void {
    const i = this.members.indexOf(backend);
    if (i < 0) return;
    this.members.splice(i, 1);
    if (this.cursor > i) this.cursor -= 1;
  }

  /** The next backend for a connection, skipping those already `tried` for it; undefined if none. */
  pick(tried?: readonly Backend[]): Backend | undefined {
    return this.scan(tried, true) ?? this.scan(tried, false);
  }

  /**
   * The next backend that is up, skipping those `tried`; never one marked down. For a hedge: a
   * second connect is only worth starting to a backend expected to answer. A hedge is a spare, not
   * a turn: it leaves the rotation alone, so a slow backend is not offered more often (every
   * second connection instead of every third of three) because its connects get hedged.
   */
  pickUp(tried?: readonly Backend[]): Backend | undefined {
    return this.scan(tried, true, false);
  }

  private scan(tried: readonly Backend[] | undefined, healthyOnly: boolean, advance = true): Backend | undefined {
    const n = this.members.length;
    const leastconn = this.balance === 'leastconn';
    let best: Backend | undefined;
    let bestIndex = -1;
    for (let i = 0; i < n; i++) {
      const index = (this.cursor + i) % n;
      const b = this.members[index] as Backend;
      if (b.draining || (healthyOnly && !b.routable)) continue;
      if (tried?.includes(b)) continue;
      if (!leastconn) {
        best = b;
        bestIndex = index;
        break;
      }
      if (best === undefined || b.active < best.active) {
        best = b;
        bestIndex = index;
      }
    }
    if (best !== undefined && advance) this.cursor = (bestIndex + 1) % n;
    return best;
  }
}
