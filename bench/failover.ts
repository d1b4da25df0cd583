/**
 * Failover benchmark: the lab's drill (src/lab/drill.ts) run on the same namespaced network with
 * vipd and with the pair it replaces, keepalived + HAProxy (Debian's packages), one after the
 * other in one run, and the client outages side by side. As root: `npm run bench:failover`.
 *
 * keepalived is set up as the kubeadm HA guide does (unicast peers, equal priorities, state
 * BACKUP everywhere), once with its default advert_int 1 (VRRPv2) and once with VRRPv3 at 0.1 s,
 * which is the fastest it supports and what vipd's default heartbeat interval matches. HAProxy
 * listens on :6443 on every node with HTTPS /readyz checks; the client connects to VIP:6443.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatOutcomes, NODES, runDrill, VIP, type Outcome, type VipManager } from '../src/lab/drill';
import { vipdManager } from '../src/lab/lab';

/** HAProxy as the kubeadm HA guide configures it: TCP on :6443, HTTPS /readyz checks, roundrobin. */
function haproxyConfig(ips: readonly string[]): string {
  return `global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend apiserver
  bind *:6443
  default_backend apiservers
backend apiservers
  option httpchk GET /readyz
  http-check expect status 200
  balance roundrobin
  default-server inter 2s fall 3 rise 2 check check-ssl verify none
${ips.map((ip, i) => `  server cp${i + 1} ${ip}:9443`).join('\n')}
`;
}

/** keepalived (unicast VRRP, as the kubeadm guide sets it up) with HAProxy beside it on each node. */
function keepalivedManager(advertInt: number): VipManager {
  const v3 = advertInt < 1;
  return {
    label: `keepalived ${v3 ? 'VRRPv3' : 'VRRPv2'} ${advertInt}s + HAProxy`,
    probePort: 6443,
    prepare(net, dir) {
      writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(NODES.map((n) => net.host(n).ip)));
      for (const n of NODES) {
        const peers = NODES.filter((p) => p !== n).map((p) => `    ${net.host(p).ip}`).join('\n');
        writeFileSync(join(dir, `${n}.conf`), `global_defs {
  router_id ${n}
  ${v3 ? 'vrrp_version 3' : ''}
  vrrp_garp_master_delay 5
  vrrp_garp_master_repeat 5
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int ${advertInt}
  unicast_src_ip ${net.host(n).ip}
  unicast_peer {
${peers}
  }
  virtual_ipaddress {
    ${VIP}/24 dev eth0
  }
}
`);
      }
    },
    commands: (n, dir) => [
      {
        cmd: 'keepalived',
        args: ['--dont-fork', '--log-console', '--vrrp', '-f', join(dir, `${n}.conf`),
          '-p', join(dir, `${n}.pid`), '-r', join(dir, `${n}.vrrp.pid`), '-c', join(dir, `${n}.checkers.pid`)],
      },
      { cmd: 'haproxy', args: ['-db', '-f', join(dir, 'haproxy.cfg'), '-p', join(dir, `${n}.haproxy.pid`)] },
    ],
  };
}

async function main(): Promise<void> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const runs: { label: string; outcomes: Outcome[] }[] = [];
  const managers: VipManager[] = [vipdManager({ verbose: false }, print)];
  try {
    execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    managers.push(keepalivedManager(1), keepalivedManager(0.1));
  } catch {
    process.stderr.write('bench: keepalived and haproxy are needed for the comparison (apt-get install keepalived haproxy); running vipd only\n');
  }
  for (const m of managers) {
    print(`\n=== ${m.label}`);
    runs.push({ label: m.label, outcomes: await runDrill(m, { out: print, prefix: 'vipd-bench' }) });
  }
  print('\n=== client outage (ms) per event; lower is better');
  const events = runs[0]?.outcomes.map((o) => o.event) ?? [];
  print(`${'event'.padEnd(56)}${runs.map((r) => r.label.padStart(34)).join('')}`);
  for (const [i, e] of events.entries()) {
    print(`${e.padEnd(56)}${runs.map((r) => { const o = r.outcomes[i]; return (o?.outageMs === undefined ? 'unrecovered' : `${o.outageMs}`).padStart(34); }).join('')}`);
  }
  print('\n=== VIP moved (ms) per event');
  for (const [i, e] of events.entries()) {
    print(`${e.padEnd(56)}${runs.map((r) => { const o = r.outcomes[i]; return (o?.vipMovedMs === undefined ? 'never' : `${o.vipMovedMs}`).padStart(34); }).join('')}`);
  }
  for (const r of runs) { print(''); for (const l of formatOutcomes(r.label, r.outcomes)) print(l); }
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
