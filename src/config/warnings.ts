/**
 * What a valid config may still get wrong: settings vipd accepts but that would surprise their
 * author in a failure. `vipd check` prints them (exit 0: the file is valid) and `vipd run` logs
 * them at start; each names its field, as errors do.
 */
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { echo } from '../errors';
import type { FileConfig } from './config';
import { formatDuration } from './duration';
import { formatHostPort } from './host-port';
import { MIN_RANDOM_BYTES, secretMaterial } from './secret-key';

/** A failover slower than this is worth a word: apiserver clients time out long before. */
const SLOW_FAILOVER_MS = 60_000;

export function configWarnings(config: FileConfig, options: { readonly checkSecretFile?: boolean } = {}): string[] {
  const out: string[] = [];
  const e = config.election;
  const members = config.peers.length;
  const witnesses = config.peers.filter((p) => p.role === 'witness').map((p) => p.name);
  if (witnesses.length > 0 && e.quorum === 'none') {
    out.push(
      `election.quorum: none with a witness (${witnesses.join(', ')}): without a majority a witness decides ` +
        'nothing, and a partition gives two holders; use majority (or auto)',
    );
  }
  if (witnesses.length > 0 && members - witnesses.length < 2) {
    out.push(
      `peers: one member and a witness (${witnesses.join(', ')}): only that member can ever hold the VIP, ` +
        'and it needs the witness to; list two members',
    );
  }
  if (members === 2 && e.quorum === 'majority') {
    out.push(
      'election.quorum: majority with 2 peers survives no failure: either member down leaves nobody ' +
        'holding the VIP (a majority of 2 is 2); add a third member',
    );
  }
  if (members === 2 && e.quorum === 'none') {
    out.push(
      'election.quorum: none with 2 peers (what auto picks for 2): a partition between them gives two ' +
        'holders of the VIP; add a third member to have a majority',
    );
  }
  // A VIP no frontend listens on gets no balancer: its clients' connects are refused (an IPv6 VIP
  // beside frontends on 0.0.0.0, which takes IPv4 only).
  if (config.proxy.enabled && config.proxy.frontends.length > 0) {
    config.vipAddresses.forEach(({ ip, family }, i) => {
      const served = config.proxy.frontends.some(
        (f) => f.bind.host === ip || f.bind.host === '::' || (family === 4 && f.bind.host === '0.0.0.0'),
      );
      if (served) return;
      const field = config.vipAddresses.length > 1 ? `vip.addresses[${i}]` : 'vip.address';
      out.push(
        `${field}: no frontend in proxy.frontends takes connections to ${ip} (${config.proxy.frontends
          .map((f) => formatHostPort(f.bind.host, f.bind.port))
          .join(', ')}): its clients' connects are refused; bind a frontend to "[::]:PORT" (both families)`,
      );
    });
  }
  const failoverMs = e.interval * e.deadAfter;
  if (failoverMs > SLOW_FAILOVER_MS) {
    out.push(
      `election.interval × deadAfter: a dead master is replaced only after ${failoverMs / 1000} s ` +
        `(${formatDuration(e.interval)} × ${e.deadAfter}); the defaults (100ms × 3) take 0.3 s`,
    );
  }
  if (!isAbsolute(e.secretFile)) {
    out.push(
      `election.secretFile: ${echo(e.secretFile)} is relative: it is looked up from the working directory, ` +
        'which differs between a shell, systemd and the pod; use an absolute path',
    );
  }
  if (options.checkSecretFile !== false) {
    try {
      const mode = statSync(e.secretFile).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        out.push(
          `election.secretFile: ${echo(e.secretFile)} is readable by others (mode ${mode.toString(8).padStart(4, '0')}): ` +
            `anyone who reads it can forge heartbeats; chmod 600 ${echo(e.secretFile)}`,
        );
      }
    } catch {
      // Unreadable or missing: loading the secret reports that as an error.
    }
  }
  if (config.proxy.enabled) {
    config.proxy.frontends.forEach((f, i) => {
      const { type, tls } = f.healthCheck;
      const field = `proxy.frontends[${i}].healthCheck.tls`;
      if (type === 'https' && tls.verify && tls.caFile === undefined) {
        out.push(
          `${field}.verify: true without caFile verifies the apiservers against Node's public CAs, which ` +
            'did not sign them: every check would fail; set caFile (such as /etc/kubernetes/pki/ca.crt)',
        );
      }
      if (tls.caFile !== undefined && (type !== 'https' || !tls.verify)) {
        const why = type === 'https' ? 'verify is false' : `the check is ${type}`;
        out.push(`${field}.caFile: "${tls.caFile}" is not used: ${why}`);
      }
    });
  }
  return out;
}

/**
 * What a secret's content says about its strength (secret-key.ts counts it). A passphrase-like
 * secret gets its key derived with scrypt, which slows a dictionary attack on a captured heartbeat
 * but cannot stop one; these warnings say what to replace it with.
 */
export function secretWarnings(secret: Buffer, file: string): string[] {
  const text = secret.toString('utf8');
  const m = secretMaterial(secret);
  const advice = `replace it on every member with random bytes: head -c 32 /dev/urandom | base64 > ${file}`;
  if (m.kind === 'letters') {
    return [
      `election.secretFile: ${echo(file)} holds letters only, like a word or a passphrase: vipd derives the key ` +
        `with scrypt, but a dictionary attack on one captured heartbeat can still find it, and then forge heartbeats; ${advice}`,
    ];
  }
  if (m.rawBytes < MIN_RANDOM_BYTES) {
    return [
      `election.secretFile: ${echo(file)} holds ${text.length} ${m.kind} characters: at most ` +
        `${m.rawBytes} bytes of random material, fewer than ${MIN_RANDOM_BYTES} (vipd derives the key with scrypt); ${advice}`,
    ];
  }
  return [];
}
