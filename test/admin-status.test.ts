import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DaemonStatus, daemonStatus, formatStatus, type StatusInput } from '../src/admin/status';
import type { ElectionSnapshot } from '../src/vrrp/state-machine';

const MONO = 50_000;
const WALL = Date.parse('2025-06-01T12:00:00.000Z');

const election: ElectionSnapshot = {
  self: { name: 'cp1', address: '10.0.0.11' },
  role: 'MASTER',
  roleSince: MONO - 1500,
  term: 7,
  epoch: 1_748_779_000_000,
  priority: 100,
  basePriority: 150,
  master: 'cp1',
  following: null,
  leaseRemainingMs: 287.6,
  handoverTo: null,
  learning: false,
  formed: true,
  bootstrapping: false,
  bootstrapMember: 'cp1',
  bootstrapDisputedBy: [],
  observer: false,
  witness: false,
  vote: 'cp1',
  quorum: { alive: 2, needed: 2, quorate: true },
  faults: ['apiserver'],
  peers: [
    {
      name: 'cp2',
      address: '10.0.0.12',
      alive: true,
      lastHeard: MONO - 42.4,
      role: 'BACKUP',
      priority: 100,
      term: 7,
      leader: 'cp1',
      vote: 'cp1',
      loss: 0.01234,
      deadMs: 325.4,
      witness: false,
    },
    {
      name: 'cp3',
      address: '10.0.0.13',
      alive: false,
      lastHeard: undefined,
      role: 'INIT',
      priority: 0,
      term: 0,
      leader: '',
      vote: '',
      loss: 0,
      deadMs: 325,
      witness: true,
    },
  ],
};

const input: StatusInput = {
  config: {
    nodeName: 'cp1',
    self: { address: '10.0.0.11' },
    election: { quorum: 'majority' },
    vip: { address: '10.0.0.100/24', addresses: ['10.0.0.100/24'], interface: 'eth0' },
  },
  version: '9.9.9',
  dryRun: false,
  election,
  vipHeldSince: WALL - 1000,
  apiserver: {
    url: 'https://10.0.0.11:9443/readyz',
    state: 'down',
    effect: { kind: 'weight', weight: 50 },
    lastCheck: { at: '2025-06-01T11:59:59.250Z', ok: false, detail: 'HTTP 500' },
  },
  frontends: [
    {
      name: 'apiserver',
      backends: [
        {
          name: 'cp1',
          address: '10.0.0.11',
          port: 9443,
          state: 'up',
          activeConnections: 3,
          lastCheck: { at: '2025-06-01T11:59:59.000Z', ok: true, detail: '' },
        },
        {
          name: 'cp2',
          address: '10.0.0.12',
          port: 9443,
          state: 'down',
          activeConnections: 0,
          lastCheck: { at: '2025-06-01T11:59:59.500Z', ok: false, detail: 'connect ECONNREFUSED' },
        },
        { name: 'cp3', address: '10.0.0.13', port: 9443, state: 'unknown', activeConnections: 0, lastCheck: null },
      ],
    },
  ],
  now: { mono: MONO, wall: WALL },
};

describe('/status: the projection', () => {
  it('names every field, with times made wall-clock or relative and numbers rounded', () => {
    assert.deepEqual(daemonStatus(input), {
      node: 'cp1',
      address: '10.0.0.11',
      version: '9.9.9',
      dryRun: false,
      role: 'member',
      vote: 'cp1',
      state: 'MASTER',
      stateSince: '2025-06-01T11:59:58.500Z',
      priority: 100,
      basePriority: 150,
      master: 'cp1',
      term: 7,
      epoch: 1_748_779_000_000,
      leaseRemainingMs: 288,
      following: null,
      handoverTo: null,
      learning: false,
      formed: true,
      bootstrapping: false,
      bootstrapMember: 'cp1',
      bootstrapDisputedBy: [],
      observer: false,
      quorum: { mode: 'majority', alive: 2, needed: 2, quorate: true },
      faults: ['apiserver'],
      vip: {
        address: '10.0.0.100/24',
        addresses: ['10.0.0.100/24'],
        interface: 'eth0',
        held: true,
        since: '2025-06-01T11:59:59.000Z',
      },
      apiserver: {
        url: 'https://10.0.0.11:9443/readyz',
        state: 'down',
        effect: { kind: 'weight', weight: 50 },
        lastCheck: { at: '2025-06-01T11:59:59.250Z', ok: false, detail: 'HTTP 500' },
      },
      peers: [
        {
          name: 'cp2',
          address: '10.0.0.12',
          alive: true,
          lastHeardMsAgo: 42,
          state: 'BACKUP',
          priority: 100,
          term: 7,
          leader: 'cp1',
          vote: 'cp1',
          loss: 0.012,
          deadAfterMs: 325,
          role: 'member',
        },
        {
          name: 'cp3',
          address: '10.0.0.13',
          alive: false,
          lastHeardMsAgo: null,
          state: 'INIT',
          priority: 0,
          term: 0,
          leader: '',
          vote: '',
          loss: 0,
          deadAfterMs: 325,
          role: 'witness',
        },
      ],
      backends: [
        {
          frontend: 'apiserver',
          name: 'cp1',
          address: '10.0.0.11:9443',
          up: true,
          activeConnections: 3,
          lastCheck: { at: '2025-06-01T11:59:59.000Z', ok: true },
        },
        {
          frontend: 'apiserver',
          name: 'cp2',
          address: '10.0.0.12:9443',
          up: false,
          activeConnections: 0,
          lastCheck: { at: '2025-06-01T11:59:59.500Z', ok: false, detail: 'connect ECONNREFUSED' },
        },
        {
          frontend: 'apiserver',
          name: 'cp3',
          address: '10.0.0.13:9443',
          up: true,
          activeConnections: 0,
          lastCheck: null,
        },
      ],
    });
  });

  it('a backup: whom it follows, no lease, no VIP; an endless lease (quorum: none) shows as none', () => {
    const backup = daemonStatus({
      ...input,
      vipHeldSince: undefined,
      frontends: undefined,
      election: {
        ...election,
        role: 'BACKUP',
        leaseRemainingMs: null,
        following: { leader: 'cp2', term: 8, remainingMs: 301.7 },
      },
    });
    assert.deepEqual(backup.following, { leader: 'cp2', term: 8, remainingMs: 302 });
    assert.equal(backup.leaseRemainingMs, null);
    assert.deepEqual(backup.vip, {
      address: '10.0.0.100/24',
      addresses: ['10.0.0.100/24'],
      interface: 'eth0',
      held: false,
      since: null,
    });
    assert.deepEqual(backup.backends, []);
    const alone = daemonStatus({ ...input, election: { ...election, leaseRemainingMs: Number.POSITIVE_INFINITY } });
    assert.equal(alone.leaseRemainingMs, null);
  });

  it('an IPv6 backend is shown as "[address]:port"', () => {
    const six = daemonStatus({
      ...input,
      frontends: [
        {
          name: 'apiserver',
          backends: [
            { name: 'cp1', address: 'fd00::11', port: 9443, state: 'up', activeConnections: 0, lastCheck: null },
          ],
        },
      ],
    });
    assert.deepEqual(
      six.backends.map((b) => b.address),
      ['[fd00::11]:9443'],
    );
  });

  it('the tracked apiserver: what the tracker reports, or null when nothing is tracked', () => {
    const up = daemonStatus({
      ...input,
      apiserver: {
        url: 'https://10.0.0.11:9443/readyz',
        state: 'up',
        effect: { kind: 'ok' },
        lastCheck: { at: '2025-06-01T11:59:59.250Z', ok: true, detail: '' },
      },
    });
    assert.deepEqual(up.apiserver, {
      url: 'https://10.0.0.11:9443/readyz',
      state: 'up',
      effect: { kind: 'ok' },
      lastCheck: { at: '2025-06-01T11:59:59.250Z', ok: true },
    });
    assert.equal(daemonStatus({ ...input, apiserver: undefined }).apiserver, null);
  });

  it('vipd status prints it as a table', () => {
    const lines = formatStatus(daemonStatus(input)).split('\n');
    assert.ok(
      lines.includes(
        'apiserver https://10.0.0.11:9443/readyz: down, priority lowered by 50  ' +
          'last check failed at 2025-06-01T11:59:59.250Z (HTTP 500)',
      ),
      lines.join('\n'),
    );
    const fault = { ...input.apiserver!, effect: { kind: 'fault' } as const, lastCheck: null };
    assert.ok(
      formatStatus(daemonStatus({ ...input, apiserver: fault }))
        .split('\n')
        .includes('apiserver https://10.0.0.11:9443/readyz: down, FAULT (ineligible)  not checked yet'),
    );
    assert.ok(
      formatStatus(daemonStatus({ ...input, apiserver: undefined }))
        .split('\n')
        .includes('apiserver not tracked'),
    );
    // An older vipd's /status, without the field: no apiserver line, and no crash.
    const { apiserver: _, ...older } = daemonStatus(input);
    assert.doesNotMatch(formatStatus(older as DaemonStatus), /^apiserver (https|not)/m);
    assert.match(
      lines[0] ?? '',
      /^node cp1 \(10\.0\.0\.11\) +state MASTER since 2025-06-01T11:59:58\.500Z +priority 100\/150/,
    );
    assert.ok(lines.includes('election  lease 288ms'), lines.join('\n'));
    assert.ok(
      lines.some((l) => /^cp2 +10\.0\.0\.12 +yes +BACKUP/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /^apiserver +cp2 +10\.0\.0\.12:9443 +no +0 +failed at .* \(connect ECONNREFUSED\)$/.test(l)),
      lines.join('\n'),
    );
  });
  it('vipd status marks a witness among the peers, and on a witness says it votes and holds no VIP', () => {
    const member = formatStatus(daemonStatus(input));
    assert.match(member, /^cp3 \(witness\) +10\.0\.0\.13 +no +INIT/m);
    const onWitness = formatStatus(
      daemonStatus({ ...input, election: { ...election, role: 'BACKUP', witness: true, vote: 'cp2' } }),
    );
    assert.match(onWitness, /^witness cp1 \(10\.0\.0\.11\) +state BACKUP/m);
    assert.match(onWitness, /votes for cp2$/m);
    assert.match(
      onWitness,
      /^vip 10\.0\.0\.100\/24: never held here \(a witness votes, holds no VIP, runs no balancer\)$/m,
    );
  });

  it('vipd status says why a cluster has not formed: whom it waits for, or who names another bootstrap member', () => {
    const unformed = (over: Partial<ElectionSnapshot>) =>
      formatStatus(daemonStatus({ ...input, election: { ...election, formed: false, ...over } }));
    assert.match(
      unformed({ bootstrapMember: 'cp3' }),
      /quorum .*cluster not formed yet: waiting for the bootstrap member cp3$/m,
    );
    assert.match(
      unformed({ bootstrapping: true }),
      /cluster not formed yet: bootstrap member, may hold the VIP alone$/m,
    );
    assert.match(
      unformed({ bootstrapDisputedBy: ['cp2'] }),
      /cluster not formed yet: cp2 names another bootstrap member than cp1 \(list the peers in the same order/m,
    );
    assert.doesNotMatch(formatStatus(daemonStatus(input)), /not formed/, 'a formed cluster says nothing of it');
  });
});
