/**
 * A health check's settings, resolved from the config: durations in ms and the CA bundle already
 * read, so a reload that names an unreadable file fails before it changes anything.
 */
import { readFileSync } from 'node:fs';
import type { HealthCheckConfig } from '../config/schema';

/** A health check ready to run: durations in ms, TLS material loaded. */
export interface CheckSettings {
  readonly type: 'https' | 'http' | 'tcp';
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly tls: {
    readonly verify: boolean;
    readonly ca?: Buffer;
    readonly serverName?: string;
  };
}

export function checkSettings(check: HealthCheckConfig, field: string, problems: string[]): CheckSettings {
  let ca: Buffer | undefined;
  if (check.tls.caFile !== undefined) {
    try {
      ca = readFileSync(check.tls.caFile);
    } catch (err) {
      problems.push(`${field}.tls.caFile: cannot read "${check.tls.caFile}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return {
    type: check.type,
    path: check.path,
    intervalMs: check.interval,
    timeoutMs: check.timeout,
    rise: check.rise,
    fall: check.fall,
    tls: {
      verify: check.tls.verify,
      ...(ca === undefined ? {} : { ca }),
      ...(check.tls.serverName === undefined ? {} : { serverName: check.tls.serverName }),
    },
  };
}
