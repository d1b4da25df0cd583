/**
 * The command loop of the namespace agents (vip-agent.ts, filter-agent.ts, tickle-agent.ts): requests `{id, cmd, ...}`
 * as JSON lines on stdin, handled one at a time and in order, replies `{id, ok, result | error}` on
 * stdout (the protocol NsProcess in src/lab/netns.ts speaks). When stdin closes, `onClose` runs after
 * the last command and the process exits. Also how every program in this folder is started
 * (runAgent, programCommand), the agents and the small client programs alike.
 */
import { createInterface } from 'node:readline';

export type Command = { id: number; cmd: string } & Record<string, unknown>;
export type Handlers = Record<string, (cmd: Command) => Promise<unknown>>;

export function send(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

export function serveCommands(handlers: Handlers, onClose: () => Promise<void> | void): void {
  const rl = createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      const cmd = JSON.parse(line) as Command;
      const handler = handlers[cmd.cmd];
      try {
        if (handler === undefined) throw new Error(`unknown command ${cmd.cmd}`);
        send({ id: cmd.id, ok: true, result: (await handler(cmd)) ?? null });
      } catch (err) {
        const error = err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err);
        send({ id: cmd.id, ok: false, error });
      }
    });
  });
  rl.on('close', () => {
    void queue.then(async () => {
      await onClose();
      process.exit(0);
    });
  });
}

/**
 * Runs an agent's `main` when this process was started as that agent. `node --test dist/test/`
 * also loads the agent files as if they were tests: without VIPD_TEST_AGENT=1 nothing runs.
 */
export function runAgent(main: () => void | Promise<void>): void {
  if (process.env.VIPD_TEST_AGENT !== '1') return;
  Promise.resolve()
    .then(main)
    .catch((err: unknown) => {
      process.stderr.write(`agent failed: ${String(err)}\n`);
      process.exit(1);
    });
}

/**
 * The command that runs the program `file` (a compiled file of this folder) with `args` as that
 * program: for `ip netns exec NS ...`, or a spawn. `env` execs node in place, so the pid is node's.
 * `nodeFlags` are node's own (`--expose-gc`).
 */
export function programCommand(
  file: string,
  args: readonly string[] = [],
  nodeFlags: readonly string[] = [],
): [string, ...string[]] {
  return ['env', 'VIPD_TEST_AGENT=1', process.execPath, ...nodeFlags, file, ...args];
}
