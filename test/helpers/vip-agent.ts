/**
 * Runs vipd's VIP code inside a network namespace for test/vip-netns.test.ts, started by
 * Lab.spawnNode as `ip netns exec NS node dist/test/helpers/vip-agent.js '<owner options JSON>'`.
 * Commands arrive as JSON lines on stdin; replies and events leave as JSON lines on stdout; pino
 * logs go to stderr. Closing stdin closes everything and exits.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing.
 */
import pino from 'pino';
import { createLogger } from '../../src/log/logger';
import { createMetrics } from '../../src/metrics/metrics';
import { loadPacketBinding } from '../../src/native/addon';
import { LinkWatch } from '../../src/vip/link-watch';
import { NetlinkVipOwner, type NetlinkVipOwnerOptions } from '../../src/vip/netlink-owner';
import { createPacketSocket } from '../../src/vip/packet-socket';

import { type Command, runAgent, send, serveCommands } from './agent-loop';

async function main(): Promise<void> {
  const vip = JSON.parse(process.argv[2] ?? '{}') as NetlinkVipOwnerOptions['vip'];
  const log = createLogger({ level: 'debug', node: 'agent', destination: pino.destination({ dest: 2, sync: true }) });
  const metrics = createMetrics({ defaultMetrics: false });
  const owner = new NetlinkVipOwner({ vip, log, metrics });
  let watch: LinkWatch | undefined;

  const counter = async (c: typeof metrics.garpSent) => (await c.get()).values[0]?.value ?? 0;
  const handlers: Record<string, (cmd: Command) => Promise<unknown>> = {
    prepare: () => owner.prepare(),
    acquire: () => owner.acquire(),
    release: () => owner.release(),
    close: () => owner.close(),
    held: async () => owner.held(),
    metrics: async () => ({
      garpSent: await counter(metrics.garpSent),
      naSent: await counter(metrics.naSent),
      vipConflicts: await counter(metrics.vipConflicts),
    }),
    watch: async (cmd) => {
      watch = new LinkWatch({ interface: String(cmd.interface), log });
      watch.on('change', (state) => send({ event: 'link', state }));
      return watch.start();
    },
    unwatch: async () => watch?.close(),
    /** One raw frame (hex) out of vip.interface, through its own packet socket. */
    sendFrame: async (cmd) => {
      const socket = createPacketSocket().open(vip.interface);
      try {
        socket.send(Buffer.from(String(cmd.hex), 'hex'));
      } finally {
        socket.close();
      }
    },
    /**
     * Opens `count` packet sockets and drops them unclosed, then forces GC: the finalizer must
     * close every fd. Also checks that close() twice is harmless. Needs node --expose-gc.
     */
    gcProbe: async (cmd) => {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc === undefined) throw new Error('run the agent with --expose-gc');
      const binding = loadPacketBinding();
      const index = binding.ifNameToIndex(String(cmd.interface));
      const fds = () => countFds();
      const before = await fds();
      const closed = new binding.PacketSocket(index, () => undefined);
      closed.close();
      closed.close();
      (() => {
        for (let i = 0; i < Number(cmd.count); i++) new binding.PacketSocket(index, () => undefined);
      })();
      const opened = await fds();
      let after = opened;
      // Finalizers run after a GC, from the event loop: collect and yield a bounded number of times.
      for (let i = 0; i < 50 && after > before; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
        after = await fds();
      }
      return { before, opened, after };
    },
  };

  // One command at a time, in order, as the election runner drives a VipOwner.
  serveCommands(handlers, async () => {
    watch?.close();
    await owner.close();
  });
}

async function countFds(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir('/proc/self/fd')).length;
}

runAgent(main);
