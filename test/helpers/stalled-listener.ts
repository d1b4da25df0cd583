/**
 * A backend whose connects hang, on loopback: a listening socket in a child process that is
 * SIGSTOPped, its accept queue filled by connections of our own. Linux then drops further SYNs to
 * it (a full accept queue drops the SYN, with or without syncookies), so a connect neither
 * completes nor fails, as with a blackholed host, until resume() lets the child accept again; the
 * SYN retransmitted a second after the first then gets through.
 *
 * Once accepting, the child answers every connection with "<name>\n" and closes it. close() kills
 * the child and closes our queue fillers; it is idempotent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { programCommand } from './agent-loop';

/** At most this many queue fillers: the accept queue of a backlog-1 listener holds two. */
const MAX_FILLERS = 16;
/** A filler's connect that takes longer than this means the queue is full. */
const FULL_AFTER_MS = 200;

/** The child: a listener with a backlog of one that prints its port. */
const CHILD = join(__dirname, 'backlog-listener.js');

export class StalledListener {
  port = 0;
  private readonly child: ChildProcess;
  private readonly fillers: net.Socket[] = [];
  private closed = false;

  private constructor(
    readonly host: string,
    readonly name: string,
  ) {
    const [cmd, ...args] = programCommand(CHILD, [host, name]);
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  }

  static async start(host: string, name: string): Promise<StalledListener> {
    const stalled = new StalledListener(host, name);
    try {
      stalled.port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the stalled listener did not start')), 10_000);
        stalled.child.stdout?.once('data', (d: Buffer) => {
          clearTimeout(timer);
          resolve(Number(String(d).trim()));
        });
      });
      stalled.child.kill('SIGSTOP');
      for (let i = 0; i < MAX_FILLERS; i++) {
        if (!(await stalled.fill())) return stalled;
      }
      throw new Error(`the accept queue of ${host}:${stalled.port} did not fill up`);
    } catch (err) {
      stalled.close();
      throw err;
    }
  }

  /** Lets the child accept again: hanging connects complete at their next SYN retransmission. */
  resume(): void {
    this.child.kill('SIGCONT');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child.kill('SIGKILL');
    for (const s of this.fillers) s.destroy();
  }

  /** One more connection into the queue; false when it did not complete (the queue is full). */
  private fill(): Promise<boolean> {
    const socket = net.connect({ host: this.host, port: this.port });
    socket.on('error', () => undefined);
    this.fillers.push(socket);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), FULL_AFTER_MS);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
