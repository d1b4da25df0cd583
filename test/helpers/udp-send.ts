/**
 * `node udp-send.js HOST PORT`: one datagram ("x") to HOST:PORT, then exit: the namespace resolves
 * HOST's MAC on the way (ordinary ARP traffic, for the conflict tests).
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import dgram from 'node:dgram';
import { runAgent } from './agent-loop';

function main(): void {
  const [host = '', port = ''] = process.argv.slice(2);
  const socket = dgram.createSocket('udp4');
  socket.send('x', Number(port), host, () => socket.close());
}

runAgent(main);
