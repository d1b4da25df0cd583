/**
 * `vipd lab`: vipd's built-in demo. Runs the failover drill (drill.ts) with the real vipd daemon on
 * each of three namespaced nodes at the default settings (VIP, balancer on :6443, apiserver
 * tracking), and prints who held the VIP and the client's outage for each event.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { formatOutcomes, NODES, runDrill, VIP, type Outcome, type VipManager } from './drill';

const CLI = join(__dirname, '..', 'cli', 'main.js');

export interface LabOptions {
  /** Print the daemons' own log lines too. */
  readonly verbose: boolean;
  readonly out?: (line: string) => void;
  /** Extra election settings (the benchmark varies the interval). */
  readonly election?: Record<string, unknown>;
}

export function vipdManager(options: LabOptions, print: (line: string) => void): VipManager {
  const interval = String(options.election?.interval ?? '100ms');
  return {
    label: `vipd, interval ${interval}, deadAfter ${String(options.election?.deadAfter ?? 3)}`,
    prepare(net, dir) {
      const secretFile = join(dir, 'secret');
      writeFileSync(secretFile, `${Math.random().toString(36).slice(2)}-lab-secret-0123456789\n`);
      for (const n of NODES) {
        writeFileSync(join(dir, `${n}.yaml`), stringify({
          nodeName: n,
          peers: NODES.map((p) => ({ name: p, address: net.host(p).ip })),
          vip: { address: `${VIP}/24`, interface: 'eth0' },
          election: { secretFile, ...options.election },
          // The defaults: a balancer on :6443 over every node's :9443 (checked with GET /readyz),
          // and this node's own apiserver tracked, as on a real control plane.
        }));
      }
    },
    commands: (n, dir) => [{ cmd: process.execPath, args: [CLI, 'run', '--config', join(dir, `${n}.yaml`)] }],
    probePort: 6443,
    ...(options.verbose ? { onLine: (n, line) => print(`        ${n}: ${line}`) } : {}),
  };
}

export async function runLab(options: LabOptions): Promise<Outcome[]> {
  const print = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const manager = vipdManager(options, print);
  const outcomes = await runDrill(manager, { out: print, prefix: 'vipd-lab' });
  print('');
  for (const line of formatOutcomes(manager.label, outcomes)) print(line);
  print('The client connects to VIP:6443 (vipd\'s balancer) every 10 ms; "VIP moved" is read from each node\'s kernel.');
  return outcomes;
}
