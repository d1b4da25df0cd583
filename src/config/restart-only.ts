/**
 * What a reload may change, decided here once: every key but these. They define the cluster (its
 * members and names, the secret, the timing and quorum every member must agree on, the record that
 * it formed), a socket bound at start (election.port, health.listen), the VIP or the balancer's
 * threads (proxy.threads: each frontend's engine starts them with its listener), so a reload that
 * changes one is refused whole and the running config stays (src/reload.ts). Priority, preemption,
 * the balancer and the tracked apiserver change in place.
 */
import { isDeepStrictEqual } from 'node:util';
import type { FileConfig, Loaded } from './load';

/** Each restart-only key, and how to read it from a config. */
const RESTART_ONLY: readonly (readonly [key: string, read: (c: FileConfig) => unknown])[] = [
  ['nodeName', (c) => c.nodeName],
  ['peers', (c) => c.peers],
  ['vip', (c) => c.vip],
  ['health.listen', (c) => c.health.listen],
  ['election.clusterId', (c) => c.election.clusterId],
  ['election.port', (c) => c.election.port],
  ['election.interval', (c) => c.election.interval],
  ['election.deadAfter', (c) => c.election.deadAfter],
  ['election.maxDeadAfter', (c) => c.election.maxDeadAfter],
  ['election.quorum', (c) => c.election.quorum],
  ['election.secretFile', (c) => c.election.secretFile],
  ['election.stateDir', (c) => c.election.stateDir],
  ['proxy.threads', (c) => c.proxy.threads],
];

/** The keys a reload cannot change in place, in the order a refusal names them. */
export const RESTART_ONLY_KEYS: readonly string[] = RESTART_ONLY.map(([key]) => key);

/** The restart-only keys that differ between two configs, and "the secret" if the secret does. */
export function restartOnlyChanges(a: Loaded<FileConfig>, b: Loaded<FileConfig>): string[] {
  const changed = RESTART_ONLY.filter(([, read]) => !isDeepStrictEqual(read(a.config), read(b.config))).map(
    ([key]) => key,
  );
  if (!a.secret.equals(b.secret)) changed.push('the secret');
  return changed;
}
