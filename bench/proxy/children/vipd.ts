/**
 * vipd's TcpProxy as the daemon builds it (same schema defaults, the daemon's logger, to stderr),
 * with `threads` as proxy.threads and, with `storm`, a third frontend to the backends' TLS port:
 * `node vipd.js '{"bind":…,"port":…,"backends":[…],"storm":true,"threads":N}'` inside the lb namespace.
 */
import pino from 'pino';
import { proxySchema } from '../../../src/config/schema';
import { createLogger } from '../../../src/log/logger';
import { TcpProxy } from '../../../src/proxy/proxy';
import { BULK_PORT, HTTP_PORT, TLS_PORT } from '../network';
import { type BalancerChildOptions, emit, runChild, serveRequests } from './child-loop';

async function main(o: BalancerChildOptions): Promise<void> {
  const backends = o.backends.map((a, i) => ({ name: `b${i + 1}`, address: a, port: HTTP_PORT }));
  const sink = [{ name: 'sink', address: o.backends[0] as string, port: BULK_PORT }];
  const tls = o.backends.map((a, i) => ({ name: `b${i + 1}`, address: a, port: TLS_PORT }));
  const proxy = proxySchema.parse({
    threads: o.threads ?? 1,
    frontends: [
      { name: 'http', bind: `${o.bind}:${o.port}`, backends, healthCheck: { type: 'tcp' } },
      { name: 'bulk', bind: `${o.bind}:${o.port + 1}`, backends: sink, healthCheck: { type: 'tcp' } },
      ...(o.storm
        ? [{ name: 'storm', bind: `${o.bind}:${o.port + 2}`, backends: tls, healthCheck: { type: 'tcp' } }]
        : []),
    ],
  });
  const log = createLogger({ level: 'warn', destination: pino.destination({ dest: 2, sync: true }) });
  const p = new TcpProxy({ proxy, peers: [] }, { log });
  await p.start();
  serveRequests({}, () => p.destroy());
  emit({ event: 'ready' });
}

if (require.main === module) runChild((o) => main(o as unknown as BalancerChildOptions));
