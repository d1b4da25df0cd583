/** HAProxy's configurations: the backends (answering HTTP themselves) and the balancer measured. */
import { BULK_PORT, FD_MARGIN, HTTP_PORT, TLS_PORT } from './network';

/**
 * HAProxy's maxconn: 20,000, or less when the descriptor limit is lower, since HAProxy refuses to start
 * when it cannot raise its limit to 2 x maxconn (+ a few) descriptors.
 */
export function haproxyMaxconn(nofile: number): number {
  return Math.min(20_000, Math.floor((nofile - FD_MARGIN / 2) / 2));
}

/**
 * A backend: HTTP on HTTP_PORT and, when given `pem` (certificate and key), HTTPS on TLS_PORT for the
 * reconnect storm, both answered by HAProxy itself.
 */
export function haproxyBackendConfig(ip: string, maxconn: number, pem: string | undefined): string {
  const tls =
    pem === undefined
      ? ''
      : `frontend tls
  bind ${ip}:${TLS_PORT} ssl crt ${pem}
  http-request return status 200 content-type text/plain string ok
`;
  // Timeouts of minutes: the idle connections must outlive their measurement.
  return `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode http
  maxconn ${maxconn}
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend be
  bind ${ip}:${HTTP_PORT}
  http-request return status 200 content-type text/plain string ok
${tls}`;
}

/**
 * HAProxy as the kubeadm HA guide runs it in front of apiservers, on `threads` threads, plus a bulk
 * frontend and, with `storm`, a TCP frontend to the backends' TLS port; listening on `port` and the
 * next one or two.
 */
export function haproxyBalancerConfig(
  bind: string,
  port: number,
  backends: readonly string[],
  maxconn: number,
  threads: number,
  storm: boolean,
): string {
  const tls = !storm
    ? ''
    : `frontend storm
  bind ${bind}:${port + 2}
  default_backend tls
backend tls
  balance roundrobin
${backends.map((a, i) => `  server b${i + 1} ${a}:${TLS_PORT} check inter 2s`).join('\n')}
`;
  return `global
  nbthread ${threads}
  maxconn ${maxconn}
defaults
  mode tcp
  maxconn ${maxconn}
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  retries 3
  option redispatch
frontend http
  bind ${bind}:${port}
  default_backend apiservers
backend apiservers
  balance roundrobin
${backends.map((a, i) => `  server b${i + 1} ${a}:${HTTP_PORT} check inter 2s`).join('\n')}
frontend bulk
  bind ${bind}:${port + 1}
  default_backend sink
backend sink
  server sink ${backends[0] as string}:${BULK_PORT}
${tls}`;
}
