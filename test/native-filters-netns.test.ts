/**
 * The kernel-side filters of src/native against a real kernel. The UDP socket's adoption by Node
 * runs on loopback in this process; the filters themselves run between hosts of a lab (src/lab/netns.ts:
 * hosts on one bridge, 10.77.0.0/24) through test/helpers/filter-agent.ts, with a namespace of their
 * own so the kernel's drop counter (/proc/net/snmp `Udp: InErrors`) counts nothing but them. Needs root.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { VipdError } from '../src/errors';
import type { Lab, LanHost, NsProcess } from '../src/lab/netns';
import { sleep, waitFor } from '../src/lab/wait';
import { loadPacketBinding } from '../src/native/addon';
import { encodeProgram, insn, JEQ_K, udpSourceFilter } from '../src/native/bpf';
import { openFilteredUdp, setAllowedSources } from '../src/native/udp-socket';
import { buildGratuitousArp } from '../src/vip/arp';
import { withLab } from './helpers/with-lab';

const AGENT = path.join(__dirname, 'helpers', 'filter-agent.js');
const PORT = 7580;
const VIP = '10.77.0.100';
// No skip when not root: these tests must run (CI runs as root); without root they fail loudly.
const opts = { timeout: 120_000 };

interface Datagram {
  from: string;
  text: string;
}

function host(hosts: Map<string, LanHost>, name: string): LanHost {
  const h = hosts.get(name);
  if (h === undefined) throw new Error(`no host ${name}`);
  return h;
}

/** `Udp: InErrors` of a namespace: the datagrams its sockets' filters dropped, among other errors. */
async function udpInErrors(lab: Lab, ns: string): Promise<number> {
  const lines = (await lab.exec(ns, 'cat', '/proc/net/snmp')).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  const at = names?.indexOf('InErrors') ?? -1;
  const value = Number(values?.[at]);
  if (at < 0 || !Number.isInteger(value)) {
    throw new Error(`no Udp InErrors in ${ns}'s /proc/net/snmp:\n${lines.join('\n')}`);
  }
  return value;
}

const received = (agent: NsProcess, name: string) => agent.request<Datagram[]>('udpReceived', { name });

/** Waits until socket `name` has received `count` datagrams. */
async function waitReceived(agent: NsProcess, name: string, count: number): Promise<Datagram[]> {
  return waitFor(
    `${count} datagrams on ${name}`,
    async () => {
      const got = await received(agent, name);
      return got.length >= count ? got : undefined;
    },
    { timeoutMs: 5000, everyMs: 100 },
  );
}

const texts = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} ${i}`);

describe('openFilteredUdp on loopback', () => {
  const countFds = () => readdirSync('/proc/self/fd').length;

  /** `count` datagrams from a socket bound to `from`, to 127.0.0.1:port. */
  async function sendFrom(from: string, port: number, count: number): Promise<void> {
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, from, resolve));
      for (let i = 0; i < count; i++) {
        await new Promise<void>((resolve, reject) =>
          client.send(`${from} ${i}`, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
        );
      }
    } finally {
      client.close();
    }
  }

  function collect(socket: dgram.Socket): Datagram[] {
    const got: Datagram[] = [];
    socket.on('message', (msg, rinfo) => got.push({ from: rinfo.address, text: msg.toString() }));
    return got;
  }

  /** Loopback delivers within the send call, so a short bound is plenty. */
  const until = (what: string, done: () => boolean) => waitFor(what, done, { timeoutMs: 1000, everyMs: 20 });

  const closed = (socket: dgram.Socket) => new Promise<void>((resolve) => socket.close(resolve));

  /** Closes `socket` when the test ends, passed or failed: an open socket would keep this file's process alive. */
  function owned(t: TestContext, socket: dgram.Socket): dgram.Socket {
    t.after(() => {
      try {
        socket.close();
      } catch {
        // the test closed it already
      }
    });
    return socket;
  }

  it('Node adopts the fd: it receives from the allowed source only, sends, and close() closes the fd', async (t) => {
    const before = countFds();
    const socket = owned(
      t,
      await openFilteredUdp({
        address: '127.0.0.1',
        port: 0,
        allowedSources: ['127.0.0.2'],
        recvBufferBytes: 1 << 20,
      }),
    );
    assert.equal(countFds(), before + 1);
    const { address, port } = socket.address();
    assert.equal(address, '127.0.0.1');
    // As root SO_RCVBUFFORCE passes rmem_max; Linux reports twice the value asked for.
    assert.equal(socket.getRecvBufferSize(), 2 << 20);
    const got = collect(socket);
    // Loopback delivers in order, so once the allowed ones are in, the others had their chance.
    await sendFrom('127.0.0.3', port, 5);
    await sendFrom('127.0.0.2', port, 5);
    await until('5 datagrams from 127.0.0.2', () => got.length >= 5);
    await sleep(50);
    assert.deepEqual(
      got,
      texts('127.0.0.2', 5).map((text) => ({ from: '127.0.0.2', text })),
    );

    const peer = owned(t, dgram.createSocket('udp4'));
    await new Promise<void>((resolve) => peer.bind(0, '127.0.0.2', resolve));
    const answered = collect(peer);
    await new Promise<void>((resolve, reject) =>
      socket.send('hello', peer.address().port, '127.0.0.2', (e) => (e ? reject(e) : resolve())),
    );
    await until('the peer to hear the filtered socket', () => answered.length > 0);
    assert.deepEqual(answered, [{ from: '127.0.0.1', text: 'hello' }]);
    await closed(peer);

    await closed(socket);
    assert.equal(countFds(), before);
  });

  it('a second bind of the same address and port fails with EADDRINUSE, a SO_REUSEADDR one too', async (t) => {
    const first = owned(t, await openFilteredUdp({ address: '127.0.0.1', port: 0, allowedSources: ['127.0.0.2'] }));
    const { port } = first.address();
    const before = countFds();
    const second = openFilteredUdp({ address: '127.0.0.1', port, allowedSources: ['127.0.0.2'] });
    await assert.rejects(second, (err: unknown) => {
      assert.ok(err instanceof VipdError);
      assert.equal(err.code, 'VIPD_BIND_FAILED');
      assert.equal((err.cause as { code?: string }).code, 'EADDRINUSE');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*another vipd`));
      return true;
    });
    assert.equal(countFds(), before, 'the failed socket was closed');
    // libuv turns SO_REUSEADDR on when Node adopts the fd; with it left on, this socket would share
    // the port and take the datagrams. openFilteredUdp turns it off again.
    const intruder = owned(t, dgram.createSocket({ type: 'udp4', reuseAddr: true }));
    const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      intruder.once('error', resolve);
      intruder.bind(port, '127.0.0.1', () => resolve(undefined));
    });
    assert.equal(error?.code, 'EADDRINUSE');
  });

  it('setAllowedSources replaces the filter; a closed socket is refused', async (t) => {
    const socket = owned(t, await openFilteredUdp({ address: '127.0.0.1', port: 0, allowedSources: ['127.0.0.2'] }));
    const { port } = socket.address();
    const got = collect(socket);
    setAllowedSources(socket, ['127.0.0.3', '127.0.0.4']);
    await sendFrom('127.0.0.2', port, 3);
    await sendFrom('127.0.0.3', port, 3);
    await until('3 datagrams from 127.0.0.3', () => got.length >= 3);
    await sleep(50);
    assert.deepEqual(
      got.map((d) => d.from),
      ['127.0.0.3', '127.0.0.3', '127.0.0.3'],
    );
    socket.close();
    assert.throws(() => setAllowedSources(socket, ['127.0.0.2']), { name: 'VipdError', code: 'VIPD_NATIVE' });
  });

  it("the addon refuses a malformed program with the kernel's errno, and leaks no fd", () => {
    const addon = loadPacketBinding();
    const before = countFds();
    // The kernel's checker wants a return as the last instruction.
    const noReturn = encodeProgram([insn(JEQ_K, 0, 0, 1)]);
    assert.throws(() => addon.openUdpSocket('127.0.0.1', 0, noReturn, 0), { code: 'EINVAL' });
    // The packet socket opens its socket the same way (ifindex 1: loopback).
    assert.throws(() => new addon.PacketSocket(1, () => undefined, noReturn), {
      code: 'EINVAL',
      message: /SO_ATTACH_FILTER/,
    });
    assert.throws(() => addon.openUdpSocket('127.0.0.1', 0, Buffer.alloc(12), 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => addon.attachFilter(-1, udpSourceFilter([])), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(countFds(), before);
  });

  it('IPv6: an AF_INET6 socket on ::1 keeps the allowed IPv6 source only, and a new list replaces it', async (t) => {
    const filtered = owned(t, await openFilteredUdp({ address: '::1', port: 0, allowedSources: ['fd00::9'] }));
    const plain = owned(t, dgram.createSocket('udp6'));
    await new Promise<void>((resolve) => plain.bind(0, '::1', resolve));
    const got = collect(filtered);
    const control = collect(plain);
    const client = owned(t, dgram.createSocket('udp6'));
    await new Promise<void>((resolve) => client.bind(0, '::1', resolve));
    const send = (port: number, text: string) =>
      new Promise<void>((resolve, reject) => client.send(text, port, '::1', (e) => (e ? reject(e) : resolve())));
    for (let i = 0; i < 5; i++) {
      await send(filtered.address().port, `dropped ${i}`);
      await send(plain.address().port, `control ${i}`);
    }
    await until('the control to receive 5', () => control.length === 5);
    await sleep(50);
    assert.deepEqual(got, [], 'no datagram from ::1 passes a filter that allows fd00::9 only');
    assert.equal(filtered.address().family, 'IPv6');
    setAllowedSources(filtered, ['fd00::9', '::1']);
    await send(filtered.address().port, 'kept');
    await until('the filtered socket to receive', () => got.length === 1);
    assert.deepEqual(got, [{ from: '::1', text: 'kept' }]);
    await assert.rejects(openFilteredUdp({ address: '::1', port: 0, allowedSources: ['127.0.0.1'] }), TypeError);
  });

  it('rejects invalid options before opening anything', async () => {
    const open = (address: string, port: number, allowedSources: string[]) =>
      openFilteredUdp({ address, port, allowedSources });
    await assert.rejects(open('localhost', PORT, []), TypeError);
    await assert.rejects(open('127.0.0.1', 65536, []), RangeError);
    await assert.rejects(open('127.0.0.1', 0, ['10.0.0.300']), TypeError);
  });
});

describe('the UDP source filter between namespaces', () => {
  it("delivers only the allowed peer's datagrams; the kernel drops the others", opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'b', 'c']);
      const [a, b, c] = ['a', 'b', 'c'].map((name) => host(hosts, name)) as [LanHost, LanHost, LanHost];
      const agentA = lab.spawnNode(a.ns, AGENT);
      const agentB = lab.spawnNode(b.ns, AGENT);
      const agentC = lab.spawnNode(c.ns, AGENT);
      const N = 20;
      await agentA.request('openUdp', { name: 'filtered', address: a.ip, port: PORT, allowedSources: [b.ip] });
      // The control: the same traffic to an unfiltered socket is delivered, so the drops are the filter's.
      await agentA.request('openUdp', { name: 'plain', address: a.ip, port: PORT + 1 });
      const before = await udpInErrors(lab, a.ns);

      await agentC.request('sendUdp', { address: a.ip, port: PORT, count: N, text: 'c' });
      await agentC.request('sendUdp', { address: a.ip, port: PORT + 1, count: N, text: 'c' });
      await agentB.request('sendUdp', { address: a.ip, port: PORT, count: N, text: 'b' });
      assert.deepEqual(
        await waitReceived(agentA, 'plain', N),
        texts('c', N).map((text) => ({ from: c.ip, text })),
      );
      assert.deepEqual(
        await waitReceived(agentA, 'filtered', N),
        texts('b', N).map((text) => ({ from: b.ip, text })),
      );
      const dropped = async () => (await udpInErrors(lab, a.ns)) - before;
      await waitFor(`InErrors to grow by ${N}`, async () => (await dropped()) >= N, { timeoutMs: 2000, everyMs: 100 });
      await sleep(200);
      assert.equal((await received(agentA, 'filtered')).length, N, 'nothing from c came through late');
      assert.equal(await dropped(), N);

      // Replaced in place: now c is a member and b is not.
      await agentA.request('setAllowedSources', { name: 'filtered', allowedSources: [c.ip] });
      await agentB.request('sendUdp', { address: a.ip, port: PORT, count: N, text: 'b2' });
      await agentC.request('sendUdp', { address: a.ip, port: PORT, count: N, text: 'c2' });
      await waitReceived(agentA, 'filtered', 2 * N);
      await sleep(200);
      const all = await received(agentA, 'filtered');
      assert.deepEqual(
        all.slice(N),
        texts('c2', N).map((text) => ({ from: c.ip, text })),
      );
      assert.equal(all.length, 2 * N);
      assert.equal(await dropped(), 2 * N);
    }),
  );

  it("names the errno when the port is taken or the address is not the host's", opts, () =>
    withLab(async (lab) => {
      const a = host(await lab.lan(['a']), 'a');
      const agent = lab.spawnNode(a.ns, AGENT);
      const open = (name: string, address: string) =>
        agent.request('openUdp', { name, address, port: PORT, allowedSources: [] });
      await open('first', a.ip);
      await assert.rejects(
        open('second', a.ip),
        new RegExp(`VIPD_BIND_FAILED cannot bind a UDP socket to ${a.ip.replace(/\./g, '\\.')}:${PORT}: .*EADDRINUSE`),
      );
      await assert.rejects(
        open('elsewhere', '10.77.0.200'),
        /VIPD_BIND_FAILED cannot bind a UDP socket to 10\.77\.0\.200:7580: .*EADDRNOTAVAIL.*an address of this host/,
      );
    }),
  );
});

describe('the ARP sender filter on a packet socket', () => {
  it('delivers only ARP frames claiming the address; setArpSender switches it', opts, () =>
    withLab(async (lab) => {
      const hosts = await lab.lan(['a', 'c']);
      const a = host(hosts, 'a');
      const c = host(hosts, 'c');
      const listener = lab.spawnNode(a.ns, AGENT);
      const sender = lab.spawnNode(c.ns, AGENT);
      await listener.request('openArp', { name: 'vip', interface: 'eth0', arpSender: VIP });
      // The control: an unfiltered socket on the same interface sees every frame.
      await listener.request('openArp', { name: 'all', interface: 'eth0' });

      const other = '10.77.0.101';
      const claims = (ip: string) => [buildGratuitousArp('request', c.mac, ip), buildGratuitousArp('reply', c.mac, ip)];
      const whoHasVip = buildGratuitousArp('request', c.mac, c.ip);
      Buffer.from([10, 77, 0, 100]).copy(whoHasVip, 38); // about the VIP, from c: the VIP is the target
      const notIpv4 = buildGratuitousArp('request', c.mac, VIP);
      notIpv4.writeUInt16BE(0x86dd, 16); // the VIP's bytes as sender, but the protocol type is not IPv4
      const noise = [...claims(other), buildGratuitousArp('reply', c.mac, c.ip), whoHasVip, notIpv4];
      const hex = (frames: Buffer[]) => frames.map((f) => f.toString('hex'));
      const frames = (name: string) => listener.request<string[]>('arpFrames', { name });
      /** Sends `batch` from c and waits until the unfiltered socket has seen all of it. */
      const deliver = async (batch: Buffer[]) => {
        const seen = (await frames('all')).length;
        await sender.request('sendFrames', { interface: 'eth0', frames: hex(batch) });
        await waitFor(
          `a to see ${batch.length} frames`,
          async () => {
            const all = (await frames('all')).slice(seen);
            return hex(batch).every((f) => all.includes(f));
          },
          { timeoutMs: 5000, everyMs: 100 },
        );
        await sleep(200);
      };

      await deliver([...noise, ...claims(VIP)]);
      assert.deepEqual(await frames('vip'), hex(claims(VIP)));

      await listener.request('setArpSender', { name: 'vip', arpSender: other });
      await deliver([...claims(VIP), ...claims(other)]);
      assert.deepEqual((await frames('vip')).slice(2), hex(claims(other)));
    }),
  );
});
