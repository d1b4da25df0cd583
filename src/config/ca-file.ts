/**
 * A health check's CA bundle (`tls.caFile`), read and judged in one place: `vipd check` and `run`
 * (host.ts) and the balancer (checks/settings.ts) say the same about the same file.
 */
import { X509Certificate } from 'node:crypto';
import { echo } from '../errors';
import { readBounded } from './bounded-read';

/** A bundle of every public CA is about 200 KiB; the cluster's own CA is one certificate. */
const MAX_CA_BYTES = 1024 * 1024;

/**
 * The bundle's bytes, or the problem with it (named by `field`, the key's path). When the checks
 * verify against it, it must hold a certificate: Node ignores a bundle that holds none, and every
 * check would then fail verification.
 */
export function readCaFile(file: string, field: string, verifies: boolean): { ca?: Buffer; problem?: string } {
  const read = readBounded(file, MAX_CA_BYTES, 'a CA bundle');
  if (read.why !== undefined) return { problem: `${field}: cannot read ${echo(file)}: ${read.why}` };
  const ca = read.bytes;
  if (!verifies || holdsCertificate(ca.toString('utf8'))) return { ca };
  return {
    problem: `${field}: ${echo(file)} holds no PEM certificate; the checks verify against it (such as /etc/kubernetes/pki/ca.crt)`,
  };
}

function holdsCertificate(pem: string): boolean {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  try {
    return block !== undefined && new X509Certificate(block).subject !== undefined;
  } catch {
    return false;
  }
}
