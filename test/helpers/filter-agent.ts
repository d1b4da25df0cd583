/**
 * Runs vipd's filtered sockets inside a network namespace for test/native-filters-netns.test.ts,
 * started by Lab.spawnNode as `ip netns exec NS node dist/test/helpers/filter-agent.js`. Commands
 * arrive as JSON lines on stdin and replies leave as JSON lines on stdout (the protocol of
 * vip-agent.ts); each socket is opened under a name and records what it receives until asked.
 * Closing stdin closes every socket and exits.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing.
 */
import * as dgram from 'node:dgram';
import { openFilteredUdp, setAllowedSources } from '../../src/native/udp-socket';
import { createPacketSocket, type PacketSocket } from '../../src/vip/packet-socket';

import { type Command, runAgent, serveCommands } from './agent-loop';

function main(): void {
  const udp = new Map<string, { socket: dgram.Socket; received: Array<{ from: string; text: string }> }>();
  const arp = new Map<string, { socket: PacketSocket; frames: string[] }>();
  const named = <T>(map: Map<string, T>, name: unknown): T => {
    const entry = map.get(String(name));
    if (entry === undefined) throw new Error(`no socket named ${String(name)}`);
    return entry;
  };

  const handlers: Record<string, (cmd: Command) => Promise<unknown>> = {
    /** With `allowedSources`, through openFilteredUdp; without, a plain dgram socket (the control). */
    openUdp: async (cmd) => {
      const address = String(cmd.address);
      let socket: dgram.Socket;
      if (Array.isArray(cmd.allowedSources)) {
        socket = await openFilteredUdp({
          address,
          port: Number(cmd.port),
          allowedSources: cmd.allowedSources.map(String),
          recvBufferBytes: 1 << 20,
        });
      } else {
        socket = dgram.createSocket('udp4');
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(Number(cmd.port), address, () => resolve());
        });
      }
      const received: Array<{ from: string; text: string }> = [];
      socket.on('message', (msg, rinfo) => received.push({ from: rinfo.address, text: msg.toString() }));
      udp.set(String(cmd.name), { socket, received });
      return socket.address().port;
    },
    udpReceived: async (cmd) => named(udp, cmd.name).received,
    setAllowedSources: async (cmd) => {
      setAllowedSources(named(udp, cmd.name).socket, (cmd.allowedSources as unknown[]).map(String));
    },
    /** `count` datagrams "<text> <i>" to address:port, from this host's own address, one after another. */
    sendUdp: async (cmd) => {
      const socket = dgram.createSocket('udp4');
      try {
        for (let i = 0; i < Number(cmd.count); i++) {
          const text = `${String(cmd.text)} ${i}`;
          await new Promise<void>((resolve, reject) =>
            socket.send(text, Number(cmd.port), String(cmd.address), (err) => (err ? reject(err) : resolve())),
          );
        }
      } finally {
        socket.close();
      }
    },
    /** A packet socket on `interface`, filtered to ARP claiming `arpSender` when given. */
    openArp: async (cmd) => {
      const socket = createPacketSocket();
      const frames: string[] = [];
      socket.on('frame', (frame) => frames.push(frame.toString('hex')));
      socket.open(String(cmd.interface), typeof cmd.arpSender === 'string' ? { arpSender: cmd.arpSender } : {});
      arp.set(String(cmd.name), { socket, frames });
    },
    arpFrames: async (cmd) => named(arp, cmd.name).frames,
    setArpSender: async (cmd) => named(arp, cmd.name).socket.setArpSender(String(cmd.arpSender)),
    /** Raw frames (hex) out of `interface`, through a packet socket of their own. */
    sendFrames: async (cmd) => {
      const socket = createPacketSocket().open(String(cmd.interface));
      try {
        for (const hex of cmd.frames as unknown[]) socket.send(Buffer.from(String(hex), 'hex'));
      } finally {
        socket.close();
      }
    },
  };

  const closeAll = () => {
    for (const { socket } of udp.values()) socket.close();
    for (const { socket } of arp.values()) socket.close();
  };
  serveCommands(handlers, closeAll);
}

runAgent(main);
