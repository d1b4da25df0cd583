/**
 * Every Prometheus metric vipd exports, in one place (docs/logging-and-metrics.md lists them for operators).
 * A registry per daemon, not prom-client's global one, so several daemons can live in one test
 * process without sharing counters.
 *
 * The metrics know their label names, not the election's vocabulary: the election's runner, which
 * imports this file, shows each role and drop reason at 0 when it is built (vrrp/runner.ts).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** What the per-peer gauges show, read at scrape time (nothing is computed per heartbeat). */
export type PeerLinkSource = () => readonly { readonly name: string; readonly loss: number; readonly deadMs: number }[];

/** Whom this member votes for and acknowledges, read at scrape time ('' for nobody). */
export type VoteSource = () => { readonly vote: string; readonly acknowledging: string };

/** The shared connection lists, read at scrape time. */
export type ConnListSource = () => {
  readonly own: number;
  readonly peers: readonly { readonly peer: string; readonly count: number }[];
};

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  let peerLinks: PeerLinkSource = () => [];
  let connLists: ConnListSource = () => ({ own: 0, peers: [] });
  let votes: VoteSource = () => ({ vote: '', acknowledging: '' });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'vipd_' });
  const registers = [registry];
  const m = {
    registry,
    electionState: new Gauge({
      name: 'vipd_election_state',
      help: 'Election role of this member: 1 for the current role, 0 for the others.',
      labelNames: ['state'] as const,
      registers,
    }),
    electionTransitions: new Counter({
      name: 'vipd_election_transitions_total',
      help: 'Election role changes, by new role and reason.',
      labelNames: ['to', 'reason'] as const,
      registers,
    }),
    master: new Gauge({ name: 'vipd_master', help: '1 while this member is the elected master.', registers }),
    term: new Gauge({
      name: 'vipd_election_term',
      help: 'The highest election term this member has seen (it grows by one with every claim).',
      registers,
    }),
    leaseRemaining: new Gauge({
      name: 'vipd_election_lease_remaining_seconds',
      help: 'While master: how long the lease a majority acknowledged still holds (0 otherwise).',
      registers,
    }),
    electionStalls: new Counter({
      name: 'vipd_election_stalls_total',
      help: 'Times this process found it had not run for a third of a dead interval or more (SIGSTOP, a VM pause, a long GC).',
      registers,
    }),
    priority: new Gauge({
      name: 'vipd_election_priority',
      help: 'Effective election priority (configured priority less tracked-check weights).',
      registers,
    }),
    peerLoss: new Gauge({
      name: 'vipd_peer_heartbeat_loss_ratio',
      help: "Share of a peer's heartbeats lost on the way here (weighted over its last ~64 messages, plus one standard deviation).",
      labelNames: ['peer'] as const,
      registers,
      collect() {
        this.reset();
        for (const p of peerLinks()) this.labels(p.name).set(p.loss);
      },
    }),
    peerDeadAfter: new Gauge({
      name: 'vipd_peer_dead_after_seconds',
      help: 'How long a peer may stay silent before it counts as dead: its dead interval, stretched by the loss on its link.',
      labelNames: ['peer'] as const,
      registers,
      collect() {
        this.reset();
        for (const p of peerLinks()) this.labels(p.name).set(p.deadMs / 1000);
      },
    }),
    /** The election tells the per-peer gauges where to read from. */
    setPeerLinks(source: PeerLinkSource): void {
      peerLinks = source;
    },
    witness: new Gauge({
      name: 'vipd_witness',
      help: '1 when this node is a witness (peers[].role): it votes and acknowledges, and never holds the VIP.',
      registers,
    }),
    peerWitness: new Gauge({
      name: 'vipd_peer_witness',
      help: 'For each peer: 1 if it is a witness, 0 if a member.',
      labelNames: ['peer'] as const,
      registers,
    }),
    vote: new Gauge({
      name: 'vipd_election_vote',
      help: "The member this node would have as master now (its pre-vote; a witness's vote): 1 on that series only.",
      labelNames: ['member'] as const,
      registers,
      collect() {
        this.reset();
        const { vote } = votes();
        if (vote !== '') this.labels(vote).set(1);
      },
    }),
    acknowledging: new Gauge({
      name: 'vipd_election_acknowledging',
      help: "The master this node acknowledges (its grant, which the master's lease is built from): 1 on that series only.",
      labelNames: ['member'] as const,
      registers,
      collect() {
        this.reset();
        const { acknowledging } = votes();
        if (acknowledging !== '') this.labels(acknowledging).set(1);
      },
    }),
    /** The election tells the vote gauges where to read from. */
    setVotes(source: VoteSource): void {
      votes = source;
    },
    vipConnections: new Gauge({
      name: 'vipd_vip_client_connections',
      help: 'Client connections this member relays on the VIP (shared with the peers so a new master can reset them).',
      registers,
      collect() {
        this.set(connLists().own);
      },
    }),
    peerVipConnections: new Gauge({
      name: 'vipd_peer_vip_client_connections',
      help: "A peer's client connections on the VIP as it last reported them: the ones this member resets if it takes the VIP over.",
      labelNames: ['peer'] as const,
      registers,
      collect() {
        this.reset();
        for (const p of connLists().peers) this.labels(p.peer).set(p.count);
      },
    }),
    setConnLists(source: ConnListSource): void {
      connLists = source;
    },
    clientsReset: new Counter({
      name: 'vipd_takeover_clients_reset_total',
      help: 'Client connections of a previous master this member reset on taking the VIP over (tickle ACKs).',
      registers,
    }),
    ticklesSent: new Counter({
      name: 'vipd_takeover_tickles_sent_total',
      help: 'Tickle ACK packets sent (a client is sent one per round; rounds repeat for loss).',
      registers,
    }),
    peersAlive: new Gauge({
      name: 'vipd_peers_alive',
      help: 'Peers (not counting this member) whose heartbeats arrive in time.',
      registers,
    }),
    clusterFormed: new Gauge({
      name: 'vipd_cluster_formed',
      help: '1 once this member knows the cluster has formed (0: a new cluster, only the bootstrap member may hold the VIP).',
      registers,
    }),
    bootstrapping: new Gauge({
      name: 'vipd_election_bootstrapping',
      help: '1 while this member is the bootstrap member of a cluster not formed yet (it may hold the VIP alone).',
      registers,
    }),
    bootstrapDisagreements: new Gauge({
      name: 'vipd_election_bootstrap_disagreements',
      help:
        'Peers whose config names another bootstrap member than this one (the peers listed in another order); ' +
        'while above 0 no member of a cluster not formed yet holds the VIP alone.',
      registers,
    }),
    quorum: new Gauge({
      name: 'vipd_quorum',
      help: '1 while this member hears a quorum of the configured members (always 1 with quorum: none).',
      registers,
    }),
    heartbeatsSent: new Counter({
      name: 'vipd_heartbeats_sent_total',
      help: 'Heartbeats sent, counting one per peer.',
      registers,
    }),
    heartbeatsReceived: new Counter({
      name: 'vipd_heartbeats_received_total',
      help: 'Heartbeats accepted from peers.',
      registers,
    }),
    heartbeatsDropped: new Counter({
      name: 'vipd_heartbeats_dropped_total',
      help: 'Received messages dropped, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    vipOperationFailures: new Counter({
      name: 'vipd_vip_operation_failures_total',
      help: 'VIP operations the kernel refused, by operation (acquire, renew, release).',
      labelNames: ['op'] as const,
      registers,
    }),
    vipHeld: new Gauge({
      name: 'vipd_vip_held',
      help: "1 while the VIP is configured on this node's interface.",
      registers,
    }),
    garpSent: new Counter({ name: 'vipd_garp_sent_total', help: 'Gratuitous ARP frames sent for the VIP.', registers }),
    naSent: new Counter({
      name: 'vipd_unsolicited_na_sent_total',
      help: 'Unsolicited Neighbor Advertisements sent for an IPv6 VIP.',
      registers,
    }),
    vipConflicts: new Counter({
      name: 'vipd_vip_conflicts_total',
      help: 'ARP or Neighbor Discovery frames from another MAC claiming a VIP while this member held it.',
      registers,
    }),
  };
  for (const op of ['acquire', 'renew', 'release'] as const) m.vipOperationFailures.labels(op).inc(0);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
