/**
 * The client side of the stand-in apiserver's raw line protocol (src/lab/stand-in-apiserver.ts:
 * WHO, ECHO, SINK, SOURCE), and the digest of its byte pattern, for the balancer's loopback tests.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pattern } from '../../src/lab/stand-in-apiserver';

export interface RawCallOptions {
  /** Sent after the command line, before the FIN. */
  readonly payload?: Iterable<Buffer>;
  readonly timeoutMs?: number;
}

/**
 * Sends one raw command, then `payload` (if any) and a FIN, and resolves with everything the server
 * sent before it closed. Rejects on an error, a reset, or after `timeoutMs` (5 s).
 */
export function rawCall(host: string, port: number, command: string, options: RawCallOptions = {}): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`${command}: no answer within ${timeoutMs}ms`)), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(Buffer.concat(chunks));
    });
    socket.write(`${command}\n`);
    // pipe() waits for 'drain' between chunks, ends the socket after the last, and stops if it closes.
    Readable.from(options.payload ?? []).pipe(socket);
  });
}

/** The sha256 of the first `bytes` bytes of the pattern SOURCE writes. */
export function patternSha256(bytes: number): string {
  const hash = createHash('sha256');
  for (const block of pattern(bytes)) hash.update(block);
  return hash.digest('hex');
}
