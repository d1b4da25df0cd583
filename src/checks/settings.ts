/**
 * A health check's settings, resolved from the config: durations in ms and the CA bundle already
 * read, so a reload that names an unreadable file fails before it changes anything. The one way
 * from config to a check, for the balancer's backends and the local apiserver tracker alike.
 */

import { readCaFile } from '../config/ca-file';
import type { CheckFieldsConfig, HealthCheckConfig } from '../config/schema';

export type CheckType = HealthCheckConfig['type'];

/** TLS for an https check, its CA bundle loaded. */
export interface CheckTls {
  readonly verify: boolean;
  readonly ca?: Buffer;
  readonly serverName?: string;
}

/** A health check ready to run: durations in ms, TLS material loaded. */
export interface CheckSettings {
  readonly type: CheckType;
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly tls: CheckTls;
}

/** A check from the fields every check's config has (config/schema.ts), its type and its TLS. */
export function checkSettings(fields: CheckFieldsConfig, type: CheckType, tls: CheckTls): CheckSettings {
  return {
    type,
    path: fields.path,
    intervalMs: fields.interval,
    timeoutMs: fields.timeout,
    rise: fields.rise,
    fall: fields.fall,
    tls,
  };
}

/**
 * A check's TLS with its CA bundle read (config/ca-file.ts). A file that cannot be read, or that
 * holds no certificate while https checks verify against it, is added to `problems`, named by
 * `field` (the check's path in the config), and the check goes on without it.
 */
export function checkTls(
  tls: HealthCheckConfig['tls'],
  type: HealthCheckConfig['type'],
  field: string,
  problems: string[],
): CheckTls {
  let ca: Buffer | undefined;
  if (tls.caFile !== undefined) {
    const read = readCaFile(tls.caFile, `${field}.tls.caFile`, tls.verify && type === 'https');
    if (read.problem !== undefined) problems.push(read.problem);
    ca = read.ca;
  }
  return {
    verify: tls.verify,
    ...(ca === undefined ? {} : { ca }),
    ...(tls.serverName === undefined ? {} : { serverName: tls.serverName }),
  };
}
