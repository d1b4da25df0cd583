/**
 * A garbage flood for the namespace tests: `node udp-flood.js HOST PORT SECONDS` sends random
 * 60-byte UDP datagrams to HOST:PORT as fast as one process can for SECONDS, then prints
 * {"sent": N, "seconds": S} on stdout. Only ever pointed at a namespace the test created.
 *
 * `node --test dist/test/` does not load this file (it is not a *.test.js).
 */

import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';

const [host = '', portText = '', secondsText = ''] = process.argv.slice(2);
const port = Number(portText);
const seconds = Math.min(Number(secondsText), 30);
const socket = createSocket('udp4');
const payloads = Array.from({ length: 64 }, () => randomBytes(60));
const until = performance.now() + seconds * 1000;
let sent = 0;

function burst(): void {
  if (performance.now() >= until) {
    process.stdout.write(`${JSON.stringify({ sent, seconds })}\n`);
    socket.close();
    return;
  }
  // Batches, then a turn of the loop: the send queue never grows without bound.
  for (let i = 0; i < 512; i += 1) {
    socket.send(payloads[sent % payloads.length] as Buffer, port, host);
    sent += 1;
  }
  setImmediate(burst);
}

socket.on('error', () => {
  /* ICMP errors and a full queue: the flood goes on */
});
burst();
