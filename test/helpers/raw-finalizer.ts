/**
 * Raw sockets dropped without close(), for tickle-netns.test.ts's test of the addon's finalizer:
 *   node --expose-gc raw-finalizer.js [4|6]
 * opens 50 raw IPv4 (or IPv6) sockets and drops them, then collects garbage until the process's fd count is
 * back where it was (for up to a second), and prints {"before","opened","after"}: the fd counts
 * before, with the 50 open, and at the end.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import { readdirSync } from 'node:fs';
import { loadPacketBinding } from '../../src/native/addon';
import { runAgent } from './agent-loop';

function main(): void {
  const collect = globalThis.gc;
  if (collect === undefined) throw new Error('run with node --expose-gc');
  const addon = loadPacketBinding();
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  const open = (): void => {
    const Raw = process.argv[2] === '6' ? addon.RawIpv6Socket : addon.RawIpv4Socket;
    for (let i = 0; i < 50; i++) new Raw();
  };
  // In a function of its own, so nothing on this frame keeps a socket reachable.
  open();
  const opened = fds();
  const poll = (tries: number): void => {
    collect();
    if (fds() > before && tries > 0) {
      setTimeout(poll, 20, tries - 1);
      return;
    }
    // Counted before process.stdout is first touched: setting it up on a pipe takes an fd of its own.
    const counts = { before, opened, after: fds() };
    process.stdout.write(`${JSON.stringify(counts)}\n`);
  };
  poll(50);
}

runAgent(main);
