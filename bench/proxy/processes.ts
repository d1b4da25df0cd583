/**
 * Every process the bench starts inside a namespace, and the commands it runs to look around.
 * Each child is spawned as `ip netns exec NS setpriv --pdeathsig KILL prlimit --nofile=N:N
 * [taskset -c CPUS] CMD`: each of those execs in place, so the child's pid is CMD's (the pid whose
 * RSS is read); the death signal kills it if the driver dies without cleaning up; every child gets
 * the same descriptor limit; and a balancer is pinned to its CPUs, every thread of it (HAProxy's,
 * or vipd's relay threads with Node's and V8's).
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { NsProcess } from '../../src/lab/netns';
import { NOFILE } from './network';

/** The bench's child programs (children/*.ts). */
export type ChildKind = 'vipd' | 'pipe' | 'sink' | 'client';

/**
 * The driver owns them: stopAll() in the driver's finally, killAll() on SIGINT/SIGTERM (the Lab
 * deletes the namespaces on its own hooks).
 */
export class Processes {
  private readonly live = new Set<ChildProcessWithoutNullStreams>();

  /** `nofile`: the descriptor limit (soft = hard) every child gets. */
  constructor(private readonly nofile: number) {}

  /** `cpus`: a taskset -c list the process (every thread it starts) is pinned to; none: unpinned. */
  spawn(ns: string, cmd: string, args: readonly string[], cpus?: string): ChildProcessWithoutNullStreams {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'setpriv',
        '--pdeathsig',
        'KILL',
        'prlimit',
        `--nofile=${this.nofile}:${this.nofile}`,
        ...(cpus === undefined ? [] : ['taskset', '-c', cpus]),
        cmd,
        ...args,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    return child;
  }

  /** A child program of the bench, speaking JSON lines; resolves once it says it is ready. */
  async node(
    ns: string,
    kind: ChildKind,
    o: Record<string, unknown> = {},
    cpus?: string,
  ): Promise<{ agent: NsProcess; pid: number }> {
    const script = join(__dirname, 'children', `${kind}.js`);
    const child = this.spawn(ns, process.execPath, [script, JSON.stringify(o)], cpus);
    const agent = new NsProcess(child, ns);
    child.once('exit', (code, signal) => {
      if (agent.stderrText.length > 0 && code !== 0) {
        const last = agent.stderrText.slice(-5).join(' | ');
        process.stderr.write(`  (${kind} in ${ns} exited ${code ?? signal}: ${last})\n`);
      }
    });
    await agent.event((e) => e.event === 'ready', `${kind} ready`, 15_000);
    return { agent, pid: child.pid as number };
  }

  /** HAProxy in the foreground (-db: no master process, so the child's pid is the one serving). */
  haproxy(ns: string, cfg: string, cpus?: string): ChildProcessWithoutNullStreams {
    const child = this.spawn(ns, 'haproxy', ['-db', '-f', cfg], cpus);
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
        process.stderr.write(`  (haproxy in ${ns} exited ${code ?? signal}: ${stderr.trim()})\n`);
      }
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

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c)));
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
export async function descriptorLimit(): Promise<number> {
  try {
    await command('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, 'true']);
    return NOFILE;
  } catch {
    const hard = Number((await command('sh', ['-c', 'ulimit -Hn'])).trim());
    return Number.isFinite(hard) ? Math.min(hard, NOFILE) : NOFILE;
  }
}

/** A command, bounded in time and output; rejects on a non-zero exit. */
export function command(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** ESTABLISHED TCP connections in `ns` with local port `port` (the kernel's count, via ss). */
export async function established(ns: string, port: number): Promise<number> {
  const out = await command('ip', [
    'netns',
    'exec',
    ns,
    'ss',
    '-Htn',
    'state',
    'established',
    'sport',
    '=',
    `:${port}`,
  ]);
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

export async function listening(ns: string, port: number): Promise<boolean> {
  const out = await command('ip', ['netns', 'exec', ns, 'ss', '-Htln', 'sport', '=', `:${port}`]);
  return out.trim() !== '';
}
