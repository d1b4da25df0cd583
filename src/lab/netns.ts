/**
 * Network-namespace plumbing for the lab and the integration tests: a Lab owns every namespace and
 * child process it creates and deletes them all in destroy() (its owner's finally), and on process
 * exit or SIGINT/SIGTERM as a last resort. Names are unique per process and run
 * (vipd-t-<pid>-<random>-<suffix>), so parallel test files and a crashed earlier run never collide.
 * Traffic stays inside the lab's namespaces.
 *
 * Code runs inside a namespace as a child process: `ip netns exec NS node <script>` (ip execs the
 * command in place, so the child's pid is node's and killing it is enough). Children speak JSON lines
 * on stdout; see NsProcess.
 */
import { type ChildProcessWithoutNullStreams, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { waitFor } from './wait';

const COMMAND_TIMEOUT_MS = 15_000;

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without a shell; rejects with its stderr on a non-zero exit or after 15 s. */
export function run(cmd: string, args: readonly string[]): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
  });
}

/** Live labs, for the exit-time sweep. */
const liveLabs = new Set<Lab>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

export interface LanHost {
  readonly ns: string;
  readonly ifname: 'eth0';
  readonly ip: string;
  /** Its IPv6 address, when the segment has an IPv6 prefix (lan's `ipv6` option). */
  readonly ip6?: string;
  readonly mac: string;
  /** The bridge's namespace, and this host's port on the bridge there. */
  readonly bridgeNs: string;
  readonly bridgePort: string;
}

export class Lab {
  readonly id: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<NsProcess>();

  /** `prefix` starts every namespace name: `<prefix>-<pid>-<random>-<suffix>`. */
  constructor(prefix = 'vipd-t') {
    this.id = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
    installExitHooks();
    liveLabs.add(this);
  }

  /** Creates namespace `<id>-<suffix>` with its loopback up. */
  async ns(suffix: string): Promise<string> {
    const name = `${this.id}-${suffix}`;
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await this.ip(name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** `ip -n NS ...` */
  ip(ns: string, ...args: string[]): Promise<CommandResult> {
    return run('ip', ['-n', ns, ...args]);
  }

  /** Any command inside a namespace. */
  exec(ns: string, cmd: string, ...args: string[]): Promise<CommandResult> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** A veth pair created directly in the two namespaces: nothing touches the host's namespace. */
  async veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
    await this.ip(nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB);
  }

  /**
   * One L2 segment: a bridge namespace (`br`, or `bridge`) and a namespace per host with `eth0` at
   * <subnet>.<n>/24 (n = 1, 2, ...; subnet 10.77.0 unless given). No STP, so ports forward at once.
   * With `ipv6` (a /64 prefix such as "fd00:77::"), each host has <ipv6><n>/64 too, added `nodad`
   * so it is usable at once rather than tentative for a second.
   */
  async lan(
    hosts: readonly string[],
    options: { readonly bridge?: string; readonly subnet?: string; readonly ipv6?: string } = {},
  ): Promise<Map<string, LanHost>> {
    const br = await this.ns(options.bridge ?? 'br');
    const subnet = options.subnet ?? '10.77.0';
    await this.ip(br, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    await this.ip(br, 'link', 'set', 'br0', 'up');
    const out = new Map<string, LanHost>();
    for (const [i, host] of hosts.entries()) {
      const ns = await this.ns(host);
      const port = `p-${host}`;
      await this.veth(ns, 'eth0', br, port);
      await this.ip(br, 'link', 'set', port, 'master', 'br0');
      await this.ip(br, 'link', 'set', port, 'up');
      const ip = `${subnet}.${i + 1}`;
      await this.ip(ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
      const ip6 = options.ipv6 === undefined ? undefined : `${options.ipv6}${(i + 1).toString(16)}`;
      if (ip6 !== undefined) await this.ip(ns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad');
      await this.ip(ns, 'link', 'set', 'eth0', 'up');
      const mac = await this.mac(ns, 'eth0');
      out.set(host, {
        ns,
        ifname: 'eth0',
        ip,
        ...(ip6 === undefined ? {} : { ip6 }),
        mac,
        bridgeNs: br,
        bridgePort: port,
      });
    }
    return out;
  }

  /**
   * A router namespace joining two segments made by lan(): a port on each bridge at <subnet>.254,
   * forwarding between them, and on every host of each segment a route to the other through it.
   * Returns the router's namespace (a test may cut or filter there).
   */
  async router(name: string, a: ReadonlyMap<string, LanHost>, b: ReadonlyMap<string, LanHost>): Promise<string> {
    const ns = await this.ns(name);
    await this.exec(ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    const sides = [a, b].map((lan, i) => {
      const first = [...lan.values()][0];
      if (first === undefined) throw new Error('router: an empty segment');
      return { lan, ifname: `eth${i}`, subnet: first.ip.split('.').slice(0, 3).join('.'), bridgeNs: first.bridgeNs };
    });
    for (const side of sides) {
      const port = `p-${name}`;
      await this.veth(ns, side.ifname, side.bridgeNs, port);
      await this.ip(side.bridgeNs, 'link', 'set', port, 'master', 'br0');
      await this.ip(side.bridgeNs, 'link', 'set', port, 'up');
      await this.ip(ns, 'addr', 'add', `${side.subnet}.254/24`, 'dev', side.ifname);
      await this.ip(ns, 'link', 'set', side.ifname, 'up');
    }
    const [sa, sb] = sides as [(typeof sides)[number], (typeof sides)[number]];
    for (const [from, to] of [
      [sa, sb],
      [sb, sa],
    ] as const) {
      for (const host of from.lan.values()) {
        await this.ip(host.ns, 'route', 'add', `${to.subnet}.0/24`, 'via', `${from.subnet}.254`);
      }
    }
    return ns;
  }

  async mac(ns: string, ifname: string): Promise<string> {
    const [link] = JSON.parse((await this.ip(ns, '-j', 'link', 'show', 'dev', ifname)).stdout) as Array<{
      address: string;
    }>;
    if (link === undefined) throw new Error(`no link ${ifname} in ${ns}`);
    return link.address;
  }

  /** The IPv4 (or, with family 6, the IPv6) addresses on an interface, as "a.b.c.d/len". */
  async addresses(ns: string, ifname: string, family: 4 | 6 = 4): Promise<string[]> {
    const links = JSON.parse((await this.ip(ns, '-j', 'addr', 'show', 'dev', ifname)).stdout) as Array<{
      addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
    }>;
    return links
      .flatMap((l) => l.addr_info ?? [])
      .filter((a) => a.family === (family === 6 ? 'inet6' : 'inet'))
      .map((a) => `${a.local}/${a.prefixlen}`);
  }

  /** The neighbour entry for `ip` on `ifname`: its MAC (lladdr) and states, or undefined. */
  async neighbour(ns: string, ifname: string, ip: string): Promise<{ lladdr?: string; state: string[] } | undefined> {
    const entries = JSON.parse((await this.ip(ns, '-j', 'neigh', 'show', ip, 'dev', ifname)).stdout) as Array<{
      dst: string;
      lladdr?: string;
      state?: string[];
    }>;
    const entry = entries.find((e) => e.dst === ip);
    return entry === undefined
      ? undefined
      : { ...(entry.lladdr === undefined ? {} : { lladdr: entry.lladdr }), state: entry.state ?? [] };
  }

  /** Starts `node <script> ...args` inside `ns`; the lab kills it on destroy. */
  spawnNode(ns: string, script: string, args: readonly string[] = [], nodeFlags: readonly string[] = []): NsProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeFlags, script, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, VIPD_TEST_AGENT: '1' },
    });
    const proc = new NsProcess(child, ns);
    this.children.add(proc);
    child.once('exit', () => this.children.delete(proc));
    return proc;
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.stop()));
    for (const ns of this.namespaces.splice(0).reverse()) {
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
    liveLabs.delete(this);
  }

  /** For process exit, where nothing asynchronous runs. */
  destroySync(): void {
    for (const child of this.children) child.kill();
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
      } catch {
        // already gone
      }
    }
    liveLabs.delete(this);
  }
}

export interface AgentMessage {
  readonly id?: number;
  readonly ok?: boolean;
  readonly result?: unknown;
  readonly error?: string;
  readonly event?: string;
  readonly [key: string]: unknown;
}

/**
 * A child in a namespace speaking JSON lines: requests `{id, cmd, ...}` on stdin, replies
 * `{id, ok, result | error}` and events `{event, ...}` on stdout. stderr lines (pino's JSON logs)
 * are kept in `logs`.
 */
export class NsProcess {
  readonly events: AgentMessage[] = [];
  readonly logs: Array<Record<string, unknown>> = [];
  readonly stderrText: string[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private nextId = 1;
  private exited: Promise<number | null>;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly ns: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    createInterface({ input: child.stderr }).on('line', (line) => {
      this.stderrText.push(line);
      try {
        this.logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line (a crash trace): kept in stderrText
      }
    });
    void this.exited.then((code) => {
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(
          new Error(`agent in ${ns} exited (${String(code)}) before replying; stderr:\n${this.stderrText.join('\n')}`),
        );
      }
      this.pending.clear();
    });
  }

  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(
            `agent in ${this.ns}: no reply to ${cmd} in ${timeoutMs}ms; stderr:\n${this.stderrText.join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve: (v) => resolve(v as T), reject, timer });
      this.child.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    });
  }

  /** The first event matching `match`, waiting at most `timeoutMs`. */
  async event(match: (e: AgentMessage) => boolean, what: string, timeoutMs = 15_000): Promise<AgentMessage> {
    return waitFor(what, () => this.events.find(match), { timeoutMs, everyMs: 50 });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** Asks the agent to exit; kills it after 5 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  private onLine(line: string): void {
    let msg: AgentMessage;
    try {
      msg = JSON.parse(line) as AgentMessage;
    } catch {
      this.stderrText.push(`stdout: ${line}`);
      return;
    }
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (p === undefined) return;
      clearTimeout(p.timer);
      if (msg.ok === true) p.resolve(msg.result);
      else p.reject(new Error(`agent in ${this.ns}: ${msg.error ?? 'failed'}`));
      return;
    }
    this.events.push(msg);
  }
}
