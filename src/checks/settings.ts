/**
 * A health check's settings, resolved from the config: durations in ms and the CA bundle already
 * read, so a reload that names an unreadable file fails before it changes anything. The one way
 * from config to a check, for the balancer's backends and the local apiserver tracker alike.
 */
import { readFileSync } from 'node:fs';
import type { CheckFieldsConfig, HealthCheckConfig } from '../config/schema';
import { describeError } from '../errors';

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
 * A check's TLS with its CA bundle read. A file that cannot be read is added to `problems`, named
 * by `field` (the check's path in the config), and the check goes on without it.
 */
export function checkTls(tls: HealthCheckConfig['tls'], field: string, problems: string[]): CheckTls {
  let ca: Buffer | undefined;
  if (tls.caFile !== undefined) {
    try {
      ca = readFileSync(tls.caFile);
    } catch (err) {
      const why = describeError(err);
      problems.push(`${field}.tls.caFile: cannot read "${tls.caFile}": ${why}`);
    }
  }
  return {
    verify: tls.verify,
    ...(ca === undefined ? {} : { ca }),
    ...(tls.serverName === undefined ? {} : { serverName: tls.serverName }),
  };
}
