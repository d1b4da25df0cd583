/**
 * The config's shape once loaded: what the file decides on any machine (`FileConfig`), and what
 * the daemon runs once the host has filled in the rest (`Config`). load.ts builds both; host.ts
 * and the checks read them without importing the loader.
 */
import type { NodeNameSource } from './node-name';
import type { ParsedConfig, Peer, VipConfig } from './schema';

export type QuorumMode = 'majority' | 'none';

export interface VipAddress {
  readonly ip: string;
  readonly prefixLength: number;
  readonly family: 4 | 6;
}

/** The config as the file decides it, on any machine: `vip.interface` may still be left to the host. */
export interface FileConfig extends Omit<ParsedConfig, 'nodeName' | 'election'> {
  /** The file this came from, for logs and reloads. */
  readonly file: string;
  readonly nodeName: string;
  /** Where nodeName came from (node-name.ts has the order). */
  readonly nodeNameFrom: NodeNameSource;
  /** This node's entry in `peers`. */
  readonly self: Peer;
  readonly election: Omit<ParsedConfig['election'], 'quorum'> & { readonly quorum: QuorumMode };
  /** The primary VIP (vip.address, or the first of vip.addresses). */
  readonly vipAddress: VipAddress;
  /** Every VIP: one, or a dual-stack pair (one per family, the primary first). */
  readonly vipAddresses: readonly VipAddress[];
}

/** The config resolved on this host and checked against it: what the daemon runs. */
export interface Config extends Omit<FileConfig, 'vip'> {
  readonly vip: VipConfig;
  /** Where vip.interface came from: the file, or the interface that carries this node's address. */
  readonly interfaceFrom: 'vip.interface' | 'peer address';
}
