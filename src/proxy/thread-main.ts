/**
 * The balancer's thread (started by thread.ts): a TcpProxy with its own metrics registry and
 * logger, driven by the daemon's requests. It pushes its status (every second, and after each
 * request) and the client connections it accepts and closes (in order, batched per turn of its
 * event loop). Nothing here decides anything: the TcpProxy does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { createLogger } from '../log/logger';
import { registerProxyMetrics } from '../metrics/proxy-metrics';
import { TcpProxy } from './proxy';
import {
  type ConnectionEvent,
  serializeError,
  type ThreadData,
  type ThreadMessage,
  type ThreadRequest,
  toEvent,
} from './thread-protocol';

const STATUS_EVERY_MS = 1000;

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('thread-main.ts runs as a worker thread (src/proxy/thread.ts)');
  const data = workerData as ThreadData;
  const post = (m: ThreadMessage) => port.postMessage(m);
  // The frontends name their component themselves (a second binding would write the key twice).
  const log = createLogger({ level: data.logLevel, node: data.node, format: data.logFormat });
  const registry = new Registry();
  let events: ConnectionEvent[] = [];
  const flush = () => {
    const batch = events;
    events = [];
    post({ kind: 'connections', events: batch });
  };
  const push = (e: ConnectionEvent) => {
    if (events.push(e) === 1) setImmediate(flush);
  };
  const proxy = new TcpProxy(data.config, {
    log,
    metrics: registerProxyMetrics(registry),
    connections: data.observe
      ? { opened: (c) => push(toEvent(true, c)), closed: (c) => push(toEvent(false, c)) }
      : undefined,
    listen: data.listen,
  });
  const pushStatus = () => post({ kind: 'status', status: proxy.status() });
  const statusTimer = setInterval(pushStatus, STATUS_EVERY_MS);
  statusTimer.unref();

  const run = async (req: ThreadRequest): Promise<string | undefined> => {
    switch (req.op) {
      case 'start':
        await proxy.start();
        return undefined;
      case 'reload':
        await proxy.reload(req.config as ThreadData['config']);
        return undefined;
      case 'close':
        await proxy.close();
        return undefined;
      case 'destroy':
        await proxy.destroy();
        return undefined;
      case 'metrics':
        return registry.metrics();
    }
  };
  port.on('message', (req: ThreadRequest) => {
    run(req).then(
      (value) => {
        if (events.length > 0) flush();
        pushStatus();
        post({ kind: 'reply', id: req.id, ok: true, value });
      },
      (err: unknown) => {
        pushStatus();
        post({ kind: 'reply', id: req.id, ok: false, error: serializeError(err) });
      },
    );
  });
  pushStatus();
}

main();
