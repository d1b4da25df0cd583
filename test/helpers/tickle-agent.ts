/**
 * Plays one host of test/tickle-netns.test.ts inside a network namespace, started by Lab.spawnNode as
 * `ip netns exec NS node dist/test/helpers/tickle-agent.js`: an echo server (the old and the new
 * master's apiserver side), groups of idle client connections that record how they end (the
 * watches), a gratuitous ARP or an unsolicited Neighbor Advertisement and the tickles (the new
 * master), of either family (test/tickle-netns.test.ts's IPv6 case: the VIP and the clients IPv6). Commands arrive as JSON lines on
 * stdin and replies leave as JSON lines on stdout (agent-loop.ts). Closing stdin stops the sender,
 * destroys every socket and exits.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing.
 */
import * as net from 'node:net';
import { openRawSocket, type RawIpSocket } from '../../src/native/raw-socket';
import { TickleSender, type TickleSenderOptions } from '../../src/takeover/tickle-sender';
import { buildGratuitousArp } from '../../src/vip/arp';
import { buildUnsolicitedNa } from '../../src/vip/ndisc';
import { createPacketSocket } from '../../src/vip/packet-socket';

import { type Command, runAgent, serveCommands } from './agent-loop';

interface Connection {
  readonly socket: net.Socket;
  readonly localPort: number;
  /** The errno of the 'error' event (ECONNRESET...), and when it came (Date.now(), comparable across agents). */
  error?: string;
  errorAt?: number;
  closed: boolean;
}

export interface GroupSummary {
  readonly open: number;
  readonly errors: Record<string, number>;
  /** Closed without an error (a FIN from the server). */
  readonly closedClean: number;
  readonly firstErrorAt: number | null;
  readonly lastErrorAt: number | null;
  /** Error times, ms after `since` when given, sorted. */
  readonly errorDelaysMs: number[];
}

/** Echo replies are awaited this long before a connection counts as silent. */
const ECHO_TIMEOUT_MS = 2000;

function main(): void {
  const servers: net.Server[] = [];
  const serverSockets = new Set<net.Socket>();
  let accepted = 0;
  const groups = new Map<string, Connection[]>();
  const senders = new Set<TickleSender>();

  const group = (name: unknown): Connection[] => {
    const found = groups.get(String(name));
    if (found === undefined) throw new Error(`no connection group ${String(name)}`);
    return found;
  };

  /** One connection, tracked until it ends; resolves once established. */
  const connect = (host: string, port: number): Promise<Connection> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        const conn: Connection = { socket, localPort: socket.localPort ?? 0, closed: false };
        socket.on('error', (err: NodeJS.ErrnoException) => {
          conn.error = err.code ?? err.message;
          conn.errorAt = Date.now();
        });
        socket.on('close', () => {
          conn.closed = true;
        });
        resolve(conn);
      });
    });

  const handlers: Record<string, (cmd: Command) => Promise<unknown>> = {
    /** An echo server on address:port; the backlog is the namespace's somaxconn (4096). */
    listen: async (cmd) => {
      const server = net.createServer((socket) => {
        accepted++;
        serverSockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => serverSockets.delete(socket));
        socket.pipe(socket);
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: String(cmd.address), port: Number(cmd.port), backlog: 4096 }, () => resolve());
      });
    },
    accepted: async () => accepted,
    /** `count` connections to address:port, `concurrency` handshakes at a time; returns their local ports. */
    connect: async (cmd) => {
      const name = String(cmd.group);
      const count = Number(cmd.count);
      const conns = groups.get(name) ?? [];
      groups.set(name, conns);
      let started = 0;
      const worker = async () => {
        while (started < count) {
          started++;
          conns.push(await connect(String(cmd.address), Number(cmd.port)));
        }
      };
      await Promise.all(Array.from({ length: Math.min(count, Number(cmd.concurrency ?? 100)) }, worker));
      return conns.map((c) => c.localPort);
    },
    /** How a group's connections stand; error times relative to `since` (Date.now() of another agent). */
    connections: async (cmd): Promise<GroupSummary> => {
      const conns = group(cmd.group);
      const errors: Record<string, number> = {};
      const times: number[] = [];
      for (const c of conns) {
        if (c.error === undefined) continue;
        errors[c.error] = (errors[c.error] ?? 0) + 1;
        if (c.errorAt !== undefined) times.push(c.errorAt);
      }
      times.sort((x, y) => x - y);
      const since = typeof cmd.since === 'number' ? cmd.since : undefined;
      return {
        open: conns.filter((c) => !c.closed && c.error === undefined).length,
        errors,
        closedClean: conns.filter((c) => c.closed && c.error === undefined).length,
        firstErrorAt: times[0] ?? null,
        lastErrorAt: times[times.length - 1] ?? null,
        errorDelaysMs: since === undefined ? [] : times.map((t) => t - since),
      };
    },
    /** Writes to every open connection of a group and counts the ones whose echo comes back. */
    echo: async (cmd) => {
      const open = group(cmd.group).filter((c) => !c.closed && c.error === undefined);
      const answered = await Promise.all(
        open.map(
          (c) =>
            new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => done(false), ECHO_TIMEOUT_MS);
              const done = (ok: boolean) => {
                clearTimeout(timer);
                c.socket.off('data', onData);
                resolve(ok);
              };
              const onData = () => done(true);
              c.socket.on('data', onData);
              c.socket.write('ping');
            }),
        ),
      );
      return answered.filter(Boolean).length;
    },
    /** Announces `ip` at `mac` on `interface`: one gratuitous ARP of each form, as the VIP owner does. */
    garp: async (cmd) => {
      const socket = createPacketSocket().open(String(cmd.interface));
      try {
        for (const op of ['request', 'reply'] as const) {
          socket.send(buildGratuitousArp(op, String(cmd.mac), String(cmd.ip)));
        }
      } finally {
        socket.close();
      }
    },
    /** Announces IPv6 `ip` at `mac` on `interface`: one unsolicited Neighbor Advertisement, as the VIP owner does. */
    una: async (cmd) => {
      const socket = createPacketSocket().open(String(cmd.interface), { ndTarget: String(cmd.ip) });
      try {
        socket.send(buildUnsolicitedNa(String(cmd.mac), String(cmd.ip)));
      } finally {
        socket.close();
      }
    },
    /**
     * Tickles every (clientIp, port) of `clientPorts` from `vip`:`vipPort` (an IPv4 or IPv6 VIP, or a
     * list of one per family) through raw sockets of its own, one per family, and reports when it started (Date.now()), the sender's report, and the longest stall of a
     * 5 ms interval timer meanwhile: how long the event loop was kept from other work.
     */
    tickle: async (cmd) => {
      const vipPort = Number(cmd.vipPort);
      const targets = (cmd.clients as Array<{ ip: string; ports: number[] }>).flatMap(({ ip, ports }) =>
        ports.map((clientPort) => ({ clientIp: ip, clientPort, vipPort })),
      );
      const options: Partial<TickleSenderOptions> = {};
      if (Array.isArray(cmd.roundsAtMs)) Object.assign(options, { roundsAtMs: cmd.roundsAtMs.map(Number) });
      if (typeof cmd.batchSize === 'number') Object.assign(options, { batchSize: cmd.batchSize });
      if (Array.isArray(cmd.seqAck)) Object.assign(options, { seqAck: cmd.seqAck });
      // Without `sendBufferBytes` the product's default; 0 is the kernel's.
      const vips = (Array.isArray(cmd.vip) ? cmd.vip : [cmd.vip]).map(String);
      const sockets = new Map<4 | 6, RawIpSocket>();
      for (const vip of vips) {
        const family = net.isIPv6(vip) ? 6 : 4;
        sockets.set(
          family,
          openRawSocket(
            family,
            typeof cmd.sendBufferBytes === 'number' ? { sendBufferBytes: cmd.sendBufferBytes } : {},
          ),
        );
      }
      const socket = {
        send: (packet: Buffer, dstIp: string) => {
          const s = sockets.get(net.isIPv6(dstIp) ? 6 : 4);
          if (s === undefined) throw new Error(`no raw socket for ${dstIp}`);
          return s.send(packet, dstIp);
        },
        close: () => {
          for (const s of sockets.values()) s.close();
        },
      };
      let maxLoopLagMs = 0;
      let last = performance.now();
      const lag = setInterval(() => {
        const now = performance.now();
        maxLoopLagMs = Math.max(maxLoopLagMs, now - last - 5);
        last = now;
      }, 5);
      const sender = new TickleSender({ ...options, socket, vip: vips, targets });
      senders.add(sender);
      try {
        const startedAt = Date.now();
        const report = await sender.start();
        return { startedAt, report, maxLoopLagMs: Math.round(maxLoopLagMs * 10) / 10 };
      } finally {
        clearInterval(lag);
        senders.delete(sender);
        socket.close();
      }
    },
  };

  serveCommands(handlers, async () => {
    for (const sender of senders) sender.stop();
    for (const conns of groups.values()) for (const c of conns) c.socket.destroy();
    for (const socket of serverSockets) socket.destroy();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });
}

runAgent(main);
