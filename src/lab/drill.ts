/**
 * The failover drill behind `vipd lab` and bench/failover.ts: a throwaway network of namespaces
 * (three control-plane nodes and a client on one bridge), a stand-in apiserver (HTTPS, /readyz) on
 * :9443 in each node, a VIP manager in each node (vipd, or keepalived + HAProxy for the
 * comparison), and a client connecting to VIP:6443 (the balancer) every 10 ms. Events: crash the master, cut its link, stop it
 * gracefully, partition it away, heal. Who holds the VIP is read from the kernel
 * (`ip monitor address` in each namespace), not from the managers' own word, so every manager is
 * judged the same way. Everything created is removed at the end, on error and on Ctrl-C.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ExitCode, VipdError } from '../errors';
import { Lab, type LanHost } from './netns';

export const NODES = ['cp1', 'cp2', 'cp3'] as const;
export type NodeName = (typeof NODES)[number];
export const VIP = '10.77.0.100';
const PHASE_TIMEOUT_MS = 15_000;

/** What the drill needs from a VIP manager (vipd, keepalived). */
export interface VipManager {
  /** For the report, e.g. "vipd (interval 100ms)". */
  readonly label: string;
  /** Write config files etc. into `dir`, once the network exists. */
  prepare(net: DrillNetwork, dir: string): void;
  /** The processes to run on `node`, inside its namespace (started, stopped and killed together). */
  commands(node: NodeName, dir: string): { cmd: string; args: string[] }[];
  /** The port the client connects to on the VIP. */
  readonly probePort: number;
  /** Called with each line the manager prints (for --verbose). */
  readonly onLine?: (node: NodeName, line: string) => void;
}

export interface DrillNetwork {
  host(name: string): LanHost;
}

export interface Outcome {
  readonly event: string;
  readonly from: string;
  /** The node that took the VIP over ('' when none did within the phase timeout). */
  readonly to: string;
  /** From the event to a new holder, read from the kernel. */
  readonly vipMovedMs: number | undefined;
  /** The longest stretch without a successful client connect. undefined: the client never recovered. */
  readonly outageMs: number | undefined;
}

export interface DrillOptions {
  readonly out: (line: string) => void;
  /** Namespace prefix, e.g. "vipd-lab" or "vipd-bench". */
  readonly prefix: string;
}

export function checkDrillPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new VipdError('VIPD_NOT_ROOT', 'the lab builds network namespaces and needs root: run `sudo npm run lab` (or `sudo vipd lab`)', { exitCode: ExitCode.usage });
  }
  for (const [tool, pkg] of [['ip', 'iproute2'], ['nft', 'nftables']] as const) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      throw new VipdError('VIPD_MISSING_TOOL', `the lab needs \`${tool}\`: install ${pkg} (apt-get install ${pkg})`, { exitCode: ExitCode.usage });
    }
  }
}

/** An nftables table that cuts a namespace's eth0 off both ways; `HEAL` removes it. */
export const ISOLATE = [
  'table inet vipd_lab {',
  '  chain in { type filter hook input priority 0; iifname "eth0" drop; }',
  '  chain out { type filter hook output priority 0; oifname "eth0" drop; }',
  '}', ''].join('\n');
export const HEAL = 'delete table inet vipd_lab\n';

export async function runDrill(manager: VipManager, options: DrillOptions): Promise<Outcome[]> {
  checkDrillPrerequisites();
  const t0 = Date.now();
  const say = (text: string) => options.out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
  const lab = new Lab(options.prefix);
  const dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const children = new Set<ChildProcess>();
  const managers = new Map<NodeName, ChildProcess[]>();
  const standIns = new Map<NodeName, ChildProcess>();
  const holders = new Set<NodeName>();
  let holderWaiters: (() => void)[] = [];
  const probeResults: { t: number; ok: boolean }[] = [];
  const stopAll = () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); };
  process.once('SIGINT', stopAll);
  process.once('SIGTERM', stopAll);

  const spawnIn = (ns: string, cmd: string, args: readonly string[], stdio: 'pipe' | 'ignore' = 'pipe') => {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', stdio, stdio] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  /** Every change of the holder set, with its time: "VIP moved" is read from here. */
  const holderLog: { t: number; holders: NodeName[] }[] = [];
  const changed = () => {
    holderLog.push({ t: Date.now(), holders: [...holders] });
    const w = holderWaiters; holderWaiters = []; for (const f of w) f();
  };

  try {
    const hosts = await lab.lan([...NODES, 'client']);
    const net: DrillNetwork = { host: (n) => hosts.get(n) as LanHost };
    const host = net.host;
    say(`network: ${NODES.map((n) => `${n} ${host(n).ip}`).join(', ')}, client ${host('client').ip}, VIP ${VIP}/24 (namespaces ${lab.id}-*)`);
    manager.prepare(net, dir);

    // The kernel's view of who holds the VIP: one `ip monitor address` per node.
    const monitors = new Set<number>();
    for (const n of NODES) {
      const mon = spawnIn(host(n).ns, 'ip', ['-o', 'monitor', 'address', 'dev', 'eth0']);
      if (mon.pid !== undefined) monitors.add(mon.pid);
      createInterface({ input: mon.stdout! }).on('line', (line) => {
        if (!line.includes(` ${VIP}/`)) return;
        if (line.startsWith('Deleted')) holders.delete(n);
        else holders.add(n);
        changed();
      });
    }
    const startStandIn = (n: NodeName) => {
      standIns.set(n, spawnIn(host(n).ns, process.execPath, [join(__dirname, 'stand-in-apiserver.js'), '--host', '0.0.0.0', '--port', '9443', '--name', n], 'ignore'));
    };
    const startManager = (n: NodeName) => {
      managers.set(n, manager.commands(n, dir).map(({ cmd, args }) => {
        const child = spawnIn(host(n).ns, cmd, args);
        const onLine = (line: string) => manager.onLine?.(n, line);
        createInterface({ input: child.stdout! }).on('line', onLine);
        createInterface({ input: child.stderr! }).on('line', onLine);
        return child;
      }));
    };
    const waitHolders = (pred: (h: ReadonlySet<NodeName>) => boolean): Promise<number | undefined> => {
      const start = Date.now();
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), PHASE_TIMEOUT_MS);
        const check = () => {
          if (pred(holders)) { clearTimeout(timer); resolve(Date.now() - start); } else holderWaiters.push(check);
        };
        check();
      });
    };
    const list = () => [...holders].sort().join('+') || 'nobody';
    const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

    for (const n of NODES) startStandIn(n);
    for (const n of NODES) startManager(n);
    if (await waitHolders((h) => h.size === 1) === undefined) throw new Error(`no single VIP holder within ${PHASE_TIMEOUT_MS / 1000}s (holders: ${list()})`);
    await settle(1000);
    if (holders.size !== 1) throw new Error(`the VIP holders did not settle (holders: ${list()})`);
    say(`VIP on ${list()} (elected)`);

    const probe = spawnIn(host('client').ns, process.execPath, [join(__dirname, 'probe.js'), VIP, String(manager.probePort), '10', '600']);
    createInterface({ input: probe.stdout! }).on('line', (text) => {
      try { probeResults.push(JSON.parse(text) as { t: number; ok: boolean }); } catch { /* not a probe line */ }
    });
    await settle(1000);

    /** The longest run of failed connects after `since`, from the last success before it to the first after. */
    const outageSince = (since: number): number | undefined => {
      let longest = 0;
      let lastOk = since;
      let failing = false;
      for (const r of probeResults) {
        if (r.t < since) continue;
        if (!r.ok) failing = true;
        else {
          if (failing) longest = Math.max(longest, r.t - lastOk);
          failing = false;
          lastOk = r.t;
        }
      }
      return failing ? undefined : longest;
    };

    /** Waits until the client's last half second of connects all succeeded (at most `limitMs`). */
    const clientSteady = async (limitMs: number) => {
      const until = Date.now() + limitMs;
      await settle(500);
      while (Date.now() < until) {
        const recent = probeResults.filter((r) => r.t > Date.now() - 500);
        if (recent.length > 10 && recent.every((r) => r.ok)) return;
        await settle(100);
      }
    };

    const outcomes: Outcome[] = [];
    const drill = async (event: string, act: (m: NodeName) => void | Promise<void>, recover: (m: NodeName) => void | Promise<void>) => {
      if (holders.size !== 1) await waitHolders((h) => h.size === 1);
      const master = [...holders][0] as NodeName;
      say(`${event} (master ${master})`);
      const start = Date.now();
      await act(master);
      await waitHolders((h) => [...h].some((n) => n !== master));
      const takeover = holderLog.find((e) => e.t >= start && e.holders.some((n) => n !== master));
      const moved = takeover === undefined ? undefined : takeover.t - start;
      const to = [...holders].find((n) => n !== master) ?? '';
      await clientSteady(PHASE_TIMEOUT_MS);
      const outage = outageSince(start);
      say(`  VIP on ${list()}${moved === undefined ? ' (no takeover)' : ` (taken over after ${moved} ms)`}; client outage ${outage === undefined ? 'still on' : `${outage} ms`}`);
      outcomes.push({ event, from: master, to, vipMovedMs: moved, outageMs: outage });
      await recover(master);
      let one = await waitHolders((h) => h.size === 1);
      if (one === undefined && holders.has(master) && holders.size > 1) {
        // The restarted manager left the stale copy (keepalived's #2361): say so, and remove it so
        // the next event starts from one holder like every other run.
        say(`  the restarted manager on ${master} left the stale VIP there; the drill removes it`);
        await lab.ip(host(master).ns, 'addr', 'del', `${VIP}/24`, 'dev', 'eth0').catch(() => undefined);
        one = await waitHolders((h) => h.size === 1);
      }
      await settle(1500);
      say(`  recovered: VIP on ${list()}${one === undefined ? ' (did not settle on one holder)' : ''}`);
    };

    // A node crash: every process on the node dies at once (SIGKILL to all of its namespace's
    // processes, so a manager's helper processes get no chance to send a goodbye either). The VIP
    // stays on the interface, as on a hung node; the restarted manager has to clean it up.
    await drill('crash: SIGKILL every process on the master', (m) => {
      const pids = execFileSync('ip', ['netns', 'pids', host(m).ns], { encoding: 'utf8' }).split('\n').map(Number)
        .filter((pid) => pid > 0 && !monitors.has(pid));
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
    }, (m) => { startStandIn(m); startManager(m); });
    await drill("link cut: the master's switch port goes down", async (m) => {
      await lab.ip(host(m).bridgeNs, 'link', 'set', host(m).bridgePort, 'down');
    }, async (m) => {
      await lab.ip(host(m).bridgeNs, 'link', 'set', host(m).bridgePort, 'up');
    });
    await drill('graceful: SIGTERM the master', async (m) => {
      const procs = managers.get(m) ?? [];
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    }, (m) => { startManager(m); });
    await drill('partition: nftables cuts the master off from the rest', (m) => {
      execFileSync('ip', ['netns', 'exec', host(m).ns, 'nft', '-f', '-'], { input: ISOLATE });
    }, (m) => {
      execFileSync('ip', ['netns', 'exec', host(m).ns, 'nft', '-f', '-'], { input: HEAL });
    });
    return outcomes;
  } finally {
    process.off('SIGINT', stopAll);
    process.off('SIGTERM', stopAll);
    stopAll();
    await Promise.all([...children].map((c) => new Promise((r) => c.once('exit', r))));
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
    say('lab removed');
  }
}

export function formatOutcomes(label: string, outcomes: readonly Outcome[]): string[] {
  const lines = [`${'event'.padEnd(56)} ${'VIP moved'.padStart(10)} ${'client outage'.padStart(14)}   (${label})`];
  for (const o of outcomes) {
    const moved = o.vipMovedMs === undefined ? 'never' : `${o.vipMovedMs} ms`;
    const outage = o.outageMs === undefined ? 'unrecovered' : `${o.outageMs} ms`;
    lines.push(`${o.event.padEnd(56)} ${moved.padStart(10)} ${outage.padStart(14)}`);
  }
  return lines;
}
