/**
 * The lab's stand-in apiserver when run without the balancer's fixture: accepts TCP on a port and
 * answers one line, so a client's connect through the VIP succeeds exactly when the VIP (and the
 * node behind it) is reachable. Runs inside a node namespace.
 */
import net from 'node:net';

if (require.main === module) {
  const [host = '0.0.0.0', port = '9443', name = 'node'] = process.argv.slice(2);
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.end(`${name}\n`);
  });
  server.listen(Number(port), host, () => process.stdout.write(`${JSON.stringify({ listening: `${host}:${port}` })}\n`));
  process.stdin.on('end', () => server.close(() => process.exit(0)));
  process.stdin.resume();
}
