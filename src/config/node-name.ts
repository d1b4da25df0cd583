/**
 * Which member of `peers` this node is, so one file serves every node: `nodeName` when the file
 * sets it, else the VIPD_NODE_NAME environment variable, else the host name.
 *
 * The static pod sets VIPD_NODE_NAME from the downward API (`spec.nodeName`): the kubelet fills a
 * static pod's node name itself, --hostname-override included, before any apiserver exists. The
 * host name serves vipd outside the pod (`vipd check` on the node, a systemd unit). A kubelet
 * without --hostname-override names its node after the host name, trimmed and lowercased; many
 * hosts carry a fully qualified name ("cp1.example.com") where the node and the peer are "cp1".
 * So a name from the environment or the host is compared as the kubelet does, lowercased, and
 * matches a peer by the full name first, then by the short name before the first dot.
 */
import type { Peer } from './schema';

export const NODE_NAME_ENV = 'VIPD_NODE_NAME';

export type NodeNameSource = 'nodeName' | typeof NODE_NAME_ENV | 'host name';

type NodeNameResult =
  | { readonly ok: true; readonly self: Peer; readonly from: NodeNameSource }
  | { readonly ok: false; readonly problem: string };

/** The peer a name from the environment or the host stands for: full name first, then short. */
function matchPeer(peers: readonly Peer[], raw: string): Peer | undefined {
  const full = raw.trim().toLowerCase();
  const short = full.split('.')[0] ?? '';
  return peers.find((p) => p.name === full) ?? peers.find((p) => p.name === short);
}

export function resolveNodeName(
  peers: readonly Peer[],
  configured: string | undefined,
  env: string | undefined,
  hostname: string,
  echo: (value: unknown) => string,
): NodeNameResult {
  const names = peers.map((p) => p.name).join(', ');
  if (configured !== undefined) {
    const self = peers.find((p) => p.name === configured);
    return self !== undefined
      ? { ok: true, self, from: 'nodeName' }
      : { ok: false, problem: `nodeName: got ${echo(configured)}, expected one of peers[].name (${names})` };
  }
  if (env !== undefined && env.trim() !== '') {
    const self = matchPeer(peers, env);
    return self !== undefined
      ? { ok: true, self, from: NODE_NAME_ENV }
      : {
          ok: false,
          problem:
            `nodeName: not set, and ${NODE_NAME_ENV}=${echo(env)} is not one of peers[].name ` +
            `(${names}), in full or before its first dot: correct the variable or set nodeName`,
        };
  }
  const self = matchPeer(peers, hostname);
  return self !== undefined
    ? { ok: true, self, from: 'host name' }
    : {
        ok: false,
        problem:
          `nodeName: not set, and this host's name ${echo(hostname)} is not one of peers[].name ` +
          `(${names}), in full or before its first dot: set nodeName or ${NODE_NAME_ENV}`,
      };
}
