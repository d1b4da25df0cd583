/**
 * `node relay-agent.js '<json>'`: a RelayEngine (native/relay.cc) in a process of its own, for the
 * cases a test must stop (SIGSTOP), starve (a descriptor limit) or let exit: it listens on `listen`
 * in front of `backends` and prints `{"event":"ready","port":N}`, then one line per engine event
 * (`{"event":"relay","name":"connected","args":[...]}`). With `exhaustDescriptors: true` it lowers
 * its own descriptor limit (prlimit on itself) after it listens and then opens /dev/null until none is
 * left, so the engine's next accept fails with EMFILE whatever the runtime opens or closes. When stdin
 * closes it closes the engine and exits; with `abandon: true` it instead stops accepting, lets go of
 * everything else and exits when its event loop is empty, the engine never closed (the teardown
 * path: environment cleanup with threads still running).
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import { execFileSync } from 'node:child_process';
import { openSync, readdirSync } from 'node:fs';
import {
  dispatchRelayEvents,
  type EngineBackend,
  loadRelayBinding,
  type RelayEvents,
} from '../../src/native/relay-engine';
import { runAgent, send } from './agent-loop';

interface Options {
  readonly listen: string;
  readonly backends: readonly Omit<EngineBackend, 'routable' | 'draining'>[];
  readonly threads?: number;
  readonly hedgeDelayMs?: number;
  readonly connectTimeoutMs?: number;
  readonly exhaustDescriptors?: boolean;
  readonly abandon?: boolean;
  /** Engines to start, each on its own port (the ready line lists them); 1 unless given. */
  readonly engines?: number;
}

function main(): void {
  const o = JSON.parse(process.argv[2] ?? '{}') as Options;
  const { RelayEngine } = loadRelayBinding();
  const events = new Proxy({} as RelayEvents, {
    get:
      (_, name) =>
      (...args: unknown[]) =>
        send({ event: 'relay', name, args }),
  });
  const engines = Array.from({ length: o.engines ?? 1 }, () => {
    const engine = new RelayEngine((batch) => dispatchRelayEvents(batch, events), o.threads ?? 1, false);
    engine.configure(o.connectTimeoutMs ?? 5000, 3, 0, o.hedgeDelayMs ?? 0, 30_000, false, 5000);
    engine.setBackends(o.backends.map((b) => ({ ...b, routable: true, draining: false })));
    return engine;
  });
  const ports = engines.map((e) => e.listen(o.listen, 0, 128));
  const port = ports[0];
  if (o.exhaustDescriptors === true) {
    // A limit a little above what is open, then filled: counting alone left a race (a descriptor
    // the runtime closed after the count gave the engine room for one more accept, every time).
    const open = readdirSync('/proc/self/fd').length;
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${open + 16}`]);
    const held: number[] = [];
    for (let i = 0; i < 64; i++) {
      try {
        held.push(openSync('/dev/null', 'r'));
      } catch {
        break;
      }
    }
    send({ event: 'exhausted', held: held.length });
  }
  send({ event: 'ready', port, ports });
  if (o.abandon === true) {
    setTimeout(() => {
      for (const e of engines) e.stopAccepting();
      process.stdin.destroy();
      send({ event: 'abandoned' });
    }, 300);
    return;
  }
  process.stdin.resume();
  process.stdin.on('close', () => {
    for (const e of engines) e.close();
    process.exit(0);
  });
}

runAgent(main);
