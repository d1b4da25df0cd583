/**
 * `node http-get.js URL`: the body of one GET on stdout (a daemon's /metrics, read from inside its
 * namespace); exits non-zero when the request fails.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import { runAgent } from './agent-loop';

async function main(): Promise<void> {
  const response = await fetch(process.argv[2] ?? '');
  process.stdout.write(await response.text());
}

runAgent(main);
