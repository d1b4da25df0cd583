/**
 * What a valid config may still get wrong: settings vipd accepts but that would surprise their
 * author in a failure. `vipd check` prints them (exit 0: the file is valid) and `vipd run` logs
 * them at start; each names its field, as errors do.
 */
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { formatDuration } from './duration';
import type { FileConfig } from './load';

/** A failover slower than this is worth a word: apiserver clients time out long before. */
export const SLOW_FAILOVER_MS = 60_000;

export function configWarnings(config: FileConfig, options: { readonly checkSecretFile?: boolean } = {}): string[] {
  const out: string[] = [];
  const e = config.election;
  const members = config.peers.length;
  if (members === 2 && e.quorum === 'majority') {
    out.push('election.quorum: majority with 2 peers survives no failure: either member down leaves nobody '
      + 'holding the VIP (a majority of 2 is 2); add a third member');
  }
  if (members === 2 && e.quorum === 'none') {
    out.push('election.quorum: none with 2 peers (what auto picks for 2): a partition between them gives two '
      + 'holders of the VIP; add a third member to have a majority');
  }
  const failoverMs = e.interval * e.deadAfter;
  if (failoverMs > SLOW_FAILOVER_MS) {
    out.push(`election.interval × deadAfter: a dead master is replaced only after ${failoverMs / 1000} s `
      + `(${formatDuration(e.interval)} × ${e.deadAfter}); the defaults (100ms × 3) take 0.3 s`);
  }
  if (!isAbsolute(e.secretFile)) {
    out.push(`election.secretFile: "${e.secretFile}" is relative: it is looked up from the working directory, `
      + 'which differs between a shell, systemd and the pod; use an absolute path');
  }
  if (options.checkSecretFile !== false) {
    try {
      const mode = statSync(e.secretFile).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        out.push(`election.secretFile: "${e.secretFile}" is readable by others (mode ${mode.toString(8).padStart(4, '0')}): `
          + `anyone who reads it can forge heartbeats; chmod 600 ${e.secretFile}`);
      }
    } catch {
      // Unreadable or missing: loading the secret reports that as an error.
    }
  }
  return out;
}
