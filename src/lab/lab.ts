/**
 * `vipd lab`: vipd's built-in demo. Runs the failover drill (drill.ts) with the real vipd daemon on
 * each of three namespaced nodes at the default settings (VIP, balancer on :6443, apiserver
 * tracking), and prints who held the VIP and the client's outage for each event, and whether a
 * client's watch came back within 15 s of the node death and of the link cut; it draws the run
 * (timeline.ts) on an HTML page in the temporary directory and prints its path. The one-way losses
 * are held 5 s here (10 s in the benchmark), to keep the demo and its test short. With `ipv6`
 * (`vipd lab --ipv6`) the same drill runs over IPv6: IPv6 peers, the VIP fd00:77::100/64, the
 * balancer on [::]:6443 and the client connecting to [fd00:77::100]:6443.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describeError } from '../errors';
import { type DrillEvent, type DrillRecord, type Outcome, runDrill } from './drill';
import { NODES, VIP6, type VipManager } from './drill-bed';
import { formatOutcomes } from './drill-tables';
import { renderTimeline, timelineEvent } from './timeline';

const CLI = join(__dirname, '..', 'cli', 'main.js');

export interface LabOptions {
  /** Print the daemons' own log lines too. */
  readonly verbose: boolean;
  readonly out?: (line: string) => void;
  /** Extra election settings (the benchmark varies the interval). */
  readonly election?: Record<string, unknown>;
  /** Run the drill over IPv6 (BedOptions.ipv6); vipdManager writes whatever family the bed has. */
  readonly ipv6?: boolean;
  /** The events to run (default: all of DRILL_EVENTS). */
  readonly events?: readonly DrillEvent[];
  /** Hold a client's watch across the node death and the link cut (default true). */
  readonly watch?: boolean;
  /** Given the drill's raw record once the bed is gone (a test reads the client's connects in it). */
  readonly onRecord?: (record: DrillRecord) => void;
}

export function vipdManager(options: LabOptions, print: (line: string) => void): VipManager {
  const interval = String(options.election?.interval ?? '100ms');
  const port = Number(options.election?.port ?? 7580);
  return {
    label: `vipd, interval ${interval}, deadAfter ${String(options.election?.deadAfter ?? 3)}`,
    prepare(net, dir) {
      const secretFile = join(dir, 'secret');
      writeFileSync(secretFile, `${Math.random().toString(36).slice(2)}-lab-secret-0123456789\n`);
      for (const n of NODES) {
        writeFileSync(
          join(dir, `${n}.yaml`),
          stringify({
            nodeName: n,
            peers: NODES.map((p) => ({ name: p, address: net.address(p) })),
            vip: { address: net.vipCidr, interface: 'eth0' },
            election: { secretFile, stateDir: join(dir, `state-${n}`), ...options.election },
            // The defaults: a balancer on :6443 over every node's :9443 (checked with GET /readyz),
            // and this node's own apiserver tracked, as on a real control plane. Over IPv6 the
            // balancer listens on [::] (both families; the default 0.0.0.0 takes IPv4 only) and
            // its default backends are the peers' IPv6 addresses.
            ...(net.family === 6 ? { proxy: { frontends: [{ name: 'apiserver', bind: '[::]:6443' }] } } : {}),
          }),
        );
      }
    },
    // One process: the election, the VIP and the balancer.
    commands: (n, dir) => [
      { cmd: process.execPath, args: [CLI, 'run', '--config', join(dir, `${n}.yaml`)], election: true },
    ],
    probePort: 6443,
    // Every election message (heartbeats, votes, resigns) goes to the election port.
    heartbeatMatch: `udp dport ${port}`,
    ...(options.verbose ? { onLine: (n, line) => print(`        ${n}: ${line}`) } : {}),
  };
}

export async function runLab(options: LabOptions): Promise<Outcome[]> {
  const print = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const manager = vipdManager(options, print);
  const ipv6 = options.ipv6 === true;
  const label = ipv6 ? `${manager.label}, IPv6` : manager.label;
  const endpoint = ipv6 ? `[${VIP6}]:6443` : 'VIP:6443';
  let timeline: string | undefined;
  const onRecord = (record: DrillRecord) => {
    timeline = writeTimeline(label, record, print);
    options.onRecord?.(record);
  };
  const outcomes = await runDrill(manager, {
    out: print,
    prefix: 'vipd-lab',
    lossHoldMs: 5000,
    onRecord,
    ipv6,
    ...(options.events === undefined ? {} : { events: options.events }),
    ...(options.watch === undefined ? {} : { watch: options.watch }),
  }).catch((err: unknown) => {
    if (timeline !== undefined) print(`The run up to the failure, drawn: ${timeline}`);
    throw err;
  });
  print('');
  for (const line of formatOutcomes(label, outcomes)) print(line);
  print(
    `The client connects to ${endpoint} (vipd's balancer) every 10 ms; "VIP moved" is read from each node's kernel.`,
  );
  print('The held faults: "2 holders" is the total (and longest) time two nodes held the VIP during the fault');
  print('(a stall: until 3 s after SIGCONT), "changes" how often the holder set changed, "back" whether the VIP');
  print('went back to the stalled node, "1 at heal" whether one node held it when the loss ended.');
  print('"settled": one holder again within 15 s after each event. "watch resumed": a client-node Watch on an');
  print(`event stream through ${endpoint}, from the node death (or link cut) to its first event on a new watch.`);
  if (ipv6) {
    print('Over IPv6 the VIP is announced with unsolicited Neighbor Advertisements, and a new master resets the');
    print("old one's clients with tickle ACKs from a raw IPv6 socket, as over IPv4.");
  }
  if (timeline !== undefined) {
    print('');
    print(`Who held the VIP and when the client's connects failed, drawn: ${timeline}`);
  }
  return outcomes;
}

/** The run drawn (timeline.ts) into a page of its own in the temporary directory: its path, or undefined. */
function writeTimeline(label: string, record: DrillRecord, print: (line: string) => void): string | undefined {
  const path = join(tmpdir(), `vipd-lab-timeline-${new Date(record.start).toISOString().replace(/[:.]/g, '-')}.html`);
  try {
    writeFileSync(
      path,
      renderTimeline({
        title: `vipd lab: ${label}`,
        nodes: NODES,
        start: record.start,
        end: record.end,
        holders: record.holders,
        probes: record.probes,
        events: record.outcomes.map(timelineEvent),
      }),
    );
    return path;
  } catch (err) {
    print(`could not write the timeline to ${path}: ${describeError(err)}`);
    return undefined;
  }
}
