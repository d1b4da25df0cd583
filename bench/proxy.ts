/**
 * vipd's TCP balancer side by side with HAProxy 2.6 (Debian's package, `mode tcp`, `nbthread 1`)
 * and, as a reference, a naive `socket.pipe` proxy: the same namespaces, the same backends, one
 * run, and one table of vipd/HAProxy ratios at the end. As root, about 2.5 minutes:
 *
 *   npm run bench:proxy            (= npm run build && node dist/bench/proxy.js)
 *   node dist/bench/proxy.js [--rounds 3] [--duration 2] [--connections 50] [--latency-rate 1000]
 *                            [--latency-duration 3] [--bulk-seconds 2] [--idle 10000] [--no-pipe]
 *
 * The network is a Lab (src/lab/netns.ts) made for the run and deleted at its end: one bridge and
 * five namespaces, client 10.77.0.1, lb 10.77.0.2, b1-b3 10.77.0.3-5. No traffic leaves them.
 * - b1-b3: one HAProxy each answering HTTP itself (`http-request return`), so a backend costs as
 *   little CPU as possible and the balancer is what is measured; b1 also runs a Node bulk sink.
 * - lb: the balancers, each its own process on its own ports, all started at the beginning; only
 *   the one being measured carries traffic (the others just run their health checks).
 * - client: wrk, and a Node agent for the bulk stream, the idle connections and readiness probes.
 *
 * Targets: direct (client to b1, no balancer: the baseline for added latency), then each balancer.
 * - idle memory, first, while every balancer is fresh: --idle connections opened through it and
 *   left silent; once the backends count them ESTABLISHED (end to end), the balancer's VmRSS growth
 *   divided by the count.
 * - then --rounds rounds of: keep-alive (wrk -c --connections, connections reused: relay only),
 *   new connections (the same with "Connection: close": accept + connect + close per request),
 *   latency (wrk --latency at a fixed moderate rate: wrk's Lua delay() spaces the requests of 10
 *   connections to --latency-rate in total, so it measures a relayed request, not queueing; added
 *   latency = through-balancer percentile minus direct's in the same round), and bulk (one TCP
 *   stream from the client agent to b1's sink for --bulk-seconds, timed by the sink from its
 *   first byte to the FIN). Each figure is taken for every target back to back and the first
 *   target rotates, because this machine's speed drifts between runs; medians are reported.
 *
 * Every child process is spawned as `ip netns exec NS setpriv --pdeathsig KILL prlimit
 * --nofile=N:N CMD`: each of those execs in place, so the child's pid is CMD's (the pid whose RSS
 * is read); the death signal kills it if this driver dies without cleaning up; and the fd limit
 * covers 10,000 connections (20,000 sockets in a balancer; where the hard limit cannot be raised,
 * as in a container without CAP_SYS_RESOURCE, the idle count shrinks to fit and says so). Node
 * children also exit when their stdin closes. Needs root, `haproxy`, `wrk`, `ss`, `setpriv` and
 * `prlimit` (util-linux).
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { proxySchema } from '../src/config/schema';
import { Lab, NsProcess, type AgentMessage, type LanHost } from '../src/lab/netns';
import { sleep, waitFor } from '../src/lab/wait';
import { createLogger } from '../src/log/logger';
import { TcpProxy } from '../src/proxy/proxy';

/** Lab.lan numbers hosts in this order: client 10.77.0.1, lb .2, b1-b3 .3-.5. */
const HOSTS = ['client', 'lb', 'b1', 'b2', 'b3'] as const;
const BACKEND_HOSTS = ['b1', 'b2', 'b3'] as const;
type HostName = (typeof HOSTS)[number];
const HTTP_PORT = 18080;
const BULK_PORT = 18081;
/** Each balancer's HTTP frontend; its bulk frontend is the next port. All bound in `lb`. */
const BALANCER_PORTS = { haproxy: 6443, vipd: 7443, pipe: 8443 } as const;
type BalancerKind = keyof typeof BALANCER_PORTS;
/** Enough descriptors for 10,000 relayed connections (two sockets each) with room to spare. */
const NOFILE = 65536;
/** Connections per wrk latency run; the per-connection delay sets the total rate. */
const LATENCY_CONNECTIONS = 10;
/** Idle connections being connected at once by the client agent (a SYN burst, not a flood). */
const IDLE_CONCURRENCY = 200;
/** Descriptors a balancer needs besides its relayed sockets. */
const FD_MARGIN = 200;

interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly latencySeconds: number;
  readonly connections: number;
  readonly latencyRate: number;
  readonly bulkSeconds: number;
  readonly idle: number;
  readonly pipe: boolean;
}

function numberArg(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return v;
}

function options(): Options {
  return {
    rounds: numberArg('rounds', 3, 1, 100),
    seconds: numberArg('duration', 2, 1, 600),
    latencySeconds: numberArg('latency-duration', 3, 1, 600),
    connections: numberArg('connections', 50, 1, 10_000),
    latencyRate: numberArg('latency-rate', 1000, 10, 100_000),
    bulkSeconds: numberArg('bulk-seconds', 2, 1, 600),
    idle: numberArg('idle', 10_000, 1, 25_000),
    pipe: !process.argv.includes('--no-pipe'),
  };
}

// === children: `node proxy.js --child <kind> '<json options>'`, inside a namespace ===============
// Each speaks NsProcess's JSON lines (requests on stdin, replies and events on stdout; logs on
// stderr) and exits when its stdin closes, so it never outlives the driver.

const emit = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(msg)}\n`);

type Handler = (req: Record<string, unknown>) => unknown;

function serveRequests(handlers: Record<string, Handler>, onStdinClosed: () => unknown): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const req = JSON.parse(line) as { id: number; cmd: string } & Record<string, unknown>;
    Promise.resolve()
      .then(() => {
        const handler = handlers[req.cmd];
        if (handler === undefined) throw new Error(`unknown command ${req.cmd}`);
        return handler(req);
      })
      .then((result) => emit({ id: req.id, ok: true, result }), (err: unknown) => emit({ id: req.id, ok: false, error: String(err) }));
  });
  lines.on('close', () => {
    void Promise.resolve().then(onStdinClosed).finally(() => process.exit(0));
  });
}

interface BalancerChildOptions {
  readonly bind: string;
  readonly port: number;
  readonly backends: readonly string[];
}

/** vipd's TcpProxy as the daemon builds it (same schema defaults, the daemon's logger, to stderr). */
async function childVipd(o: BalancerChildOptions): Promise<void> {
  const proxy = proxySchema.parse({
    frontends: [
      { name: 'http', bind: `${o.bind}:${o.port}`, backends: o.backends.map((a, i) => ({ name: `b${i + 1}`, address: a, port: HTTP_PORT })), healthCheck: { type: 'tcp' } },
      { name: 'bulk', bind: `${o.bind}:${o.port + 1}`, backends: [{ name: 'sink', address: o.backends[0] as string, port: BULK_PORT }], healthCheck: { type: 'tcp' } },
    ],
  });
  const log = createLogger({ level: 'warn', destination: pino.destination({ dest: 2, sync: true }) });
  const p = new TcpProxy({ proxy, peers: [] }, { log });
  await p.start();
  serveRequests({}, () => p.destroy());
  emit({ event: 'ready' });
}

/** What a first Node proxy looks like: pipe both ways, destroy both on close (no half-close). */
function childPipe(o: BalancerChildOptions): void {
  let next = 0;
  const servers: net.Server[] = [];
  const serve = (port: number, targets: readonly string[], targetPort: number) => {
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: targets[next++ % targets.length] as string, port: targetPort });
      client.pipe(upstream).pipe(client);
      const kill = () => { client.destroy(); upstream.destroy(); };
      client.on('error', kill).on('close', kill);
      upstream.on('error', kill).on('close', kill);
    });
    server.listen({ host: o.bind, port, backlog: 4096 });
    servers.push(server);
  };
  serve(o.port, o.backends, HTTP_PORT);
  serve(o.port + 1, o.backends.slice(0, 1), BULK_PORT);
  serveRequests({}, () => { for (const s of servers) s.close(); });
  emit({ event: 'ready' });
}

/** The bulk sink: counts a stream's bytes and times them, first byte to FIN; one event per stream. */
function childSink(o: { host: string }): void {
  const server = net.createServer((s) => {
    let bytes = 0;
    let first = 0;
    s.on('data', (c: Buffer) => {
      if (bytes === 0) first = performance.now();
      bytes += c.length;
    });
    s.on('end', () => {
      emit({ event: 'bulk', bytes, ms: performance.now() - first });
      s.destroy();
    });
    s.on('error', () => undefined);
  });
  server.listen(BULK_PORT, o.host, () => emit({ event: 'ready' }));
  serveRequests({}, () => server.close());
}

/** The client agent: readiness probes, the bulk source, and the idle connections. */
function childClient(): void {
  const held = new Set<net.Socket>();
  const noop = () => undefined;
  const block = Buffer.alloc(1 << 20, 7);

  /** One HTTP request; true when answered 200 within a second. */
  const probe = (host: string, port: number) => new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    let reply = '';
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('close', () => done(false));
    s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c: Buffer) => {
      reply += c.toString();
      if (reply.includes('\r\n\r\n')) done(reply.startsWith('HTTP/1.1 200'));
    });
  });

  /** Writes 1 MiB blocks for `seconds` (the loop ends at the deadline), then FIN and wait for close. */
  const send = async (host: string, port: number, seconds: number) => {
    const s = net.connect({ host, port });
    s.on('error', noop); // once() below still rejects on an error while it waits
    await once(s, 'connect');
    const deadline = performance.now() + seconds * 1000;
    let bytes = 0;
    while (performance.now() < deadline) {
      bytes += block.length;
      if (!s.write(block)) await once(s, 'drain');
    }
    s.end();
    if (!s.destroyed) await once(s, 'close');
    return { bytes };
  };

  /** Opens `n` connections, IDLE_CONCURRENCY at a time, each given 5 s to connect; keeps them. */
  const open = async (host: string, port: number, n: number) => {
    let started = 0;
    let failed = 0;
    const one = async () => {
      const s = net.connect({ host, port });
      s.on('error', noop);
      s.setTimeout(5000, () => s.destroy(new Error('connect timeout')));
      try {
        await once(s, 'connect');
        s.setTimeout(0);
        held.add(s);
        s.on('close', () => held.delete(s));
      } catch {
        failed += 1;
        s.destroy();
      }
    };
    const worker = async () => {
      while (started < n) {
        started += 1;
        await one();
      }
    };
    await Promise.all(Array.from({ length: Math.min(IDLE_CONCURRENCY, n) }, worker));
    return { held: held.size, failed };
  };

  serveRequests({
    probe: (r) => probe(r.host as string, r.port as number),
    send: (r) => send(r.host as string, r.port as number, r.seconds as number),
    open: (r) => open(r.host as string, r.port as number, r.n as number),
    held: () => held.size,
    close: () => {
      const n = held.size;
      for (const s of held) s.destroy();
      held.clear();
      return n;
    },
  }, () => { for (const s of held) s.destroy(); });
  emit({ event: 'ready' });
}

async function runChild(kind: string, json: string): Promise<void> {
  const o = JSON.parse(json) as Record<string, unknown>;
  if (kind === 'vipd') return childVipd(o as unknown as BalancerChildOptions);
  if (kind === 'pipe') return childPipe(o as unknown as BalancerChildOptions);
  if (kind === 'sink') return childSink(o as { host: string });
  if (kind === 'client') return childClient();
  throw new Error(`unknown child ${kind}`);
}

// === the driver ================================================================================

/**
 * Every process the driver starts, inside a namespace. It owns them: stopAll() in the driver's
 * finally, killAll() on SIGINT/SIGTERM (the Lab deletes the namespaces on its own hooks).
 */
class Processes {
  private readonly live = new Set<ChildProcessWithoutNullStreams>();

  /** `nofile`: the descriptor limit (soft = hard) every child gets. */
  constructor(private readonly nofile: number) {}

  spawn(ns: string, cmd: string, args: readonly string[]): ChildProcessWithoutNullStreams {
    const child = spawn('ip', ['netns', 'exec', ns, 'setpriv', '--pdeathsig', 'KILL',
      'prlimit', `--nofile=${this.nofile}:${this.nofile}`, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    return child;
  }

  /** A Node child of this script, speaking JSON lines; resolves once it says it is ready. */
  async node(ns: string, kind: string, o: Record<string, unknown> = {}): Promise<{ agent: NsProcess; pid: number }> {
    const child = this.spawn(ns, process.execPath, [__filename, '--child', kind, JSON.stringify(o)]);
    const agent = new NsProcess(child, ns);
    child.once('exit', (code, signal) => {
      if (agent.stderrText.length > 0 && code !== 0) process.stderr.write(`  (${kind} in ${ns} exited ${code ?? signal}: ${agent.stderrText.slice(-5).join(' | ')})\n`);
    });
    await agent.event((e) => e.event === 'ready', `${kind} ready`, 15_000);
    return { agent, pid: child.pid as number };
  }

  /** HAProxy in the foreground (-db: no master process, so the child's pid is the one serving). */
  haproxy(ns: string, cfg: string): ChildProcessWithoutNullStreams {
    const child = this.spawn(ns, 'haproxy', ['-db', '-f', cfg]);
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-2000); });
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') process.stderr.write(`  (haproxy in ${ns} exited ${code ?? signal}: ${stderr.trim()})\n`);
    });
    return child;
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. */
  async stop(child: ChildProcessWithoutNullStreams): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  stopAll(): Promise<void[]> {
    return Promise.all([...this.live].map((c) => this.stop(c)));
  }

  /** For a signal: nothing asynchronous will run any more. */
  killAll(): void {
    for (const c of this.live) c.kill('SIGKILL');
  }
}

/**
 * NOFILE when this process may raise its hard limit (CAP_SYS_RESOURCE); otherwise the hard limit it
 * has, which a container may set below what 10,000 relayed connections need.
 */
async function descriptorLimit(): Promise<number> {
  try {
    await command('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, 'true']);
    return NOFILE;
  } catch {
    const hard = Number((await command('sh', ['-c', 'ulimit -Hn'])).trim());
    return Number.isFinite(hard) ? Math.min(hard, NOFILE) : NOFILE;
  }
}

/** A command, bounded in time and output; rejects on a non-zero exit. */
function command(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** ESTABLISHED TCP connections in `ns` with local port `port` (the kernel's count, via ss). */
async function established(ns: string, port: number): Promise<number> {
  const out = await command('ip', ['netns', 'exec', ns, 'ss', '-Htn', 'state', 'established', 'sport', '=', `:${port}`]);
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

async function listening(ns: string, port: number): Promise<boolean> {
  const out = await command('ip', ['netns', 'exec', ns, 'ss', '-Htln', 'sport', '=', `:${port}`]);
  return out.trim() !== '';
}

/** VmRSS in KiB, after checking the pid is the process we mean (not `ip`, `setpriv` or `prlimit`). */
function rssKiB(pid: number, comm: string): number {
  const actual = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  if (actual !== comm) throw new Error(`pid ${pid} is "${actual}", not ${comm}: measuring the wrong process`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** CPU time (user + system, every thread) a process has used, in clock ticks (100 Hz on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
  return Number(fields[11]) + Number(fields[12]); // utime, stime: the 14th and 15th
}

/** Busy and total jiffies of the whole machine (every core), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - (cpu[3] ?? 0) - (cpu[4] ?? 0), total }; // idle and iowait are not busy
}

interface WrkResult {
  readonly rate: number;
  readonly errors: string | undefined;
  /** Latency percentiles in µs: 50, 75, 90, 99. */
  readonly latencyUs: ReadonlyMap<number, number>;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000 };

/** wrk in the client namespace, killed if it overruns its duration by 15 s. */
async function wrk(procs: Processes, ns: string, url: string, seconds: number, extra: readonly string[]): Promise<WrkResult> {
  const child = procs.spawn(ns, 'wrk', ['-t', '1', '-d', `${seconds}s`, ...extra, url]);
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 15) * 1000);
  await once(child, 'exit');
  clearTimeout(timer);
  const latencyUs = new Map<number, number>();
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$/gm)) {
    latencyUs.set(Number(m[1]), Number(m[2]) * (UNIT_US[m[3] as string] ?? NaN));
  }
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rate === undefined) throw new Error(`wrk ${url} printed no rate:\n${out}`);
  return { rate: Number(rate), errors: /Socket errors:.*|Non-2xx.*/.exec(out)?.[0]?.trim(), latencyUs };
}

/**
 * HAProxy's maxconn: 20,000, or less when the descriptor limit is lower, since HAProxy refuses to start
 * when it cannot raise its limit to 2 x maxconn (+ a few) descriptors.
 */
function haproxyMaxconn(nofile: number): number {
  return Math.min(20_000, Math.floor((nofile - FD_MARGIN / 2) / 2));
}

function haproxyBackendConfig(ip: string, maxconn: number): string {
  // Timeouts of minutes: the idle connections must outlive their measurement.
  return `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode http
  maxconn ${maxconn}
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend be
  bind ${ip}:${HTTP_PORT}
  http-request return status 200 content-type text/plain string ok
`;
}

/** HAProxy as the kubeadm HA guide runs it in front of apiservers, on one thread, plus a bulk frontend. */
function haproxyBalancerConfig(bind: string, backends: readonly string[], maxconn: number): string {
  const port = BALANCER_PORTS.haproxy;
  return `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode tcp
  maxconn ${maxconn}
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  retries 3
  option redispatch
frontend http
  bind ${bind}:${port}
  default_backend apiservers
backend apiservers
  balance roundrobin
${backends.map((a, i) => `  server b${i + 1} ${a}:${HTTP_PORT} check inter 2s`).join('\n')}
frontend bulk
  bind ${bind}:${port + 1}
  default_backend sink
backend sink
  server sink ${backends[0] as string}:${BULK_PORT}
`;
}

type Target = 'direct' | BalancerKind;

/** Where the client sends for a target, and the balancer process (none for direct). */
interface Endpoint {
  readonly name: Target;
  readonly ip: string;
  readonly port: number;
  readonly bulkPort: number;
  readonly pid?: number;
}

interface IdleFigures {
  readonly connections: number;
  readonly rssBeforeKiB: number;
  readonly rssAfterKiB: number;
  readonly kibPerConn: number;
}

/** Every round's sample of every figure for one target. */
class Samples {
  readonly keepAlive: number[] = [];
  readonly newConn: number[] = [];
  readonly bulkGbit: number[] = [];
  readonly latencyRate: number[] = [];
  /** Percentile -> absolute latency (µs), per round. */
  readonly latency = new Map<number, number[]>();
  /** Percentile -> this target's latency minus direct's in the same round (µs). */
  readonly added = new Map<number, number[]>();
  /** Balancer CPU ticks and requests served, summed over rounds, per saturating run kind. */
  readonly cpu = { ka: { ticks: 0, requests: 0 }, nc: { ticks: 0, requests: 0 } };
  readonly busy = { ka: [] as number[], nc: [] as number[] };
  /** The balancer's CPU during the bulk streams, as a share of one core, per round. */
  readonly bulkCore: number[] = [];
  idle: IdleFigures | undefined;
}

const PERCENTILES = [50, 75, 90, 99] as const;

function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key) ?? [];
  list.push(value);
  map.set(key, list);
}

type Say = (line: string) => void;

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const i = process.argv.indexOf('--child');
    return runChild(process.argv[i + 1] ?? '', process.argv[i + 2] ?? '{}');
  }
  const o = options();
  const t0 = Date.now();
  const out: Say = (line) => process.stdout.write(`${line}\n`);
  const say: Say = (line) => out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  for (const [cmd, arg] of [['haproxy', '-v'], ['wrk', '-v'], ['ss', '-V'], ['setpriv', '--version'], ['prlimit', '--version']] as const) {
    // wrk -v prints its version and exits 1, so only a missing binary counts.
    await command(cmd, [arg]).catch((err: Error) => { if (/ENOENT/.test(err.message)) throw new Error(`${cmd} not found: apt-get install ${cmd === 'ss' ? 'iproute2' : cmd === 'setpriv' || cmd === 'prlimit' ? 'util-linux' : cmd}`); });
  }

  const nofile = await descriptorLimit();
  // A balancer holds two sockets per relayed connection, plus its listeners, checks and Node's own.
  const idle = Math.min(o.idle, Math.floor((nofile - FD_MARGIN) / 2));
  if (idle < o.idle) say(`descriptor limit ${nofile} (no CAP_SYS_RESOURCE to raise it): ${idle} idle connections instead of ${o.idle}`);

  const lab = new Lab('vipd-bench');
  const procs = new Processes(nofile);
  const dir = mkdtempSync(join(tmpdir(), 'vipd-bench-proxy-'));
  // On a signal the Lab deletes its namespaces and re-raises it; the finally below never runs.
  const onSignal = () => { procs.killAll(); rmSync(dir, { recursive: true, force: true }); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const delayMs = Math.max(1, Math.round((LATENCY_CONNECTIONS * 1000) / o.latencyRate));
  const delayScript = join(dir, 'delay.lua');
  // wrk waits delay() ms before each next request on a connection: a fixed, unsaturated rate.
  writeFileSync(delayScript, `function delay()\n  return ${delayMs}\nend\n`);
  const kinds: BalancerKind[] = o.pipe ? ['haproxy', 'vipd', 'pipe'] : ['haproxy', 'vipd'];
  const results = new Map<Target, Samples>();
  try {
    const hosts = await lab.lan(HOSTS);
    const host = (h: HostName) => hosts.get(h) as LanHost;
    const backendIps = BACKEND_HOSTS.map((b) => host(b).ip);
    const lb = host('lb');
    const client = host('client');
    say(`lab ${lab.id}: client ${client.ip}, lb ${lb.ip}, backends ${backendIps.join(', ')} (HAProxy HTTP on :${HTTP_PORT}; bulk sink on ${backendIps[0]}:${BULK_PORT})`);

    // --- backends, the client agent, and every balancer (idle until its turn) ---
    for (const b of BACKEND_HOSTS) {
      const cfg = join(dir, `${b}.cfg`);
      writeFileSync(cfg, haproxyBackendConfig(host(b).ip, haproxyMaxconn(nofile)));
      procs.haproxy(host(b).ns, cfg);
    }
    const sink = (await procs.node(host('b1').ns, 'sink', { host: host('b1').ip })).agent;
    const agent = (await procs.node(client.ns, 'client')).agent;
    for (const b of BACKEND_HOSTS) await waitFor(`backend ${b} listening`, () => listening(host(b).ns, HTTP_PORT).then((ok) => ok || undefined), { timeoutMs: 5000, everyMs: 100 });

    const endpoints: Endpoint[] = [{ name: 'direct', ip: backendIps[0] as string, port: HTTP_PORT, bulkPort: BULK_PORT }];
    const comm = new Map<Target, string>();
    for (const kind of kinds) {
      const port = BALANCER_PORTS[kind];
      let pid: number;
      if (kind === 'haproxy') {
        const cfg = join(dir, 'balancer.cfg');
        writeFileSync(cfg, haproxyBalancerConfig(lb.ip, backendIps, haproxyMaxconn(nofile)));
        pid = procs.haproxy(lb.ns, cfg).pid as number;
        comm.set(kind, 'haproxy');
      } else {
        pid = (await procs.node(lb.ns, kind, { bind: lb.ip, port, backends: backendIps })).pid;
        comm.set(kind, 'node');
      }
      endpoints.push({ name: kind, ip: lb.ip, port, bulkPort: port + 1, pid });
    }
    for (const e of endpoints) results.set(e.name, new Samples());

    /** True once a request to every backend (by roundrobin) through ip:port succeeds. */
    const serving = (ip: string, port: number) => waitFor(`${ip}:${port} serving`, async () => {
      for (let i = 0; i < BACKEND_HOSTS.length; i++) if (await agent.request('probe', { host: ip, port }) !== true) return undefined;
      return true;
    }, { timeoutMs: 6000, everyMs: 200 });
    for (const e of endpoints) {
      await serving(e.ip, e.port);
      if (e.pid !== undefined) say(`${e.name} on ${e.ip}:${e.port}, pid ${e.pid} (${readlinkSync(`/proc/${e.pid}/exe`)})`);
    }

    const backendConnections = async () => {
      let n = 0;
      for (const b of BACKEND_HOSTS) n += await established(host(b).ns, HTTP_PORT);
      return n;
    };

    // --- idle memory: first, while every balancer is fresh (no traffic has grown its heap) ---
    const idleMemory = async (e: Endpoint): Promise<IdleFigures> => {
      const pid = e.pid as number;
      const name = comm.get(e.name) as string;
      const base = await backendConnections();
      const rssBeforeKiB = rssKiB(pid, name);
      const opened = await agent.request<{ held: number; failed: number }>('open', { host: e.ip, port: e.port, n: idle }, 120_000);
      if (opened.failed > 0) say(`  ${e.name}: ${opened.failed} of ${idle} connects failed`);
      // A connect completes in the balancer's kernel; only the backends' count shows it relayed them.
      const relayed = await waitFor(`${idle} idle connections at the backends`, async () => {
        const n = (await backendConnections()) - base;
        return n >= opened.held ? n : undefined;
      }, { timeoutMs: 30_000, everyMs: 500 }).catch(async () => (await backendConnections()) - base);
      await sleep(2000); // settle: allocations finished, nothing in flight
      const rssAfterKiB = rssKiB(pid, name);
      const connections = Math.min(await agent.request<number>('held'), relayed);
      if (connections < idle) say(`  ${e.name}: only ${connections} of ${idle} connections held end to end`);
      await agent.request('close');
      await waitFor('idle connections gone from the backends', async () => ((await backendConnections()) <= base ? true : undefined), { timeoutMs: 20_000, everyMs: 200 })
        .catch(() => say(`  ${e.name}: backends still hold connections after close`));
      const kibPerConn = (rssAfterKiB - rssBeforeKiB) / connections;
      say(`idle ${e.name}: ${connections} connections end to end, VmRSS ${rssBeforeKiB} -> ${rssAfterKiB} KiB: ${kibPerConn.toFixed(2)} KiB each`);
      return { connections, rssBeforeKiB, rssAfterKiB, kibPerConn };
    };
    await sleep(1000); // let the balancers finish starting (first health checks, lazy initialisation)
    for (const e of endpoints) {
      if (e.pid !== undefined) (results.get(e.name) as Samples).idle = await idleMemory(e);
    }

    // --- traffic, interleaved: each figure for every target back to back, in rounds ---
    // The machine's speed drifts by tens of percent over a minute (shared host), so targets are
    // compared within seconds of each other, the starting target rotates, and medians are kept.
    const url = (e: Endpoint) => `http://${e.ip}:${e.port}/`;
    const saturating = async (e: Endpoint, extra: readonly string[], kind: 'ka' | 'nc'): Promise<number> => {
      const cpu0 = e.pid === undefined ? 0 : cpuTicks(e.pid);
      const m0 = machineTicks();
      const r = await wrk(procs, client.ns, url(e), o.seconds, ['-c', String(o.connections), ...extra]);
      const m1 = machineTicks();
      if (r.errors !== undefined) say(`  ${e.name} ${kind}: ${r.errors}`);
      const samples = results.get(e.name) as Samples;
      if (e.pid !== undefined) {
        samples.cpu[kind].ticks += cpuTicks(e.pid) - cpu0;
        samples.cpu[kind].requests += r.rate * o.seconds;
      }
      samples.busy[kind].push((m1.busy - m0.busy) / (m1.total - m0.total));
      return r.rate;
    };
    /** One stream for --bulk-seconds; Gbit/s as the sink timed it. */
    const bulk = async (e: Endpoint): Promise<number> => {
      const seen = sink.events.length;
      const cpu0 = e.pid === undefined ? 0 : cpuTicks(e.pid);
      const start = performance.now();
      const sent = await agent.request<{ bytes: number }>('send', { host: e.ip, port: e.bulkPort, seconds: o.bulkSeconds }, (o.bulkSeconds + 30) * 1000);
      // Is the balancer the bottleneck? Near 100% of a core means it is (one thread relays).
      if (e.pid !== undefined) (results.get(e.name) as Samples).bulkCore.push(((cpuTicks(e.pid) - cpu0) * 10) / (performance.now() - start));
      // vipd's TCP health checks of the sink connect and close: streams of 0 bytes, skipped.
      const got = await waitFor('the sink to report', () => sink.events.slice(seen).find((m: AgentMessage) => m.event === 'bulk' && (m.bytes as number) > 0), { timeoutMs: 10_000, everyMs: 100 });
      const bytes = got.bytes as number;
      // The naive pipe proxy destroys its upstream on the client's close and may cut the tail.
      if (bytes !== sent.bytes) say(`  ${e.name} bulk: sink got ${bytes} of ${sent.bytes} bytes sent`);
      return (bytes * 8) / ((got.ms as number) * 1e6);
    };
    const row = (values: ReadonlyMap<Target, number>, digits: number) => [...values].map(([t, v]) => `${t} ${v.toFixed(digits)}`).join(', ');

    for (let round = 0; round < o.rounds; round++) {
      const order = endpoints.map((_, i) => endpoints[(i + round) % endpoints.length] as Endpoint);
      const tag = `round ${round + 1}/${o.rounds}`;
      const ka = new Map<Target, number>();
      for (const e of order) ka.set(e.name, await saturating(e, [], 'ka'));
      say(`${tag} keep-alive req/s: ${row(ka, 0)}`);
      const nc = new Map<Target, number>();
      for (const e of order) nc.set(e.name, await saturating(e, ['-H', 'Connection: close'], 'nc'));
      say(`${tag} new-conn req/s: ${row(nc, 0)}`);
      const lat = new Map<Target, WrkResult>();
      for (const e of order) lat.set(e.name, await wrk(procs, client.ns, url(e), o.latencySeconds, ['-c', String(LATENCY_CONNECTIONS), '--latency', '-s', delayScript]));
      say(`${tag} latency p50/p99 µs at ~${o.latencyRate} req/s: ${[...lat].map(([t, r]) => `${t} ${fmtUs(r.latencyUs.get(50))}/${fmtUs(r.latencyUs.get(99))}`).join(', ')}`);
      const gbit = new Map<Target, number>();
      for (const e of order) gbit.set(e.name, await bulk(e));
      say(`${tag} bulk Gbit/s: ${row(gbit, 2)}`);

      const direct = lat.get('direct');
      for (const e of endpoints) {
        const s = results.get(e.name) as Samples;
        s.keepAlive.push(ka.get(e.name) as number);
        s.newConn.push(nc.get(e.name) as number);
        s.bulkGbit.push(gbit.get(e.name) as number);
        const l = lat.get(e.name) as WrkResult;
        s.latencyRate.push(l.rate);
        for (const p of PERCENTILES) {
          const v = l.latencyUs.get(p) ?? NaN;
          push(s.latency, p, v);
          // Paired with direct's run of the same round, seconds apart.
          push(s.added, p, v - (direct?.latencyUs.get(p) ?? NaN));
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await procs.stopAll();
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  report(out, o, results, delayMs, idle);
  say('done');
}

function fmtNum(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function fmtUs(us: number | undefined): string {
  return us === undefined || !Number.isFinite(us) ? '-' : us.toFixed(0);
}

/** "median (min-max)" of a figure's rounds. */
function spread(xs: readonly number[], digits: number): string {
  if (xs.length < 2) return fmtNum(median(xs), digits);
  return `${fmtNum(median(xs), digits)} (${fmtNum(Math.min(...xs), digits)}-${fmtNum(Math.max(...xs), digits)})`;
}

function report(out: Say, o: Options, results: ReadonlyMap<Target, Samples>, delayMs: number, idle: number): void {
  const targets = [...results.keys()];
  out('');
  out(`=== raw figures, median (min-max) of ${o.rounds} rounds: wrk -t1 -c${o.connections} -d${o.seconds}s; `
    + `latency wrk -c${LATENCY_CONNECTIONS} -d${o.latencySeconds}s, ${delayMs} ms between requests per connection; bulk one stream ${o.bulkSeconds}s`);
  out(`${'target'.padEnd(8)}${'keep-alive req/s'.padStart(24)}${'new-conn req/s'.padStart(22)}${'bulk Gbit/s'.padStart(20)}${'lat req/s'.padStart(10)}`
    + `${PERCENTILES.map((p) => `p${p} µs`.padStart(8)).join('')}`);
  for (const t of targets) {
    const s = results.get(t) as Samples;
    out(`${t.padEnd(8)}${spread(s.keepAlive, 0).padStart(24)}${spread(s.newConn, 0).padStart(22)}${spread(s.bulkGbit, 2).padStart(20)}`
      + `${fmtNum(median(s.latencyRate), 0).padStart(10)}${PERCENTILES.map((p) => fmtUs(median(s.latency.get(p) ?? [])).padStart(8)).join('')}`);
  }
  // On two cores, wrk, three backends and the balancer share the CPUs (see "machine busy"), so a
  // rate is also a share of the machine; the balancer's CPU per request (user + system, including
  // the kernel's TCP work done in its syscalls) is the figure that shows its cost by itself.
  out('');
  out(`${'target'.padEnd(8)}${'CPU µs/req keep-alive'.padStart(23)}${'new-conn'.padStart(10)}${'CPU in bulk'.padStart(13)}`
    + `${'machine busy keep-alive'.padStart(25)}${'new-conn'.padStart(10)}${`VmRSS KiB before -> with ${idle} idle`.padStart(36)}`);
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '-');
  const perReq = (c: { ticks: number; requests: number }) => (c.requests > 0 ? (c.ticks * 10_000) / c.requests : NaN); // 100 Hz ticks
  for (const t of targets) {
    const s = results.get(t) as Samples;
    out(`${t.padEnd(8)}${fmtNum(perReq(s.cpu.ka), 1).padStart(23)}${fmtNum(perReq(s.cpu.nc), 1).padStart(10)}${pct(median(s.bulkCore)).padStart(13)}`
      + `${pct(median(s.busy.ka)).padStart(25)}${pct(median(s.busy.nc)).padStart(10)}`
      + `${(s.idle === undefined ? '-' : `${s.idle.rssBeforeKiB} -> ${s.idle.rssAfterKiB}`).padStart(36)}`);
  }

  interface Row { name: string; higherBetter: boolean; get: (s: Samples | undefined) => number; digits: number }
  const rows: Row[] = [
    { name: 'keep-alive req/s', higherBetter: true, get: (s) => median(s?.keepAlive ?? []), digits: 0 },
    { name: 'new connections/s', higherBetter: true, get: (s) => median(s?.newConn ?? []), digits: 0 },
    { name: 'bulk Gbit/s (one stream)', higherBetter: true, get: (s) => median(s?.bulkGbit ?? []), digits: 2 },
    { name: 'p50 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(50) ?? []), digits: 0 },
    { name: 'p99 added latency µs', higherBetter: false, get: (s) => median(s?.added.get(99) ?? []), digits: 0 },
    { name: `KiB per idle conn (${idle})`, higherBetter: false, get: (s) => s?.idle?.kibPerConn ?? NaN, digits: 2 },
  ];
  const h = results.get('haproxy');
  const v = results.get('vipd');
  const p = results.get('pipe');
  out('');
  out(`=== vipd vs HAProxy 2.6 (mode tcp, nbthread 1): same namespaces, same backends, one run (medians of ${o.rounds} rounds)`);
  out(`${'figure'.padEnd(28)}${'better'.padStart(8)}${'HAProxy'.padStart(10)}${'vipd'.padStart(10)}${'vipd ratio*'.padStart(13)}${p === undefined ? '' : 'node pipe'.padStart(11)}`);
  for (const r of rows) {
    const hv = r.get(h);
    const vv = r.get(v);
    // Oriented so that >= 1.0 means vipd is at least as good: vipd/HAProxy when higher is better,
    // HAProxy/vipd when lower is better (latency, memory). n/a when a value is not positive.
    const ratio = hv > 0 && vv > 0 ? (r.higherBetter ? vv / hv : hv / vv) : NaN;
    out(`${r.name.padEnd(28)}${(r.higherBetter ? 'higher' : 'lower').padStart(8)}${fmtNum(hv, r.digits).padStart(10)}${fmtNum(vv, r.digits).padStart(10)}`
      + `${(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a').padStart(13)}${p === undefined ? '' : fmtNum(r.get(p), r.digits).padStart(11)}`);
  }
  out('* vipd ratio >= 1.00x: vipd at least as good as HAProxy. Higher-is-better rows: vipd/HAProxy; lower-is-better');
  out('  rows (latency, memory): HAProxy/vipd. Added latency: through-balancer minus direct, same round, per percentile.');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
