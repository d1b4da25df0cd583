/**
 * The balancer's IPv6 in the config (src/config/schema.ts, host-port.ts, address-rules.ts, host.ts):
 * a frontend's bind in brackets ("[::]:6443", "[fd00::1]:6443") and IPv6 backend addresses, kept in
 * the canonical text the relay reports addresses in; the errors for the forms it refuses, naming
 * the field and showing the expected form; "::" as a wildcard of both families in the collision and
 * relay-to-itself rules; the host check of a frontend bound to a specific IPv6 address.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostView } from '../src/config/host';
import { formatHostPort, parseHostPort } from '../src/config/host-port';
import { effectiveConfigYaml, parseConfigText, resolveOnHost } from '../src/config/load';
import { ConfigError } from '../src/errors';
import { minimalConfig } from './helpers/config-text';

const load = (extra: string) => parseConfigText(minimalConfig('/not/read', extra), 't.yaml', { readSecret: false });

/** The problems a config text is refused with (it must be refused). */
function problems(extra: string): string[] {
  try {
    load(extra);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

const frontend = (fields: string) => `proxy:\n  frontends:\n    - { name: api, ${fields} }\n`;

describe('config: IPv6 frontends and backends accepted', () => {
  it('bind "[::]:6443" and "[fd00::1]:6443"; an IPv6 address kept in its canonical text', () => {
    const cases: [string, { host: string; port: number }][] = [
      ['[::]:6443', { host: '::', port: 6443 }],
      ['[fd00::1]:6443', { host: 'fd00::1', port: 6443 }],
      ['[FD00:0:0:0::01]:16443', { host: 'fd00::1', port: 16443 }],
      ['[2001:db8:0:0:1:0:0:1]:443', { host: '2001:db8::1:0:0:1', port: 443 }],
      ['0.0.0.0:6443', { host: '0.0.0.0', port: 6443 }],
    ];
    for (const [bind, expected] of cases) {
      const { config } = load(frontend(`bind: "${bind}"`));
      assert.deepEqual(config.proxy.frontends[0]?.bind, expected, bind);
    }
  });

  it('backends of either family, IPv6 canonical; the effective config prints the bind bracketed and reads back', () => {
    const { config } = load(
      frontend(
        'bind: "[::]:6443", backends: [' +
          '{ name: a, address: "FD00::000B", port: 9443 }, { name: b, address: 10.0.0.12, port: 9443 }, ' +
          '{ name: c, address: "::1", port: 9443 }]',
      ),
    );
    assert.deepEqual(
      config.proxy.frontends[0]?.backends?.map((b) => b.address),
      ['fd00::b', '10.0.0.12', '::1'],
    );
    const yaml = effectiveConfigYaml(config);
    assert.match(yaml, /bind: "?\[::\]:6443"?/);
    // The printed config is a config: it loads to the same bind (the secret path aside).
    const again = parseConfigText(yaml, 'again.yaml', { readSecret: false }).config;
    assert.deepEqual(again.proxy.frontends[0]?.bind, { host: '::', port: 6443 });
    assert.deepEqual(again.proxy.frontends[0]?.backends, config.proxy.frontends[0]?.backends);
  });

  it('formatHostPort brackets IPv6 only, and parses back', () => {
    assert.equal(formatHostPort('fd00::1', 9443), '[fd00::1]:9443');
    assert.equal(formatHostPort('10.0.0.1', 9443), '10.0.0.1:9443');
    assert.deepEqual(parseHostPort(formatHostPort('fd00::1', 9443), true), { host: 'fd00::1', port: 9443 });
    assert.equal(parseHostPort('[fd00::1]:9443', false), undefined, 'IPv4 only where IPv6 is not taken');
  });
});

describe('config: the IPv6 forms refused, with the field and the expected form', () => {
  it('an unbracketed IPv6 bind: the bracketed form is shown', () => {
    const cases: [string, string][] = [
      [':::6443', '"[::]:6443"'],
      ['fd00::1:6443', '"[fd00::1]:6443"'],
      ['FD00::0001:6443', '"[fd00::1]:6443"'],
    ];
    for (const [bind, shown] of cases) {
      const [problem = '', ...rest] = problems(frontend(`bind: "${bind}"`));
      assert.deepEqual(rest, [], bind);
      assert.ok(problem.startsWith(`proxy.frontends[0].bind (line `), problem);
      assert.ok(
        problem.includes(`got "${bind}", expected "ADDRESS:PORT" with an IPv4 address or "[ADDRESS]:PORT"`),
        problem,
      );
      assert.ok(problem.endsWith(`an IPv6 address goes in brackets: ${shown}`), problem);
    }
  });

  it('a bind that is no address, a zone, an IPv4-mapped address or no port: the forms it takes', () => {
    for (const bind of [
      '[fd00::1]',
      '[10.0.0.1]:6443',
      '[fe80::1%eth0]:6443',
      '[::ffff:10.0.0.1]:6443',
      '[::1]:0',
      '[]:6443',
    ]) {
      const [problem = ''] = problems(frontend(`bind: "${bind}"`));
      assert.match(problem, /^proxy\.frontends\[0\]\.bind \(line \d+\): got "/, bind);
      assert.ok(problem.endsWith('such as "0.0.0.0:6443", "[::]:6443" (IPv6 and IPv4) or "[fd00::1]:6443"'), problem);
    }
  });

  it('a bracketed backend address: the address without them is shown; junk: both families named', () => {
    const [bracketed = ''] = problems(
      frontend('bind: "[::]:6443", backends: [{ name: a, address: "[FD00::1]", port: 9443 }]'),
    );
    assert.match(bracketed, /^proxy\.frontends\[0\]\.backends\[0\]\.address \(line \d+\): got "\[FD00::1\]", /);
    assert.ok(bracketed.endsWith('expected an IPv6 address without brackets: "fd00::1"'), bracketed);
    const [junk = ''] = problems(
      frontend('bind: "[::]:6443", backends: [{ name: a, address: "fd00::g", port: 9443 }]'),
    );
    assert.ok(junk.endsWith('expected an IPv4 or IPv6 address such as "192.168.10.11" or "fd00::11"'), junk);
  });

  it('health.listen: IPv6 in brackets, canonical; unbracketed refused; "[::]" collides with a frontend port', () => {
    assert.deepEqual(load('health: { listen: "[::1]:7581" }\n').config.health.listen, { host: '::1', port: 7581 });
    assert.deepEqual(load('health: { listen: "[FD00::0B]:7581" }\n').config.health.listen, {
      host: 'fd00::b',
      port: 7581,
    });
    const [unbracketed = ''] = problems('health: { listen: ":::7581" }\n');
    assert.match(unbracketed, /^health\.listen \(line \d+\): got ":::7581"/);
    const clash = problems(`${frontend('bind: "0.0.0.0:7581"')}health: { listen: "[::]:7581" }\n`);
    assert.ok(
      clash.some((p) => p.startsWith('health.listen: got "[::]:7581"')),
      clash.join('\n'),
    );
  });

  it('link-local binds and backends: refused, they need a zone', () => {
    const found = problems(frontend('bind: "[fe80::1]:6443", backends: [{ name: a, address: "fe80::2", port: 9443 }]'));
    assert.equal(found.length, 2, found.join('\n'));
    assert.match(found[0] ?? '', /^proxy\.frontends\[0\]\.bind: got "\[fe80::1\]:6443", an IPv6 link-local address/);
    assert.match(found[1] ?? '', /^proxy\.frontends\[0\]\.backends\[0\]\.address: got "fe80::2", an IPv6 link-local/);
  });
});

describe('config: "::" is a wildcard of both families', () => {
  it('health.listen on 127.0.0.1 collides with a frontend on "[::]" (dual stack), not with one on "[::1]" or an IPv6 address', () => {
    const clash = problems(`health: { listen: "127.0.0.1:6443" }\n${frontend('bind: "[::]:6443"')}`);
    assert.deepEqual(clash, [
      'health.listen: got "127.0.0.1:6443", the port proxy.frontends[0].bind ("[::]:6443") listens on; ' +
        'the second listener would fail to bind: give the health endpoint another port',
    ]);
    load(`health: { listen: "127.0.0.1:6443" }\n${frontend('bind: "[::1]:6443"')}`);
    load(`health: { listen: "0.0.0.0:6443" }\n${frontend('bind: "[fd00::1]:6443"')}`);
  });

  it('"[::]:6443" and "0.0.0.0:6443" are two frontends on one port', () => {
    const found = problems(
      'proxy:\n  frontends:\n    - { name: a, bind: "[::]:6443" }\n    - { name: b, bind: "0.0.0.0:6443" }\n',
    );
    assert.deepEqual(found, ['proxy.frontends: two frontends bind port 6443']);
  });

  it('a frontend on "[::]" relays to itself through this node\'s IPv4 or IPv6 loopback, or its own address', () => {
    const own = problems(frontend('bind: "[::]:6443", backendPort: 6443'));
    assert.match(
      own[0] ?? '',
      /^proxy\.frontends\[0\]\.backendPort: got 6443, the port proxy\.frontends\[0\] binds \("\[::\]:6443"\)/,
    );
    const loop6 = problems(frontend('bind: "[::]:6443", backends: [{ name: me, address: "::1", port: 6443 }]'));
    assert.deepEqual(loop6, [
      'proxy.frontends[0].backends[0]: got "[::1]:6443", which is this node\'s own proxy.frontends[0] ("[::]:6443"): ' +
        'vipd would relay to itself',
    ]);
    const loop4 = problems(frontend('bind: "[::]:6443", backends: [{ name: me, address: 127.0.0.1, port: 6443 }]'));
    assert.equal(loop4.length, 1, 'the IPv4 side of the dual-stack listener too');
    // An IPv4 wildcard does not take IPv6 connections.
    load(frontend('bind: "0.0.0.0:6443", backends: [{ name: me, address: "::1", port: 6443 }]'));
  });
});

describe('host checks: a frontend bound to a specific IPv6 address', () => {
  /** cp1's host: 10.0.0.11 and fd00::11 on eth0, lo with both loopbacks. */
  const host: HostView = {
    interfaces: [
      {
        name: 'eth0',
        loopback: false,
        addresses: [
          { address: '10.0.0.11', prefixLength: 24 },
          { address: 'fd00::11', prefixLength: 64 },
        ],
      },
      {
        name: 'lo',
        loopback: true,
        addresses: [
          { address: '127.0.0.1', prefixLength: 8 },
          { address: '::1', prefixLength: 128 },
        ],
      },
    ],
    stateDirError: () => undefined,
  };
  const onHost = (bind: string, view = host) => {
    try {
      resolveOnHost(load(frontend(`bind: "${bind}"`)).config, view);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.problems.filter((p) => !p.startsWith('election.secretFile'));
    }
    return [];
  };

  it('an address of this host passes, written in any case; "[::]" passes on a host without IPv6', () => {
    assert.deepEqual(onHost('[FD00::0011]:6443'), []);
    assert.deepEqual(onHost('[::1]:6443'), []);
    const v4only: HostView = {
      ...host,
      interfaces: host.interfaces.map((i) => ({
        ...i,
        addresses: i.addresses?.filter((a) => !a.address.includes(':')),
      })),
    };
    assert.deepEqual(onHost('[::]:6443', v4only), []);
  });

  it("another address is refused, listing this host's IPv6 addresses", () => {
    assert.deepEqual(onHost('[fd00::99]:6443'), [
      'proxy.frontends[0].bind: got "[fd00::99]:6443", which is not an address of this host ' +
        '(its addresses: fd00::11 on eth0, ::1 on lo)',
    ]);
  });
});
