/**
 * The lab's client: opens a TCP connection to the VIP every few milliseconds and reports each
 * outcome as a JSON line ({"t": wall-clock ms, "ok": bool}), so the lab can measure the outage a
 * client sees during a failover. Runs inside the client namespace; stops when stdin closes or
 * after `maxSeconds`.
 */
import net from 'node:net';
import { runUntilStdinCloses } from './program-args';

interface ConnectClientOptions {
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
}

function connectOnce(o: ConnectClientOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: o.host, port: o.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), o.timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

async function runConnectClient(
  o: ConnectClientOptions,
  report: (line: string) => void,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    const started = Date.now();
    const ok = await connectOnce(o);
    report(JSON.stringify({ t: started, ok }));
    const wait = o.intervalMs - (Date.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

if (require.main === module) {
  const [host = '', port = '6443', interval = '10', maxSeconds = '600'] = process.argv.slice(2);
  let stop = false;
  runUntilStdinCloses(() => {
    stop = true;
  }, Number(maxSeconds));
  const options = { host, port: Number(port), intervalMs: Number(interval), timeoutMs: 100 };
  void runConnectClient(
    options,
    (line) => process.stdout.write(`${line}\n`),
    () => stop,
  ).then(() => process.exit(0));
}
