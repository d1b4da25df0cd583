/**
 * `node backlog-listener.js HOST NAME`: a listener with a backlog of one on an ephemeral port of
 * HOST, which prints its port and answers every connection with "NAME\n", then closes it. The
 * child process of stalled-listener.ts, which SIGSTOPs it to make its connects hang.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import net from 'node:net';
import { runAgent } from './agent-loop';

function main(): void {
  const [host = '', name = ''] = process.argv.slice(2);
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(`${name}\n`);
  });
  server.listen({ host, port: 0, backlog: 1 }, () => {
    process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
  });
}

runAgent(main);
