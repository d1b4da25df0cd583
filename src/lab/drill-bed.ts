/**
 * The drill's test bed: a throwaway network of namespaces (three control-plane nodes and a client
 * on one bridge), a stand-in apiserver (HTTPS, /readyz) on :9443 in each node, a VIP manager in
 * each node (vipd, or keepalived + HAProxy for the comparison), the kernel's view of who holds the
 * VIP (`ip monitor address` in each node, a HolderLog) and a client connecting to VIP:port (a
 * ClientLog); more client programs (a watch, a load, a storm) can run beside it in the client's
 * namespace. In IPv6 mode (BedOptions.ipv6) every host also has fd00:77::<n>/64, the managers are
 * given those addresses and the VIP fd00:77::100/64, and every client speaks to [VIP]:port; the hosts
 * keep their IPv4 addresses, which nothing of the drill uses then. The events that break it live in drill.ts and client-drill.ts; this file only
 * builds, operates and removes it. Everything it creates is removed by `close()`, and on Ctrl-C by a handler that runs
 * before the Lab's own sweep, so no process outlives its namespace.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { Readable } from 'node:stream';
import { ExitCode, VipdError } from '../errors';
import { ClientLog } from './client-log';
import { HolderLog } from './holder-log';
import { Lab, type LanHost } from './netns';
import { sleep } from './wait';
import { WatchLog } from './watch-client';

export const NODES = ['cp1', 'cp2', 'cp3'] as const;
export type NodeName = (typeof NODES)[number];
export const VIP = '10.77.0.100';
/** The VIP of an IPv6 bed, on the segment's fd00:77::/64. */
export const VIP6 = 'fd00:77::100';
const PREFIX6 = 'fd00:77::';
/** How long the drill waits for anything the managers should do (a takeover, one holder again). */
export const PHASE_TIMEOUT_MS = 15_000;

export interface ManagerCommand {
  readonly cmd: string;
  readonly args: readonly string[];
  /** This process runs the election: a stall stops it and every process it forked. */
  readonly election?: boolean;
}

/** What the drill needs from a VIP manager (vipd, keepalived). */
export interface VipManager {
  /** For the report, e.g. "vipd (interval 100ms)". */
  readonly label: string;
  /** Write config files etc. into `dir`, once the network exists. */
  prepare(net: DrillNetwork, dir: string): void;
  /** The processes to run on `node`, inside its namespace (started, stopped and killed together). */
  commands(node: NodeName, dir: string): ManagerCommand[];
  /** The port the client connects to on the VIP. */
  readonly probePort: number;
  /**
   * An nftables match for the manager's heartbeats and nothing else, e.g. 'udp dport 7580' or
   * 'ip protocol vrrp': the loss events drop exactly these, so the balancer's traffic and its
   * health checks go on as before and only the election sees the fault.
   */
  readonly heartbeatMatch: string;
  /** Called with each line the manager prints (for --verbose). */
  readonly onLine?: (node: NodeName, line: string) => void;
}

export interface DrillNetwork {
  host(name: string): LanHost;
  /** The bed's address family: 6 in IPv6 mode (BedOptions.ipv6), else 4. */
  readonly family: 4 | 6;
  /** A host's address in the bed's family (its IPv6 one in IPv6 mode). */
  address(name: string): string;
  /** The VIP, e.g. "10.77.0.100" or "fd00:77::100", and with its prefix length, "10.77.0.100/24". */
  readonly vip: string;
  readonly vipCidr: string;
}

export interface BedOptions {
  readonly out: (line: string) => void;
  /** Namespace prefix, e.g. "vipd-lab" or "vipd-bench". */
  readonly prefix: string;
  /** IPv6 mode: the managers get IPv6 peers and the VIP fd00:77::100/64; the clients use it. */
  readonly ipv6?: boolean;
}

/** "HOST:PORT", an IPv6 address in brackets (for a URL or an HTTP Host header). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Whether an `ip -o monitor address` line says the address is usable: added or renewed, and not
 * tentative (an IPv6 address still in duplicate address detection takes no traffic) nor failed
 * its detection. A "Deleted" line says it is gone.
 */
export function monitorLineHolds(line: string): boolean {
  return !line.startsWith('Deleted') && !/ (tentative|dadfailed)( |$)/.test(line);
}

export function checkDrillPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new VipdError(
      'VIPD_NOT_ROOT',
      'the lab builds network namespaces and needs root: run `sudo npm run lab` (or `sudo vipd lab`)',
      { exitCode: ExitCode.usage },
    );
  }
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
  ] as const) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      throw new VipdError('VIPD_MISSING_TOOL', `the lab needs \`${tool}\`: install ${pkg} (apt-get install ${pkg})`, {
        exitCode: ExitCode.usage,
      });
    }
  }
}

export class DrillBed implements DrillNetwork {
  /** Who holds the VIP, from the nodes' kernels. */
  readonly holders = new HolderLog();
  /** What the client saw, once `startClient` ran. */
  readonly client = new ClientLog();
  readonly family: 4 | 6;
  readonly vip: string;
  readonly vipCidr: string;
  private readonly t0 = Date.now();
  private readonly lab: Lab;
  private readonly dir: string;
  private hosts = new Map<string, LanHost>();
  private readonly children = new Set<ChildProcess>();
  private readonly managers = new Map<NodeName, { child: ChildProcess; election: boolean }[]>();
  private readonly standIns = new Map<NodeName, ChildProcess>();
  private readonly monitors = new Set<number>();
  /** Ctrl-C: the process dies right after the handlers run, so nothing asynchronous. */
  private readonly onSignal = () => {
    this.killAll();
    rmSync(this.dir, { recursive: true, force: true });
  };

  private constructor(
    private readonly manager: VipManager,
    private readonly options: BedOptions,
  ) {
    checkDrillPrerequisites();
    this.family = options.ipv6 === true ? 6 : 4;
    this.vip = this.family === 6 ? VIP6 : VIP;
    this.vipCidr = this.family === 6 ? `${VIP6}/64` : `${VIP}/24`;
    this.lab = new Lab(options.prefix);
    this.dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
    // Before the Lab's sweep (which deletes the namespaces): processes are found by namespace.
    process.prependOnceListener('SIGINT', this.onSignal);
    process.prependOnceListener('SIGTERM', this.onSignal);
  }

  /** Builds the network, starts everything and waits for one VIP holder; closes itself on failure. */
  static async open(manager: VipManager, options: BedOptions): Promise<DrillBed> {
    const bed = new DrillBed(manager, options);
    try {
      await bed.build();
      return bed;
    } catch (err) {
      await bed.close();
      throw err;
    }
  }

  /** A progress line, stamped with the seconds since the bed was made. */
  say(text: string): void {
    this.options.out(`[${((Date.now() - this.t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
  }

  host(name: string): LanHost {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no host ${name} in the drill's network`);
    return h;
  }

  address(name: string): string {
    const h = this.host(name);
    if (this.family === 4) return h.ip;
    if (h.ip6 === undefined) throw new Error(`host ${name} has no IPv6 address`);
    return h.ip6;
  }

  /** "VIP:port" for a client, the IPv6 VIP in brackets. */
  vipEndpoint(port: number): string {
    return hostPort(this.vip, port);
  }

  private async build(): Promise<void> {
    this.hosts = await this.lab.lan([...NODES, 'client'], this.family === 6 ? { ipv6: PREFIX6 } : {});
    this.say(
      `network${this.family === 6 ? ' (IPv6)' : ''}: ${NODES.map((n) => `${n} ${this.address(n)}`).join(', ')}, ` +
        `client ${this.address('client')}, VIP ${this.vipCidr} (namespaces ${this.lab.id}-*)`,
    );
    this.manager.prepare(this, this.dir);
    for (const n of NODES) {
      const mon = this.spawnIn(this.host(n).ns, 'ip', ['-o', 'monitor', 'address', 'dev', 'eth0']);
      if (mon.pid !== undefined) this.monitors.add(mon.pid);
      lines(mon.stdout).on('line', (line) => {
        if (line.includes(` ${this.vip}/`)) this.holders.set(n, monitorLineHolds(line));
      });
    }
    for (const n of NODES) this.startStandIn(n);
    for (const n of NODES) this.startManager(n);
    if ((await this.holders.waitFor((h) => h.size === 1, PHASE_TIMEOUT_MS)) === undefined) {
      throw new Error(`no single VIP holder within ${PHASE_TIMEOUT_MS / 1000}s (holders: ${this.holders.list()})`);
    }
    await sleep(1000);
    if (this.holders.holders.size !== 1) {
      throw new Error(`the VIP holders did not settle (holders: ${this.holders.list()})`);
    }
    this.say(`VIP on ${this.holders.list()} (elected)`);
  }

  /** The client: a connect to VIP:probePort every `intervalMs`, for at most `maxSeconds`. */
  startClient(intervalMs: number, maxSeconds: number): void {
    const probe = this.spawnIn(this.host('client').ns, process.execPath, [
      join(__dirname, 'connect-client.js'),
      this.vip,
      String(this.manager.probePort),
      String(intervalMs),
      String(maxSeconds),
    ]);
    lines(probe.stdout).on('line', (line) => this.client.add(line));
  }

  startStandIn(n: NodeName): void {
    this.standIns.set(
      n,
      this.spawnIn(
        this.host(n).ns,
        process.execPath,
        // IPv6 mode: "::" takes both families, the balancers' IPv6 connections and checks included.
        [
          join(__dirname, 'stand-in-apiserver.js'),
          '--host',
          this.family === 6 ? '::' : '0.0.0.0',
          '--port',
          '9443',
          '--name',
          n,
        ],
        'ignore',
      ),
    );
  }

  /** SIGKILLs `n`'s stand-in apiserver (its kernel resets its connections) and waits for it to exit. */
  async killStandIn(n: NodeName): Promise<void> {
    const child = this.standIns.get(n);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * A program of the lab's (a script beside this file) in the client's namespace, each stdout line
   * handed to `onLine`; it ends when its stdin closes (`stopProgram`). `nofile` raises its
   * descriptor limit (prlimit, which execs the program in place) for programs holding thousands
   * of connections.
   */
  startClientProgram(
    script: string,
    args: readonly string[],
    onLine: (line: string) => void,
    nofile?: number,
  ): ChildProcess {
    const node = [process.execPath, join(__dirname, script), ...args];
    const [cmd, ...rest] = nofile === undefined ? node : ['prlimit', `--nofile=${nofile}:${nofile}`, ...node];
    const child = this.spawnIn(this.host('client').ns, cmd ?? process.execPath, rest);
    lines(child.stdout).on('line', onLine);
    // A program that fails says why on stderr: the last lines are printed if it exits with an error.
    const tail: string[] = [];
    lines(child.stderr).on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
    });
    child.once('exit', (code) => {
      if (code !== 0 && code !== null) this.say(`  ${script} exited with ${code}: ${tail.join(' | ')}`);
    });
    return child;
  }

  /**
   * A watching client (watch-client.ts: @kubernetes/client-node's Watch) on the stand-in's event
   * watch through VIP:probePort, in the client's namespace; resolves once events flow through it,
   * or with the log saying why not (the library is not installed, or nothing came in 10 s).
   */
  async startWatch(): Promise<{ log: WatchLog; child: ChildProcess }> {
    const log = new WatchLog();
    const since = Date.now();
    const child = this.startClientProgram(
      'watch-client.js',
      [`https://${this.vipEndpoint(this.manager.probePort)}`],
      (line) => log.add(line),
    );
    if (!(await log.waitFor(() => log.flowingAfter(since), 10_000)) && log.unavailable === undefined) {
      log.unavailable = 'no watch event came in within 10 s';
    }
    return { log, child };
  }

  /** Closes a client program's stdin, waits for it to exit, and kills it after 5 s. */
  async stopProgram(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Sets a sysctl in a host's namespace (the namespace's own copy: the machine's is untouched). */
  sysctl(host: string, key: string, value: string | number): void {
    execFileSync('ip', ['netns', 'exec', this.host(host).ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Reads a sysctl in a host's namespace. */
  readSysctl(host: string, key: string): string {
    return execFileSync('ip', ['netns', 'exec', this.host(host).ns, 'sysctl', '-n', key], { encoding: 'utf8' }).trim();
  }

  startManager(n: NodeName): void {
    this.managers.set(
      n,
      this.manager.commands(n, this.dir).map(({ cmd, args, election }) => {
        const child = this.spawnIn(this.host(n).ns, cmd, args);
        const onLine = (line: string) => this.manager.onLine?.(n, line);
        lines(child.stdout).on('line', onLine);
        lines(child.stderr).on('line', onLine);
        return { child, election: election === true };
      }),
    );
  }

  /** Sends `signal` to the manager's processes on `n` and waits for them to exit. */
  async stopManager(n: NodeName, signal: NodeJS.Signals): Promise<void> {
    const procs = (this.managers.get(n) ?? []).map((m) => m.child);
    for (const p of procs) p.kill(signal);
    await Promise.all(
      procs.map((p) =>
        p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)),
      ),
    );
  }

  /** Every process in `n`'s namespace except the drill's own address monitor. */
  nodePids(n: NodeName): number[] {
    return namespacePids(this.host(n).ns).filter((pid) => !this.monitors.has(pid));
  }

  /**
   * The election's processes on `n`: the command marked `election` and its descendants (keepalived
   * forks its VRRP child), parents first. `ip netns exec` execs in place, so the child's pid is
   * the command's own.
   */
  electionPids(n: NodeName): number[] {
    return this.treeOf(
      n,
      (this.managers.get(n) ?? []).filter((m) => m.election),
    );
  }

  /** Every process of the manager on `n` (keepalived, its children and HAProxy; vipd), parents first. */
  managerPids(n: NodeName): number[] {
    return this.treeOf(n, this.managers.get(n) ?? []);
  }

  private treeOf(n: NodeName, commands: readonly { child: ChildProcess }[]): number[] {
    const roots = commands.map((m) => m.child.pid).filter((pid): pid is number => pid !== undefined);
    const parents = new Map(namespacePids(this.host(n).ns).map((pid) => [pid, parentPid(pid)] as const));
    const tree = [...roots];
    // Breadth first over the namespace's processes: at most one pass per process.
    for (let i = 0; i < tree.length && i < parents.size + roots.length; i++) {
      for (const [pid, ppid] of parents) if (ppid === tree[i] && !tree.includes(pid)) tree.push(pid);
    }
    return tree;
  }

  /** Loads an nftables script (`nft -f -`) in `n`'s namespace. */
  nft(n: NodeName, script: string): void {
    execFileSync('ip', ['netns', 'exec', this.host(n).ns, 'nft', '-f', '-'], { input: script });
  }

  /** Removes the VIP from `n`'s interface (a stale copy a manager left behind). */
  async removeVip(n: NodeName): Promise<void> {
    await this.lab.ip(this.host(n).ns, 'addr', 'del', this.vipCidr, 'dev', 'eth0').catch(() => undefined);
  }

  /** Switches `n`'s port on the bridge: the cable pulled or plugged back in. */
  async switchPort(n: NodeName, up: boolean): Promise<void> {
    await this.lab.ip(this.host(n).bridgeNs, 'link', 'set', this.host(n).bridgePort, up ? 'up' : 'down');
  }

  /** Kills every process and removes every namespace and file; safe to call more than once. */
  async close(): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    this.killAll();
    await Promise.all([...this.children].map((c) => new Promise((r) => c.once('exit', r))));
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
    this.say('lab removed');
  }

  private spawnIn(ns: string, cmd: string, args: readonly string[], stdio: 'pipe' | 'ignore' = 'pipe'): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', stdio, stdio] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * SIGKILL to the drill's children and to anything else left in its namespaces: keepalived's
   * VRRP child outlives a killed parent for seconds, and a stopped (stalled) process must not
   * linger either. Synchronous, for the signal handler.
   */
  private killAll(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const h of this.hosts.values()) {
      for (const pid of namespacePids(h.ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  }
}

/** The pids of the processes in namespace `ns` (none once it is gone). */
function namespacePids(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map(Number)
      .filter((pid) => pid > 0);
  } catch {
    return [];
  }
}

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]); // after "pid (comm) state"
  } catch {
    return undefined; // exited meanwhile
  }
}

/** The lines of a child's piped output (every child here is spawned with stdout and stderr piped). */
function lines(stream: Readable | null): Interface {
  if (stream === null) throw new Error('a lab child without a piped output');
  return createInterface({ input: stream });
}
