/**
 * How the bench's child programs talk to the driver: NsProcess's JSON lines (requests on stdin,
 * replies and events on stdout; logs on stderr). A child exits when its stdin closes, so it never
 * outlives the driver.
 */
import { createInterface } from 'node:readline';

export const emit = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(msg)}\n`);

type Handler = (req: Record<string, unknown>) => unknown;

export function serveRequests(handlers: Record<string, Handler>, onStdinClosed: () => unknown): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const req = JSON.parse(line) as { id: number; cmd: string } & Record<string, unknown>;
    Promise.resolve()
      .then(() => {
        const handler = handlers[req.cmd];
        if (handler === undefined) throw new Error(`unknown command ${req.cmd}`);
        return handler(req);
      })
      .then(
        (result) => emit({ id: req.id, ok: true, result }),
        (err: unknown) => emit({ id: req.id, ok: false, error: String(err) }),
      );
  });
  lines.on('close', () => {
    void Promise.resolve()
      .then(onStdinClosed)
      .finally(() => process.exit(0));
  });
}

/**
 * A balancer child's options: where it listens (port, port + 1 for bulk, and with `storm` port + 2
 * to the backends' TLS port), its backends, and (vipd) its relay threads.
 */
export interface BalancerChildOptions {
  readonly bind: string;
  readonly port: number;
  readonly backends: readonly string[];
  readonly storm: boolean;
  readonly threads?: number;
}

/** Runs a child's `main` with the JSON options it was started with (`node child.js '<json>'`). */
export function runChild(main: (options: Record<string, unknown>) => unknown): void {
  Promise.resolve()
    .then(() => main(JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>))
    .catch((err: unknown) => {
      process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    });
}
