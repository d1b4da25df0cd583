/**
 * Three control-plane nodes and a client on one bridge (namespaces), each node running the real
 * `vipd run` in its namespace, for the namespace suites. Who holds the VIP is read from each
 * namespace's addresses, and the client's neighbour table, never from the daemons' own word.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { stringify } from 'yaml';
import { Lab, type LanHost } from '../../src/lab/netns';
import { waitFor } from '../../src/lab/wait';
import { programCommand } from './agent-loop';
import { DaemonProcess, tempDir } from './daemon';

export const VIP = '10.77.0.100';
/** The IPv6 VIP of an 'ipv6' or 'dual' cluster, on the segment's fd00:77::/64. */
export const VIP6 = 'fd00:77::100';
const PREFIX6 = 'fd00:77::';
/**
 * The address families of a cluster: 'ipv4' (the default), 'ipv6' (IPv6 peers and VIP; the hosts
 * keep their IPv4 addresses, unused by vipd) or 'dual' (IPv6 peers, one VIP of each family).
 */
export type Stack = 'ipv4' | 'ipv6' | 'dual';
const STAND_IN = join(__dirname, '..', '..', 'src', 'lab', 'stand-in-apiserver.js');
const TCP_CLIENT = join(__dirname, 'tcp-client.js');
export const NODES = ['cp1', 'cp2', 'cp3'] as const;
export type NodeName = (typeof NODES)[number];

export class Cluster {
  readonly lab = new Lab();
  readonly tmp = tempDir();
  hosts = new Map<string, LanHost>();
  readonly daemons = new Map<NodeName, DaemonProcess>();
  /** Every daemon started, a restarted node's earlier process too: destroy() kills them all. */
  private readonly started: DaemonProcess[] = [];

  readonly standIns = new Map<NodeName, ChildProcess>();
  private readonly monitors: ChildProcess[] = [];
  /** Every change of a node's hold on the VIP, as the kernel reports it (`ip monitor address`), once watch() ran. */
  readonly holderEvents: { at: number; node: NodeName; held: boolean }[] = [];

  constructor(
    private readonly quorum: 'majority' | 'none',
    private readonly extra: Record<string, unknown> = {},
    /**
     * A node that is a witness (peers[].role), run with `vipd witness`; with `routed`, it sits on a
     * segment of its own (10.78.0.0/24) behind a router namespace, as at another site.
     */
    private readonly witness?: { readonly node: NodeName; readonly routed?: boolean },
    readonly stack: Stack = 'ipv4',
  ) {}

  /** The VIP holders() reads: the IPv6 one in an IPv6-only cluster, else the IPv4 one. */
  get vip(): string {
    return this.stack === 'ipv6' ? VIP6 : VIP;
  }

  host(n: string): LanHost {
    return this.hosts.get(n) as LanHost;
  }

  /** Where the node records that the cluster has formed (its election.stateDir). */
  stateDir(n: NodeName): string {
    return join(this.tmp.dir, `state-${n}`);
  }

  async build(): Promise<void> {
    const w = this.witness;
    if (w?.routed === true) {
      const here = await this.lab.lan([...NODES.filter((n) => n !== w.node), 'client']);
      const there = await this.lab.lan([w.node], { bridge: 'br2', subnet: '10.78.0' });
      this.routerNs = await this.lab.router('rt', here, there);
      this.hosts = new Map([...here, ...there]);
    } else {
      this.hosts = await this.lab.lan([...NODES, 'client'], this.stack === 'ipv4' ? {} : { ipv6: PREFIX6 });
    }
    for (const n of NODES) this.writeConfig(n, NODES);
  }

  /** The router between the segments (a routed witness), for a test to cut there. */
  routerNs: string | undefined;

  /** The node's config, its peers listed in `order` (the same order everywhere unless a test says otherwise). */
  writeConfig(n: NodeName, order: readonly NodeName[]): void {
    writeFileSync(
      join(this.tmp.dir, `${n}.yaml`),
      stringify({
        nodeName: n,
        peers: order.map((p) => ({
          name: p,
          address: this.stack === 'ipv4' ? this.host(p).ip : this.host(p).ip6,
          ...(p === this.witness?.node ? { role: 'witness' } : {}),
        })),
        vip: {
          ...(this.stack === 'ipv4'
            ? { address: `${VIP}/24` }
            : this.stack === 'ipv6'
              ? { address: `${VIP6}/64` }
              : { addresses: [`${VIP}/24`, `${VIP6}/64`] }),
          interface: 'eth0',
          garp: { refresh: '0s' },
        },
        election: { secretFile: this.tmp.secretFile, quorum: this.quorum, stateDir: this.stateDir(n) },
        proxy: { enabled: false },
        track: { apiserver: { enabled: false } },
        ...this.extra,
      }),
    );
  }

  start(n: NodeName): DaemonProcess {
    const command = n === this.witness?.node ? 'witness' : 'run';
    const d = new DaemonProcess(n, [command, '--config', join(this.tmp.dir, `${n}.yaml`)], {
      prefix: ['ip', 'netns', 'exec', this.host(n).ns],
    });
    this.daemons.set(n, d);
    this.started.push(d);
    return d;
  }

  /** Starts following each node's kernel: adds (and lifetime renewals) and deletions of the VIP. */
  watch(): void {
    for (const n of NODES) {
      const mon = spawn('ip', ['-n', this.host(n).ns, '-o', 'monitor', 'address', 'dev', 'eth0'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      this.monitors.push(mon);
      createInterface({ input: mon.stdout! }).on('line', (line) => {
        if (!line.includes(` ${this.vip}/`)) return;
        const held = !line.startsWith('Deleted');
        const last = [...this.holderEvents].reverse().find((e) => e.node === n);
        if (last?.held !== held) this.holderEvents.push({ at: performance.now(), node: n, held });
      });
    }
  }

  /** From the kernel's events since `since`: how many times a node gained the VIP, and the longest time two held it. */
  holderStats(since: number): { gains: number; maxOverlapMs: number; overlapMs: number } {
    const holding = new Set<NodeName>();
    let gains = 0;
    let maxOverlapMs = 0;
    let overlapMs = 0;
    let overlapSince: number | undefined;
    for (const e of this.holderEvents) {
      if (e.held) holding.add(e.node);
      else holding.delete(e.node);
      if (e.at < since) continue;
      if (e.held) gains += 1;
      if (holding.size > 1 && overlapSince === undefined) overlapSince = e.at;
      if (holding.size <= 1 && overlapSince !== undefined) {
        overlapMs += e.at - overlapSince;
        maxOverlapMs = Math.max(maxOverlapMs, e.at - overlapSince);
        overlapSince = undefined;
      }
    }
    if (overlapSince !== undefined) {
      overlapMs += performance.now() - overlapSince;
      maxOverlapMs = Math.max(maxOverlapMs, performance.now() - overlapSince);
    }
    return { gains, maxOverlapMs, overlapMs };
  }

  /** Who has the VIP (`vip`, by default this cluster's `vip`) on eth0, read from each namespace. */
  async holders(vip = this.vip): Promise<NodeName[]> {
    const out: NodeName[] = [];
    const family = vip.includes(':') ? 6 : 4;
    const cidr = `${vip}/${family === 6 ? 64 : 24}`;
    for (const n of NODES) {
      if ((await this.lab.addresses(this.host(n).ns, 'eth0', family)).includes(cidr)) out.push(n);
    }
    return out;
  }

  /** Waits until exactly the holders (of `vip`, this cluster's own by default) `pred` accepts, and returns them. */
  async until(what: string, pred: (h: NodeName[]) => boolean, seconds = 10, vip = this.vip): Promise<NodeName[]> {
    return waitFor(
      what,
      async () => {
        const h = await this.holders(vip);
        return pred(h) ? h : undefined;
      },
      { timeoutMs: seconds * 1000, everyMs: 100 },
    );
  }

  async one(seconds = 10): Promise<NodeName> {
    const [h] = await this.until('exactly one VIP holder', (x) => x.length === 1, seconds);
    return h as NodeName;
  }

  /** The client talks to the VIP once, so it has a neighbour entry for it to be updated. */
  async clientResolves(vip = this.vip): Promise<void> {
    // A TCP connect to a closed port: the client resolves the VIP's MAC, the holder answers RST.
    await this.lab.exec(this.host('client').ns, ...programCommand(TCP_CLIENT, [vip, '9', '--for-ms', '1000']));
  }

  async clientSees(n: NodeName, vip = this.vip): Promise<void> {
    const mac = this.host(n).mac;
    await waitFor(
      `the client's neighbour entry for ${vip} to show ${n}'s MAC ${mac}`,
      async () => {
        const e = await this.lab.neighbour(this.host('client').ns, 'eth0', vip);
        return e?.lladdr === mac ? e : undefined;
      },
      { timeoutMs: 5000, everyMs: 100 },
    );
  }

  nft(n: NodeName, rules: string): void {
    execFileSync('ip', ['netns', 'exec', this.host(n).ns, 'nft', '-f', '-'], { input: rules });
  }

  /** The stand-in apiserver on the node's :9443 (HTTPS /readyz; SIGUSR1 makes it answer 503). */
  async startStandIn(n: NodeName): Promise<void> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.host(n).ns,
        process.execPath,
        STAND_IN,
        '--host',
        this.stack === 'ipv4' ? '0.0.0.0' : '::',
        '--port',
        '9443',
        '--name',
        n,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.standIns.set(n, child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${n}: the stand-in apiserver did not start`)), 15_000);
      child.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async destroy(): Promise<void> {
    for (const m of this.monitors) m.kill('SIGKILL');
    for (const c of this.standIns.values()) c.kill('SIGKILL');
    await Promise.all(this.started.map((d) => d.kill()));
    await this.lab.destroy();
    this.tmp.cleanup();
  }
}

/** The cluster of one describe block: built (stand-in apiservers first, if asked) before its tests, destroyed after. */
export function useCluster(opts: { standIns: boolean }, ...args: ConstructorParameters<typeof Cluster>): Cluster {
  const c = new Cluster(...args);
  before(async () => {
    await c.build();
    if (opts.standIns) for (const n of NODES) await c.startStandIn(n);
    for (const n of NODES) c.start(n);
  });
  after(() => c.destroy());
  return c;
}
