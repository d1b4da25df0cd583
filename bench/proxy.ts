/**
 * vipd's TCP balancer against HAProxy 2.6 (TCP mode, one thread) and a naive `socket.pipe` proxy,
 * on loopback, with the same three backends.
 *
 *   npx tsc -p . && node dist/bench/proxy.js [--duration 5] [--connections 50] [--bulk-mib 2048]
 *
 * Backends are a second HAProxy answering HTTP itself (`http-request return`), so the backends
 * cost as little CPU as possible and the balancer is what is measured. Each balancer runs in its
 * own process. Measured:
 * - keep-alive: wrk, one connection reused for many requests (bytes relayed, no new connections);
 * - new connection per request: wrk with "Connection: close" (the accept+connect path, where Node
 *   trails HAProxy most);
 * - bulk: one TCP stream of --bulk-mib MiB from a Node source through the balancer to a Node sink.
 * Needs `haproxy` and `wrk` on PATH, and 127.0.0.20-23 (any Linux loopback has them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { proxySchema } from '../src/config/schema';
import { TcpProxy } from '../src/proxy/proxy';

const FRONT = '127.0.0.20';
const BACKENDS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'];
const HTTP_PORT = 18080;
const BULK_PORT = 18081;
const PORTS = { direct: HTTP_PORT, haproxy: 16443, vipd: 26443, pipe: 36443 } as const;
const BULK_OFFSET = 1;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

// --- the balancers under test, each run as `node bench/proxy.js --child <kind>` ---------------

async function runVipd(): Promise<void> {
  const proxy = proxySchema.parse({
    frontends: [
      { name: 'http', bind: `${FRONT}:${PORTS.vipd}`, backends: BACKENDS.map((a, i) => ({ name: `b${i + 1}`, address: a, port: HTTP_PORT })), healthCheck: { type: 'tcp' } },
      { name: 'bulk', bind: `${FRONT}:${PORTS.vipd + BULK_OFFSET}`, backends: [{ name: 'sink', address: BACKENDS[0] as string, port: BULK_PORT }], healthCheck: { type: 'tcp' } },
    ],
  });
  const p = new TcpProxy({ proxy, peers: [] }, { log: pino({ level: 'warn' }) });
  await p.start();
  process.stdout.write('ready\n');
}

/** What a first Node proxy looks like: pipe both ways, destroy both on close. */
function runPipe(): void {
  let next = 0;
  const serve = (port: number, targets: { host: string; port: number }[]) => {
    net.createServer((client) => {
      const target = targets[next++ % targets.length] as { host: string; port: number };
      const upstream = net.connect(target);
      client.pipe(upstream).pipe(client);
      const kill = () => { client.destroy(); upstream.destroy(); };
      client.on('error', kill).on('close', kill);
      upstream.on('error', kill).on('close', kill);
    }).listen(port, FRONT);
  };
  serve(PORTS.pipe, BACKENDS.map((host) => ({ host, port: HTTP_PORT })));
  serve(PORTS.pipe + BULK_OFFSET, [{ host: BACKENDS[0] as string, port: BULK_PORT }]);
  process.stdout.write('ready\n');
}

/** A bulk sink: reads and drops everything, then reports the count. */
function runSink(): void {
  net.createServer((s) => {
    let n = 0;
    s.on('data', (c: Buffer) => { n += c.length; });
    s.on('end', () => s.end(`${n}\n`));
    s.on('error', () => undefined);
  }).listen(BULK_PORT, BACKENDS[0]);
  process.stdout.write('ready\n');
}

// --- the driver -------------------------------------------------------------------------------

const children: ChildProcess[] = [];

async function start(cmd: string, args: string[], readyLine: boolean): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  if (readyLine) {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (c: Buffer) => { if (c.toString().includes('ready')) resolve(); });
      child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}`)));
    });
  } else {
    await new Promise((r) => setTimeout(r, 500));
    if (child.exitCode !== null) throw new Error(`${cmd} exited with ${child.exitCode}`);
  }
  return child;
}

function haproxyConfigs(dir: string): { backends: string; balancer: string } {
  const global = 'global\n  nbthread 1\n  maxconn 8000\n\ndefaults\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n';
  const backends = `${global}  mode http\n${BACKENDS.map((a, i) => `\nfrontend be${i}\n  bind ${a}:${HTTP_PORT}\n  http-request return status 200 content-type text/plain string ok\n`).join('')}`;
  const balancer = `${global}  mode tcp\n  retries 3\n  option redispatch\n
frontend http
  bind ${FRONT}:${PORTS.haproxy}
  default_backend apiservers
backend apiservers
  balance roundrobin
${BACKENDS.map((a, i) => `  server b${i + 1} ${a}:${HTTP_PORT} check inter 2s`).join('\n')}

frontend bulk
  bind ${FRONT}:${PORTS.haproxy + BULK_OFFSET}
  default_backend sink
backend sink
  server sink ${BACKENDS[0]}:${BULK_PORT}
`;
  const b = join(dir, 'backends.cfg');
  const l = join(dir, 'balancer.cfg');
  writeFileSync(b, backends);
  writeFileSync(l, balancer);
  return { backends: b, balancer: l };
}

async function wrk(port: number, seconds: number, connections: number, close: boolean): Promise<number> {
  const args = ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, ...(close ? ['-H', 'Connection: close'] : []), `http://${port === HTTP_PORT ? BACKENDS[0] : FRONT}:${port}/`];
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  await once(child, 'exit');
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  const errors = /Socket errors:.*|Non-2xx.*/.exec(out)?.[0];
  if (errors !== undefined) process.stderr.write(`  (port ${port}: ${errors.trim()})\n`);
  return Number(rate ?? 0);
}

async function bulk(port: number, mib: number): Promise<number> {
  const block = Buffer.alloc(1 << 20, 7);
  const socket = net.connect({ host: FRONT, port });
  await once(socket, 'connect');
  const t0 = performance.now();
  let reply = '';
  socket.on('data', (c: Buffer) => { reply += c.toString(); });
  for (let i = 0; i < mib; i++) {
    if (!socket.write(block)) await once(socket, 'drain');
  }
  socket.end();
  await once(socket, 'close');
  const seconds = (performance.now() - t0) / 1000;
  if (Number(reply.trim()) !== mib * 1048576) throw new Error(`bulk through ${port}: sink got ${reply.trim()} bytes`);
  return (mib * 8 * 1.048576) / 1000 / seconds;
}

async function main(): Promise<void> {
  const kind = process.argv[process.argv.indexOf('--child') + 1];
  if (process.argv.includes('--child')) {
    if (kind === 'vipd') return runVipd();
    if (kind === 'pipe') return runPipe();
    if (kind === 'sink') return runSink();
    throw new Error(`unknown child ${kind}`);
  }
  const seconds = arg('duration', 5);
  const connections = arg('connections', 50);
  const bulkMib = arg('bulk-mib', 2048);
  const cfg = haproxyConfigs(mkdtempSync(join(tmpdir(), 'vipd-bench-')));
  const self = process.argv[1] as string;
  try {
    await start('haproxy', ['-f', cfg.backends], false);
    await start(process.execPath, [self, '--child', 'sink'], true);
    await start('haproxy', ['-f', cfg.balancer], false);
    await start(process.execPath, [self, '--child', 'vipd'], true);
    await start(process.execPath, [self, '--child', 'pipe'], true);
    await new Promise((r) => setTimeout(r, 500));
    const rows: [string, number | undefined][] = [['direct', PORTS.direct], ['haproxy', PORTS.haproxy], ['vipd', PORTS.vipd], ['node pipe', PORTS.pipe]]
      .map(([n, p]) => [n as string, p as number]);
    process.stdout.write(`wrk -t1 -c${connections} -d${seconds}s; bulk ${bulkMib} MiB, one stream\n`);
    process.stdout.write('balancer     keep-alive req/s   new-conn req/s   bulk Gbit/s\n');
    for (const [name, port] of rows) {
      if (port === undefined) continue;
      const ka = await wrk(port, seconds, connections, false);
      const nc = await wrk(port, seconds, connections, true);
      // The naive pipe proxy loses the sink's reply (no half-close), so its bulk run fails.
      const gbit = name === 'direct' ? NaN : await bulk(port + BULK_OFFSET, bulkMib).catch(() => NaN);
      process.stdout.write(`${name.padEnd(12)} ${ka.toFixed(0).padStart(17)}   ${nc.toFixed(0).padStart(14)}   ${Number.isNaN(gbit) ? '          -' : gbit.toFixed(2).padStart(11)}\n`);
    }
  } finally {
    for (const c of children.reverse()) c.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
