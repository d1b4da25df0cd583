/**
 * Opens a raw IPv4 socket (or with the argument 6 an IPv6 one) and says what happened, for
 * tickle-netns.test.ts, which starts it without CAP_NET_RAW to see the error an operator would see:
 *   node raw-open.js [4|6]
 * prints "opened", or the error's code and message ("VIPD_NATIVE cannot open a raw IPv4 socket: ...").
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import { openRawSocket } from '../../src/native/raw-socket';
import { runAgent } from './agent-loop';

function main(): void {
  try {
    openRawSocket(process.argv[2] === '6' ? 6 : 4).close();
    process.stdout.write('opened\n');
  } catch (err) {
    const { code, message } = err as { code?: unknown; message?: unknown };
    process.stdout.write(`${String(code)} ${String(message)}\n`);
  }
}

runAgent(main);
