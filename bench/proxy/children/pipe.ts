/**
 * What a first Node proxy looks like: pipe both ways, destroy both on close (no half-close).
 * `node pipe.js '{"bind":…,"port":…,"backends":[…],"storm":true}'` inside the lb namespace.
 */
import net from 'node:net';
import { BULK_PORT, HTTP_PORT, TLS_PORT } from '../network';
import { type BalancerChildOptions, emit, runChild, serveRequests } from './child-loop';

function main(o: BalancerChildOptions): void {
  let next = 0;
  const servers: net.Server[] = [];
  const serve = (port: number, targets: readonly string[], targetPort: number) => {
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: targets[next++ % targets.length] as string, port: targetPort });
      client.pipe(upstream).pipe(client);
      const kill = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', kill).on('close', kill);
      upstream.on('error', kill).on('close', kill);
    });
    server.listen({ host: o.bind, port, backlog: 4096 });
    servers.push(server);
  };
  serve(o.port, o.backends, HTTP_PORT);
  serve(o.port + 1, o.backends.slice(0, 1), BULK_PORT);
  if (o.storm) serve(o.port + 2, o.backends, TLS_PORT);
  serveRequests({}, () => {
    for (const s of servers) s.close();
  });
  emit({ event: 'ready' });
}

if (require.main === module) runChild((o) => main(o as unknown as BalancerChildOptions));
