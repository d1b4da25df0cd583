/**
 * IPv6 and dual stack in the config: IPv6 peers and VIPs are accepted and canonicalised, a
 * dual-stack pair is `vip.addresses`, and every address rule has its IPv6 counterpart, each error
 * naming the field (exit 2 through parseConfigText's ConfigError).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../src/config/load';
import { configWarnings } from '../src/config/warnings';
import { ConfigError } from '../src/errors';

const v6 = (vip: string, peers = ['fd00:10::11', 'fd00:10::12', 'fd00:10::13']) => `
nodeName: cp1
peers:
${peers.map((a, i) => `  - { name: cp${i + 1}, address: "${a}" }`).join('\n')}
vip: ${vip}
election:
  secretFile: /x
`;

const parse = (text: string) => parseConfigText(text, 'test.yaml', { readSecret: false }).config;

function problems(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, 2);
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

function hasProblem(text: string, field: string, words: string): void {
  const p = problems(text);
  assert.ok(
    p.some((l) => (l.startsWith(`${field}:`) || l.startsWith(`${field} (line`)) && l.includes(words)),
    `expected "${field}: ...${words}..." in:\n${p.join('\n')}`,
  );
}

describe('config: IPv6 and dual stack', () => {
  it('an IPv6-only cluster: IPv6 peers and VIP, canonical text (as the kernel reports a source)', () => {
    const c = parse(
      v6('{ address: "FD00:10:0:0::0100/64", interface: eth0 }', ['FD00:10::11', 'fd00:10::12', 'fd00:10::13']),
    );
    assert.equal(c.vip.address, 'fd00:10::100/64');
    assert.deepEqual(c.vip.addresses, ['fd00:10::100/64']);
    assert.deepEqual(c.vipAddress, { ip: 'fd00:10::100', prefixLength: 64, family: 6 });
    assert.equal(c.peers[0]?.address, 'fd00:10::11');
    assert.equal(c.self.address, 'fd00:10::11');
  });

  it('dual stack: vip.addresses with one VIP of each family, the first the primary', () => {
    const c = parse(v6('{ addresses: ["fd00:10::100/64", 10.0.0.100/24], interface: eth0 }'));
    assert.equal(c.vip.address, 'fd00:10::100/64');
    assert.deepEqual(
      c.vipAddresses.map((v) => [v.ip, v.family]),
      [
        ['fd00:10::100', 6],
        ['10.0.0.100', 4],
      ],
    );
    // An IPv4 cluster may carry the IPv6 VIP too (the election's family is the peers').
    const four = parse(
      v6('{ addresses: [10.0.0.100/24, "fd00:10::100/64"] }', ['10.0.0.11', '10.0.0.12', '10.0.0.13']),
    );
    assert.deepEqual(four.vip.addresses, ['10.0.0.100/24', 'fd00:10::100/64']);
  });

  it('vip: address or addresses, not both, not neither; at most one VIP per family', () => {
    hasProblem(v6('{ address: "fd00:10::100/64", addresses: [10.0.0.100/24] }'), 'vip.addresses', 'not both');
    hasProblem(v6('{ interface: eth0 }'), 'vip.address', 'expected the VIP');
    hasProblem(v6('{ addresses: ["fd00:10::100/64", "fd00:10::101/64"] }'), 'vip.addresses[1]', 'two IPv6 VIPs');
    hasProblem(v6('{ addresses: [] }'), 'vip.addresses', 'one or two');
    hasProblem(v6('{ address: "fd00:10::100" }'), 'vip.address', 'with a prefix length');
  });

  it('IPv6 special addresses: unspecified, loopback, multicast, link-local, the Subnet-Router anycast', () => {
    hasProblem(v6('{ address: "::/64" }'), 'vip.address', 'unspecified');
    hasProblem(v6('{ address: "::1/128" }'), 'vip.address', 'loopback');
    hasProblem(v6('{ address: "ff02::5/64" }'), 'vip.address', 'multicast');
    hasProblem(v6('{ address: "fe80::5/64" }'), 'vip.address', 'link-local');
    hasProblem(v6('{ address: "fd00:10::/64" }'), 'vip.address', 'Subnet-Router anycast');
    hasProblem(v6('{ addresses: [10.0.0.100/24, "fe80::5/64"] }'), 'vip.addresses[1]', 'link-local');
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', 'fe80::12', 'fd00:10::13']),
      'peers[1].address',
      'link-local',
    );
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', '::', 'fd00:10::13']),
      'peers[1].address',
      'unspecified',
    );
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', 'fd00:10::', 'fd00:10::13']),
      'peers[1].address',
      'network',
    );
  });

  it('one family for the election: a member of the other family is named', () => {
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', '10.0.0.12', 'fd00:10::13']),
      'peers[1].address',
      'an IPv4 address among IPv6 members',
    );
  });

  it('the VIP may not be a peer, in any spelling', () => {
    hasProblem(v6('{ address: "FD00:10:0::11/64" }'), 'vip.address', "a peer's own address");
    hasProblem(v6('{ addresses: [10.0.0.100/24, "fd00:10::12/64"] }'), 'vip.addresses[1]', "a peer's own address");
  });

  it('the default frontend listens on [::] when anything is IPv6; frontends as written stay, with a warning', () => {
    assert.deepEqual(parse(v6('{ address: "fd00:10::100/64" }')).proxy.frontends[0]?.bind, { host: '::', port: 6443 });
    const four = v6('{ address: 10.0.0.100/24 }', ['10.0.0.11', '10.0.0.12', '10.0.0.13']);
    assert.deepEqual(parse(four).proxy.frontends[0]?.bind, { host: '0.0.0.0', port: 6443 });
    const dual = v6('{ addresses: [10.0.0.100/24, "fd00:10::100/64"] }', ['10.0.0.11', '10.0.0.12', '10.0.0.13']);
    assert.deepEqual(parse(dual).proxy.frontends[0]?.bind, { host: '::', port: 6443 });
    assert.deepEqual(configWarnings(parse(dual)), []);
    const written = `${dual}proxy:\n  frontends: [{ name: api, bind: "0.0.0.0:6443" }]\n`;
    const c = parse(written);
    assert.deepEqual(c.proxy.frontends[0]?.bind, { host: '0.0.0.0', port: 6443 });
    const warned = configWarnings(c);
    assert.equal(warned.length, 1, warned.join('\n'));
    assert.match(
      warned[0] ?? '',
      /^vip\.addresses\[1\]: no frontend in proxy\.frontends takes connections to fd00:10::100/,
    );
  });

  it('IPv4-mapped and IPv4-compatible forms are refused for peers and VIPs: write the IPv4 address', () => {
    hasProblem(v6('{ address: "::ffff:10.0.0.100/120" }'), 'vip.address', '10.0.0.100');
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', '::ffff:10.0.0.12', 'fd00:10::13']),
      'peers[1].address',
      '10.0.0.12',
    );
  });

  it('a link-local health.listen is refused offline, as binds are', () => {
    hasProblem(
      `${v6('{ address: "fd00:10::100/64" }')}health: { listen: "[fe80::1]:7581" }\n`,
      'health.listen',
      'link-local',
    );
  });

  it('at most 33 IPv6 members (the kernel source filter), named as a config problem rather than at bind', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `fd00:10::${(i + 1).toString(16)}`);
    parse(v6('{ address: "fd00:10::ff00/64" }', many(33)));
    hasProblem(v6('{ address: "fd00:10::ff00/64" }', many(34)), 'peers', 'more than the 33 an IPv6 election takes');
  });

  it('a peer that is not an address names both forms it could take', () => {
    hasProblem(
      v6('{ address: "fd00:10::100/64" }', ['fd00:10::11', 'fd00:10::zz', 'fd00:10::13']),
      'peers[1].address',
      'IPv4 or IPv6',
    );
  });
});
