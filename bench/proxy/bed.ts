/**
 * The bench's bed on a Lab (src/lab/netns.ts): one HAProxy per backend namespace answering HTTP
 * itself, the bulk sink on b1, the client agent, and every balancer in lb, each on its own ports,
 * all started at the beginning and waited for until each serves.
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
  /** ESTABLISHED connections at the backends' HTTP port, summed (the kernel's count). */
  backendConnections(): Promise<number>;
}

/**
 * Builds the network in `lab` and starts every process of the bench in it; `dir` holds the configs.
 * Each balancer is pinned to its cores' CPUs (cpuList); the backends and the client side are not.
 */
export async function startBed(
  lab: Lab,
  procs: Processes,
  dir: string,
  nofile: number,
  balancers: readonly Balancer[],
  say: Say,
): Promise<Bed> {
  const hosts = await lab.lan(HOSTS);
  const host = (h: HostName) => hosts.get(h) as LanHost;
  const backendIps = BACKEND_HOSTS.map((b) => host(b).ip);
  const lb = host('lb');
  const client = host('client');
  say(
    `lab ${lab.id}: client ${client.ip}, lb ${lb.ip}, backends ${backendIps.join(', ')} ` +
      `(HAProxy HTTP on :${HTTP_PORT}; bulk sink on ${backendIps[0]}:${BULK_PORT})`,
  );

  // --- backends, the client agent, and every balancer (idle until its turn) ---
  for (const b of BACKEND_HOSTS) {
    const cfg = join(dir, `${b}.cfg`);
    writeFileSync(cfg, haproxyBackendConfig(host(b).ip, haproxyMaxconn(nofile)));
    procs.haproxy(host(b).ns, cfg);
  }
  const sink = (await procs.node(host('b1').ns, 'sink', { host: host('b1').ip })).agent;
  const agent = (await procs.node(client.ns, 'client')).agent;
  for (const b of BACKEND_HOSTS) {
    await waitFor(`backend ${b} listening`, () => listening(host(b).ns, HTTP_PORT), { timeoutMs: 5000, everyMs: 100 });
  }

  const endpoints: Endpoint[] = [{ name: 'direct', ip: backendIps[0] as string, port: HTTP_PORT, bulkPort: BULK_PORT }];
  for (const balancer of balancers) {
    const { kind, cores } = balancer;
    const port = balancerPort(balancer);
    const name = targetName(balancer);
    const cpus = cpuList(cores);
    if (kind === 'haproxy') {
      const cfg = join(dir, `balancer-${cores}.cfg`);
      writeFileSync(cfg, haproxyBalancerConfig(lb.ip, port, backendIps, haproxyMaxconn(nofile), cores));
      const pid = procs.haproxy(lb.ns, cfg, cpus).pid as number;
      endpoints.push({ name, balancer, ip: lb.ip, port, bulkPort: port + 1, pid, comm: 'haproxy' });
    } else {
      const o = { bind: lb.ip, port, backends: backendIps, threads: cores };
      const { pid } = await procs.node(lb.ns, kind, o, cpus);
      endpoints.push({ name, balancer, ip: lb.ip, port, bulkPort: port + 1, pid, comm: 'node' });
    }
  }

  /** True once a request to every backend (by roundrobin) through ip:port succeeds. */
  const serving = (ip: string, port: number) =>
    waitFor(
      `${ip}:${port} serving`,
      async () => {
        for (let i = 0; i < BACKEND_HOSTS.length; i++) {
          if ((await agent.request('probe', { host: ip, port })) !== true) return false;
        }
        return true;
      },
      { timeoutMs: 6000, everyMs: 200 },
    );
  for (const e of endpoints) {
    await serving(e.ip, e.port);
    if (e.pid !== undefined && e.balancer !== undefined) {
      const { cores } = e.balancer;
      say(
        `${e.name} on ${e.ip}:${e.port}, pid ${e.pid} (${readlinkSync(`/proc/${e.pid}/exe`)}), ` +
          `${cores} thread${cores === 1 ? '' : 's'} pinned to CPU${cores === 1 ? '' : 's'} ${cpuList(cores)}`,
      );
    }
  }

  const backendConnections = async () => {
    let n = 0;
    for (const b of BACKEND_HOSTS) n += await established(host(b).ns, HTTP_PORT);
    return n;
  };
  return { client, agent, sink, endpoints, backendConnections };
}
