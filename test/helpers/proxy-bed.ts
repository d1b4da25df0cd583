/**
 * A balancer in front of three apiservers on namespaced hosts, for the balancer's fault tests: one
 * bridge and five namespaces (Lab.lan), `lb` 10.77.0.1 running the real `vipd run` (its election
 * alone and irrelevant, its proxy on :6443), `b1`-`b3` 10.77.0.2-4 each running a stand-in
 * HTTPS apiserver on :9443, and `client` 10.77.0.5 for the loads (tls-load.ts). Everything it
 * starts (namespaces, processes, the temporary directory) is removed by destroy(), also after a
 * failed build.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Lab, type LanHost, type NsProcess } from '../../src/lab/netns';
import { programCommand } from './agent-loop';
import { DaemonProcess, tempDir } from './daemon';
import type { LoadSummary } from './tls-load';

const STAND_IN = join(__dirname, '..', '..', 'src', 'lab', 'stand-in-apiserver.js');
const TLS_LOAD = join(__dirname, 'tls-load.js');
const HTTP_GET = join(__dirname, 'http-get.js');
export const BACKENDS = ['b1', 'b2', 'b3'] as const;
export type BackendHost = (typeof BACKENDS)[number];
const HOSTS = ['lb', ...BACKENDS, 'client'] as const;
export const API_PORT = 9443;
export const FRONT_PORT = 6443;

/** An nftables table in a backend's namespace that drops every SYN (every packet) to its apiserver port. */
const BLACKHOLE =
  'table inet vipd_blackhole {\n' +
  `  chain input { type filter hook input priority 0; tcp dport ${API_PORT} drop; }\n}\n`;

export class ProxyBed {
  readonly lab = new Lab('vipd-pf');
  readonly tmp = tempDir();
  hosts = new Map<string, LanHost>();
  daemon: DaemonProcess | undefined;
  private readonly standIns = new Map<BackendHost, NsProcess>();

  host(name: string): LanHost {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no host ${name}`);
    return h;
  }

  /** Builds the network, starts the stand-ins and the daemon, and waits for every backend to be up. */
  async build(frontend: Record<string, unknown> = {}): Promise<void> {
    this.hosts = await this.lab.lan([...HOSTS]);
    for (const b of BACKENDS) await this.startStandIn(b);
    const lb = this.host('lb');
    const config = join(this.tmp.dir, 'lb.yaml');
    writeFileSync(
      config,
      stringify({
        nodeName: 'lb',
        peers: [{ name: 'lb', address: lb.ip }],
        vip: { address: '10.77.0.100/24', interface: 'eth0', garp: { refresh: '0s' } },
        election: { secretFile: this.tmp.secretFile, quorum: 'none', stateDir: join(this.tmp.dir, 'state') },
        proxy: {
          frontends: [
            {
              name: 'apiserver',
              bind: `0.0.0.0:${FRONT_PORT}`,
              backends: BACKENDS.map((b) => ({ name: b, address: this.host(b).ip, port: API_PORT })),
              ...frontend,
            },
          ],
        },
        track: { apiserver: { enabled: false } },
      }),
    );
    this.daemon = new DaemonProcess('lb', ['run', '--config', config], { prefix: ['ip', 'netns', 'exec', lb.ns] });
    await this.allUp();
  }

  /** Waits until the daemon has logged every backend up (its latest state line about each says up). */
  async allUp(timeoutMs = 20_000): Promise<void> {
    for (const b of BACKENDS) await this.backendState(b, 'up', timeoutMs);
  }

  /**
   * Waits until the latest state line the daemon logged about `b` says `state`: "backend up" and
   * "backend back up" for up, "backend down" and "backend marked down ..." for down.
   */
  async backendState(b: BackendHost, state: 'up' | 'down', timeoutMs = 20_000): Promise<void> {
    const d = this.daemon as DaemonProcess;
    const wanted = state === 'up' ? /^backend (back )?up/ : /^backend (marked )?down/;
    const says = (msg: unknown) => typeof msg === 'string' && wanted.test(msg);
    const stateLine = /^backend (up|back up|down|marked down)/;
    const last = d.lines.filter((l) => l.backend === b && typeof l.msg === 'string' && stateLine.test(l.msg)).pop();
    if (says(last?.msg)) return;
    const from = d.lines.length;
    await d.waitFor(
      (l) => l.backend === b && says(l.msg) && d.lines.indexOf(l) >= from,
      timeoutMs,
      `backend ${b} ${state}`,
    );
  }

  /** Starts (or restarts) the stand-in apiserver on a backend's :9443. */
  async startStandIn(b: BackendHost): Promise<void> {
    const proc = this.lab.spawnNode(this.host(b).ns, STAND_IN, [
      '--host',
      '0.0.0.0',
      '--port',
      String(API_PORT),
      '--name',
      b,
    ]);
    this.standIns.set(b, proc);
    await proc.event((e) => e.event === 'listening', `${b}'s stand-in apiserver listening`);
  }

  /** SIGKILL, as a crashed apiserver: the kernel resets its connections and refuses new ones. */
  killStandIn(b: BackendHost): void {
    this.standIns.get(b)?.kill();
  }

  async blackhole(b: BackendHost): Promise<void> {
    await nft(this.host(b).ns, BLACKHOLE);
  }

  async clearBlackhole(b: BackendHost): Promise<void> {
    await nft(this.host(b).ns, 'delete table inet vipd_blackhole\n');
  }

  /** Runs tls-load.ts in the client namespace; `atStart` runs once its first requests are out. */
  async load(
    opts: { clients: number; seconds: number; timeoutMs: number },
    atStart?: () => Promise<void>,
  ): Promise<LoadSummary> {
    const proc = this.lab.spawnNode(this.host('client').ns, TLS_LOAD, [
      '--host',
      this.host('lb').ip,
      '--port',
      String(FRONT_PORT),
      '--clients',
      String(opts.clients),
      '--seconds',
      String(opts.seconds),
      '--timeout-ms',
      String(opts.timeoutMs),
    ]);
    const limit = opts.seconds * 1000 + opts.timeoutMs + 10_000;
    await proc.event((e) => e.event === 'started', 'the load to start', 10_000);
    await atStart?.();
    return (await proc.event((e) => e.event === 'done', 'the load to finish', limit)) as unknown as LoadSummary;
  }

  /** One series of the daemon's /metrics, summed over the series matching `labels` (a substring). */
  async metric(name: string, labels = ''): Promise<number> {
    const { stdout } = await this.lab.exec(
      this.host('lb').ns,
      ...programCommand(HTTP_GET, ['http://127.0.0.1:7581/metrics']),
    );
    return stdout
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  async destroy(): Promise<void> {
    for (const p of this.standIns.values()) p.kill();
    await this.daemon?.kill();
    await this.lab.destroy();
    this.tmp.cleanup();
  }
}

function nft(ns: string, rules: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nft in ${ns} failed: ${err.trim()}`))));
    child.stdin.end(rules);
  });
}
