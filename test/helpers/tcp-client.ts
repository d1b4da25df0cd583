/**
 * One TCP connection, as a client program for the namespace suites:
 *   node tcp-client.js HOST PORT [--send LINE] [--for-ms N]
 * connects, sends LINE (if given), and reports as JSON lines on stdout, each with its wall-clock
 * time `at`: {"event":"open","who":<the first line the server sent>} and {"event":"closed"}, then
 * exits. It gives up after N ms (30 s), and exits when its stdin ends (NsProcess.stop).
 * A connect to a closed port of an address is also the quickest way to have a namespace resolve
 * that address's MAC: the holder answers with a reset.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import net from 'node:net';
import { runAgent } from './agent-loop';

function main(): void {
  const [host = '', port = '', ...flags] = process.argv.slice(2);
  const flag = (name: string) => (flags.includes(name) ? flags[flags.indexOf(name) + 1] : undefined);
  const line = flag('--send');
  const say = (event: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ ...event, at: Date.now() })}\n`);
  const socket = net.connect(Number(port), host, () => {
    if (line !== undefined) socket.write(`${line}\n`);
  });
  socket.once('data', (d: Buffer) => say({ event: 'open', who: d.toString().split('\n')[0] }));
  socket.on('close', () => {
    say({ event: 'closed' });
    process.exit(0);
  });
  socket.on('error', () => undefined);
  setTimeout(() => process.exit(0), Number(flag('--for-ms') ?? 30_000));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

runAgent(main);
