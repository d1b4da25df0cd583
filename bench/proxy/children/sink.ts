/**
 * The bulk sink on b1: counts a stream's bytes and times them, first byte to FIN; one event per
 * stream. `node sink.js '{"host":…}'`.
 */
import net from 'node:net';
import { BULK_PORT } from '../network';
import { emit, runChild, serveRequests } from './child-loop';

function main(o: { host: string }): void {
  const server = net.createServer((s) => {
    let bytes = 0;
    let first = 0;
    s.on('data', (c: Buffer) => {
      if (bytes === 0) first = performance.now();
      bytes += c.length;
    });
    s.on('end', () => {
      emit({ event: 'bulk', bytes, ms: performance.now() - first });
      s.destroy();
    });
    s.on('error', () => undefined);
  });
  server.listen(BULK_PORT, o.host, () => emit({ event: 'ready' }));
  serveRequests({}, () => server.close());
}

if (require.main === module) runChild((o) => main(o as { host: string }));
