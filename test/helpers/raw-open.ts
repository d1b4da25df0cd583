/**
 * Opens a raw IPv4 socket and says what happened, for tickle-netns.test.ts, which starts it without
 * CAP_NET_RAW to see the error an operator would see:
 *   node raw-open.js
 * prints "opened", or the error's code and message ("VIPD_NATIVE cannot open a raw IPv4 socket: ...").
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import { openRawIpv4Socket } from '../../src/native/raw-socket';
import { runAgent } from './agent-loop';

function main(): void {
  try {
    openRawIpv4Socket().close();
    process.stdout.write('opened\n');
  } catch (err) {
    const { code, message } = err as { code?: unknown; message?: unknown };
    process.stdout.write(`${String(code)} ${String(message)}\n`);
  }
}

runAgent(main);
