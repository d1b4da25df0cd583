/**
 * A heartbeat with every field at a plausible default (a quorate BACKUP of a formed cluster that
 * follows nobody), for tests to override what they are about. test/wire.test.ts spells every field
 * out instead: there the layout is the point.
 */
import type { Heartbeat } from '../../src/vrrp/types';

export function sampleHeartbeat(over: Partial<Heartbeat> = {}): Heartbeat {
  return {
    clusterId: 1,
    sender: 'n1',
    epoch: 1,
    seq: 1,
    ts: 0,
    role: 'BACKUP',
    priority: 100,
    intervalMs: 100,
    term: 0,
    quorate: true,
    learning: false,
    resigning: false,
    handover: false,
    formed: true,
    observer: false,
    bootstrap: 'other',
    leader: '',
    leaderTerm: 0,
    grantMs: 0,
    vote: '',
    successor: '',
    digest: '',
    members: 3,
    echoes: {},
    ...over,
  };
}
