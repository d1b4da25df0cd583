/**
 * `vipd lab`: vipd's built-in demo. Builds a throwaway network of namespaces on this machine
 * (three control-plane nodes and a client on one bridge), starts a stand-in apiserver and the real
 * vipd daemon on each node, and runs a failover drill: crash the master, cut its link, stop it
 * gracefully, partition it away, heal. Prints who holds the VIP and the client's outage per event.
 * Everything it creates is removed on exit, Ctrl-C included.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { ExitCode, VipdError } from '../errors';
import { Lab, type LanHost } from './netns';

const CLI = join(__dirname, '..', 'cli', 'main.js');
const NODES = ['cp1', 'cp2', 'cp3'] as const;
type NodeName = (typeof NODES)[number];
const VIP = '10.77.0.100';
const PHASE_TIMEOUT_MS = 15_000;

export interface LabOptions {
  /** Print the daemons' own log lines too. */
  readonly verbose: boolean;
  readonly out?: (line: string) => void;
}

interface Outcome { readonly event: string; readonly from: string; readonly to: string; readonly vipMovedMs: number | undefined; readonly outageMs: number | undefined }

export function checkLabPrerequisites(): void {
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

export async function runLab(options: LabOptions): Promise<Outcome[]> {
  checkLabPrerequisites();
  const print = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const t0 = Date.now();
  const say = (text: string) => print(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
  const lab = new Lab('vipd-lab');
  const dir = mkdtempSync(join(tmpdir(), 'vipd-lab-'));
  const daemons = new Map<NodeName, ChildProcess>();
  const standIns = new Map<NodeName, ChildProcess>();
  const holders = new Set<NodeName>();
  const holderWaiters: (() => void)[] = [];
  const probeResults: { t: number; ok: boolean }[] = [];
  let probe: ChildProcess | undefined;
  const children: ChildProcess[] = [];

  const track = (child: ChildProcess) => { children.push(child); return child; };
  try {
    const hosts = await lab.lan([...NODES, 'client']);
    const host = (n: string) => hosts.get(n) as LanHost;
    say(`network: ${NODES.map((n) => `${n} ${host(n).ip}`).join(', ')}, client ${host('client').ip}, VIP ${VIP}/24 (namespaces ${lab.id}-*)`);
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${Math.random().toString(36).slice(2)}-lab-secret-0123456789\n`);

    for (const n of NODES) {
      const file = join(dir, `${n}.yaml`);
      writeFileSync(file, stringify({
        nodeName: n,
        peers: NODES.map((p) => ({ name: p, address: host(p).ip })),
        vip: { address: `${VIP}/24`, interface: 'eth0' },
        election: { secretFile },
        proxy: { enabled: false },
        track: { apiserver: { enabled: false } },
      }));
      startStandIn(n);
    }

    function startStandIn(n: NodeName): void {
      standIns.set(n, track(spawn('ip', ['netns', 'exec', host(n).ns, process.execPath, join(__dirname, 'stand-in-server.js'), '0.0.0.0', '9443', n], { stdio: ['pipe', 'ignore', 'inherit'] })));
    }
    const startDaemon = (n: NodeName) => {
      const child = track(spawn('ip', ['netns', 'exec', host(n).ns, process.execPath, CLI, 'run', '--config', join(dir, `${n}.yaml`)], { stdio: ['ignore', 'pipe', 'pipe'] }));
      daemons.set(n, child);
      createInterface({ input: child.stdout! }).on('line', (text) => {
        let line: Record<string, unknown>;
        try { line = JSON.parse(text) as Record<string, unknown>; } catch { return; }
        if (options.verbose) print(`        ${n}: ${text}`);
        if (line.msg === 'VIP added') holders.add(n);
        else if (line.msg === 'VIP removed') holders.delete(n);
        else return;
        for (const w of holderWaiters.splice(0)) w();
      });
      createInterface({ input: child.stderr! }).on('line', (text) => print(`        ${n} stderr: ${text}`));
      child.once('exit', () => {
        // SIGKILL leaves the address in the namespace, but nobody answers for it from a dead daemon's view.
        holders.delete(n);
        for (const w of holderWaiters.splice(0)) w();
      });
    };
    const waitHolders = (pred: (h: ReadonlySet<NodeName>) => boolean, what: string): Promise<number> => {
      const start = Date.now();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`lab: ${what} did not happen within ${PHASE_TIMEOUT_MS / 1000}s`)), PHASE_TIMEOUT_MS);
        const check = () => {
          if (pred(holders)) { clearTimeout(timer); resolve(Date.now() - start); } else holderWaiters.push(check);
        };
        check();
      });
    };
    const single = (): NodeName => [...holders][0] as NodeName;
    const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

    for (const n of NODES) startDaemon(n);
    await waitHolders((h) => h.size === 1, 'an election');
    say(`VIP on ${single()} (elected)`);

    probe = track(spawn('ip', ['netns', 'exec', host('client').ns, process.execPath, join(__dirname, 'probe.js'), VIP, '9443', '10', '300'], { stdio: ['pipe', 'pipe', 'inherit'] }));
    createInterface({ input: probe.stdout! }).on('line', (text) => {
      try { probeResults.push(JSON.parse(text) as { t: number; ok: boolean }); } catch { /* ignore */ }
    });
    await settle(1000);

    const outcomes: Outcome[] = [];
    const outageSince = (since: number): number | undefined => {
      // The longest run of failed probes after `since`, measured from the last success before it
      // to the first success after it.
      let longest: number | undefined;
      let lastOk = since;
      let failing = false;
      for (const r of probeResults) {
        if (r.t < since) continue;
        if (!r.ok) failing = true;
        else {
          if (failing) longest = Math.max(longest ?? 0, r.t - lastOk);
          failing = false;
          lastOk = r.t;
        }
      }
      return failing ? undefined : longest ?? 0;
    };
    const drill = async (event: string, act: (master: NodeName) => Promise<void>, recover: (master: NodeName) => Promise<void>) => {
      const master = single();
      say(`${event} (master ${master})`);
      const start = Date.now();
      await act(master);
      const moved = await waitHolders((h) => h.size === 1 && !h.has(master), 'a takeover').catch(() => undefined);
      const to = holders.size === 1 ? single() : [...holders].join('+') || 'nobody';
      await settle(800);
      const outage = outageSince(start);
      say(`  VIP on ${to} after ${moved ?? '?'} ms; client outage ${outage === undefined ? 'still on' : `${outage} ms`}`);
      outcomes.push({ event, from: master, to, vipMovedMs: moved, outageMs: outage });
      await recover(master);
      await settle(1500);
      say(`  recovered: VIP on ${[...holders].join('+') || 'nobody'}`);
    };

    // A node crash: the daemon and the apiserver die. The VIP stays on the dead daemon's
    // interface (nothing can remove it on SIGKILL), as on a hung node; its restart removes it.
    await drill('crash: SIGKILL the master and its apiserver', async (m) => {
      daemons.get(m)?.kill('SIGKILL');
      standIns.get(m)?.kill('SIGKILL');
    }, async (m) => {
      startStandIn(m);
      startDaemon(m);
    });
    await drill("link cut: the master's switch port goes down", async (m) => {
      await lab.ip(host(m).bridgeNs, 'link', 'set', host(m).bridgePort, 'down');
    }, async (m) => {
      await lab.ip(host(m).bridgeNs, 'link', 'set', host(m).bridgePort, 'up');
    });
    await drill('graceful: SIGTERM the master', async (m) => { daemons.get(m)?.kill('SIGTERM'); }, async (m) => {
      startDaemon(m);
    });
    await drill('partition: nftables cuts the master off from the rest', async (m) => {
      execFileSync('ip', ['netns', 'exec', host(m).ns, 'nft', '-f', '-'], {
        input: [
          'table inet vipd_lab {',
          '  chain in { type filter hook input priority 0; iifname "eth0" drop; }',
          '  chain out { type filter hook output priority 0; oifname "eth0" drop; }',
          '}', ''].join('\n'),
      });
    }, async (m) => {
      execFileSync('ip', ['netns', 'exec', host(m).ns, 'nft', 'delete', 'table', 'inet', 'vipd_lab']);
    });

    print('');
    print(`${'event'.padEnd(70)} VIP moved   client outage`);
    for (const o of outcomes) {
      print(`${o.event.padEnd(70)} ${`${o.vipMovedMs ?? '-'} ms`.padStart(9)}   ${o.outageMs === undefined ? '-' : `${o.outageMs} ms`}`);
    }
    print('(defaults: heartbeat interval 100ms, deadAfter 3, GARP burst of 5 at 200ms; the client connects to VIP:9443 every 10 ms)');
    return outcomes;
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
    say('lab removed');
  }
}
