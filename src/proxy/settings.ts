/**
 * The balancer's settings, resolved from the config: each frontend with its concrete backend list
 * (by default every peer on `backendPort`, this node included) and its health check with the CA
 * bundle already read. Resolving everything up front lets a reload fail before it changes anything.
 */
import { type CheckSettings, checkSettings, checkTls } from '../checks/settings';
import type { Config } from '../config/load';
import { ConfigError } from '../errors';

export type BalanceMode = 'roundrobin' | 'leastconn';

export interface BackendSettings {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface FrontendSettings {
  readonly name: string;
  readonly bind: { readonly host: string; readonly port: number };
  readonly balance: BalanceMode;
  readonly connectTimeoutMs: number;
  /** A connect not done after this long gets a second one to another backend; 0: never; 'auto': hedge-delay.ts. */
  readonly hedgeDelayMs: number | 'auto';
  readonly retries: number;
  /** 0: never (the default; apiserver watches and exec sessions live for hours). */
  readonly idleTimeoutMs: number;
  /** After a FIN, the inactivity allowed on the side that sent it; 0: none. */
  readonly finTimeoutMs: number;
  readonly shutdownOnMarkedDown: boolean;
  /** Passive checks: a refused, unreachable or timed-out connect marks the backend down at once. */
  readonly observe: boolean;
  readonly backends: readonly BackendSettings[];
  readonly check: CheckSettings;
}

export interface ProxySettings {
  readonly drainTimeoutMs: number;
  /** Threads relaying each frontend's connections. */
  readonly threads: number;
  readonly frontends: readonly FrontendSettings[];
}

/** The part of a `Config` the balancer reads. */
export type ProxyConfigSource = Pick<Config, 'proxy' | 'peers'>;

/** Throws a ConfigError naming the field when a CA file cannot be read. */
export function proxySettings(config: ProxyConfigSource): ProxySettings {
  const { proxy, peers } = config;
  const problems: string[] = [];
  const frontends = !proxy.enabled
    ? []
    : proxy.frontends.map(
        (f, i): FrontendSettings => ({
          name: f.name,
          bind: { host: f.bind.host, port: f.bind.port },
          balance: f.balance,
          connectTimeoutMs: f.connectTimeout,
          hedgeDelayMs: f.hedgeDelay,
          retries: f.retries,
          idleTimeoutMs: f.idleTimeout,
          finTimeoutMs: f.finTimeout,
          shutdownOnMarkedDown: f.shutdownOnMarkedDown,
          observe: f.healthCheck.observe,
          // Every member's apiserver; a witness runs none.
          backends: (
            f.backends ??
            peers
              .filter((p) => p.role !== 'witness')
              .map((p) => ({ name: p.name, address: p.address, port: f.backendPort }))
          ).map((b) => ({ name: b.name, address: b.address, port: b.port })),
          check: checkSettings(
            f.healthCheck,
            f.healthCheck.type,
            checkTls(f.healthCheck.tls, f.healthCheck.type, `proxy.frontends[${i}].healthCheck`, problems),
          ),
        }),
      );
  if (problems.length > 0) throw new ConfigError(problems);
  return { drainTimeoutMs: proxy.drainTimeout, threads: proxy.threads, frontends };
}

export function sameBackend(a: BackendSettings, b: BackendSettings): boolean {
  return a.name === b.name && a.address === b.address && a.port === b.port;
}
