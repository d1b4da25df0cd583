/**
 * The bench's bed on a Lab (src/lab/netns.ts): one HAProxy per backend namespace answering HTTP
 * (and HTTPS for the reconnect storm) itself, the bulk sink on b1, the client agent, and every
 * balancer in lb, each on its own ports, all started at the beginning and waited for until each
 * serves.
 */
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LanHost, NsProcess } from '../../src/lab/netns';
import { waitFor } from '../../src/lab/wait';
import { haproxyBackendConfig, haproxyBalancerConfig, haproxyMaxconn } from './haproxy-config';
import {
  BACKEND_HOSTS,
  type Balancer,
  BULK_PORT,
  balancerPort,
  cpuList,
  type Endpoint,
  HOSTS,
  type HostName,
  HTTP_PORT,
  TLS_PORT,
  targetName,
} from './network';
import { established, listening, type Processes } from './processes';
import type { Say } from './report';

export interface Bed {
  readonly client: LanHost;
  /** The client agent (children/client.ts): probes, the bulk source, the idle connections. */
  readonly agent: NsProcess;
  /** The bulk sink on b1 (children/sink.ts). */
  readonly sink: NsProcess;
  /** Direct first, then each balancer. */
  readonly endpoints: readonly Endpoint[];
  /** ESTABLISHED connections at the backends' `port` (HTTP_PORT by default), summed (the kernel's count). */
  backendConnections(port?: number): Promise<number>;
}

/**
 * Builds the network in `lab` and starts every process of the bench in it; `dir` holds the configs.
 * Each balancer is pinned to its cores' CPUs (cpuList); the backends and the client side are not.
 * `pem` (certificate and key, for the backends' TLS frontends) is given when the storm runs; without
 * it there are no TLS frontends and no storm frontends.
 */
export async function startBed(
  lab: Lab,
  procs: Processes,
  dir: string,
  nofile: number,
  balancers: readonly Balancer[],
  pem: string | undefined,
  say: Say,
): Promise<Bed> {
  const hosts = await lab.lan(HOSTS);
  const host = (h: HostName) => hosts.get(h) as LanHost;
  const backendIps = BACKEND_HOSTS.map((b) => host(b).ip);
  const lb = host('lb');
  const client = host('client');
  // Every balancer closes its idle connections' upstream sides first, so after the idle figures the
  // lb namespace holds 5 x 9,900 sockets in TIME_WAIT towards the three backends' one port: over
  // half the ephemeral range per backend for 60 s. connect() then searches long for a free port
  // (new connections fell to a few hundred per second at 5 ms of CPU each). tcp_tw_reuse=1 (the
  // default reuses only on loopback) lets it take a TIME_WAIT port at once, the same for every balancer.
  await lab.exec(lb.ns, 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1');
  say(
    `lab ${lab.id}: client ${client.ip}, lb ${lb.ip}, backends ${backendIps.join(', ')} ` +
      `(HAProxy HTTP on :${HTTP_PORT}${pem === undefined ? '' : `, HTTPS on :${TLS_PORT}`}; ` +
      `bulk sink on ${backendIps[0]}:${BULK_PORT})`,
  );

  // --- backends, the client agent, and every balancer (idle until its turn) ---
  for (const b of BACKEND_HOSTS) {
    const cfg = join(dir, `${b}.cfg`);
    writeFileSync(cfg, haproxyBackendConfig(host(b).ip, haproxyMaxconn(nofile), pem));
    procs.haproxy(host(b).ns, cfg);
  }
  const sink = (await procs.node(host('b1').ns, 'sink', { host: host('b1').ip })).agent;
  const agent = (await procs.node(client.ns, 'client')).agent;
  for (const b of BACKEND_HOSTS) {
    for (const port of pem === undefined ? [HTTP_PORT] : [HTTP_PORT, TLS_PORT]) {
      await waitFor(`backend ${b} listening on ${port}`, () => listening(host(b).ns, port), {
        timeoutMs: 5000,
        everyMs: 100,
      });
    }
  }

  const storm = pem !== undefined;
  const endpoints: Endpoint[] = [
    { name: 'direct', ip: backendIps[0] as string, port: HTTP_PORT, bulkPort: BULK_PORT, stormPort: TLS_PORT },
  ];
  for (const balancer of balancers) {
    const { kind, cores } = balancer;
    const port = balancerPort(balancer);
    const name = targetName(balancer);
    const cpus = cpuList(cores);
    const ports = { ip: lb.ip, port, bulkPort: port + 1, stormPort: port + 2 };
    if (kind === 'haproxy') {
      const cfg = join(dir, `balancer-${cores}.cfg`);
      writeFileSync(cfg, haproxyBalancerConfig(lb.ip, port, backendIps, haproxyMaxconn(nofile), cores, storm));
      const pid = procs.haproxy(lb.ns, cfg, cpus).pid as number;
      endpoints.push({ name, balancer, ...ports, pid, comm: 'haproxy' });
    } else {
      const o = { bind: lb.ip, port, backends: backendIps, storm, threads: cores };
      const { pid } = await procs.node(lb.ns, kind, o, cpus);
      endpoints.push({ name, balancer, ...ports, pid, comm: 'node' });
    }
  }

  /** True once a request (or TLS handshake) to every backend (by roundrobin) through ip:port succeeds. */
  const serving = (ip: string, port: number, probe: 'probe' | 'tlsProbe') =>
    waitFor(
      `${ip}:${port} serving`,
      async () => {
        for (let i = 0; i < BACKEND_HOSTS.length; i++) {
          if ((await agent.request(probe, { host: ip, port })) !== true) return false;
        }
        return true;
      },
      { timeoutMs: 6000, everyMs: 200 },
    );
  for (const e of endpoints) {
    await serving(e.ip, e.port, 'probe');
    if (storm) await serving(e.ip, e.stormPort, 'tlsProbe');
    if (e.pid !== undefined && e.balancer !== undefined) {
      const { kind, cores } = e.balancer;
      const threads = kind === 'haproxy' ? `nbthread ${cores}, ` : kind === 'vipd' ? `proxy.threads ${cores}, ` : '';
      say(
        `${e.name} on ${e.ip}:${e.port}, pid ${e.pid} (${readlinkSync(`/proc/${e.pid}/exe`)}), ` +
          `${threads}pinned to CPU${cores === 1 ? '' : 's'} ${cpuList(cores)}`,
      );
    }
  }

  const backendConnections = async (port = HTTP_PORT) => {
    let n = 0;
    for (const b of BACKEND_HOSTS) n += await established(host(b).ns, port);
    return n;
  };
  return { client, agent, sink, endpoints, backendConnections };
}
