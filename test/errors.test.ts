/**
 * The error catalogue (src/errors.ts): describeError, the one way an unknown thrown value becomes
 * text in a message, and UsageError, a bad command line told apart from a bad config.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ConfigError, describeError, ExitCode, errnoName, UsageError, VipdError } from '../src/errors';

describe('describeError', () => {
  it('a Node system error is its errno name, whatever its message says', async () => {
    const missing = await readFile('/nonexistent/vipd-test').then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.equal(describeError(missing), 'ENOENT');
    const refused = await new Promise<unknown>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => net.connect(port, '127.0.0.1').once('error', resolve));
      });
    });
    assert.equal(describeError(refused), 'ECONNREFUSED');
    const dns = Object.assign(new Error('getaddrinfo EAI_AGAIN cp1'), { code: 'EAI_AGAIN' });
    assert.equal(describeError(dns), 'EAI_AGAIN');
  });

  it("the native addon's error (errno in code, strerror in message) is its errno name", () => {
    const addon = Object.assign(new Error('send: Operation not permitted'), { code: 'EPERM' });
    assert.equal(describeError(addon), 'EPERM');
    assert.equal(errnoName(addon), 'EPERM');
  });

  it('an error whose code is not an errno name (ERR_*, VIPD_*) is its message', () => {
    const dlopen = Object.assign(new Error('undefined symbol: napi_foo'), { code: 'ERR_DLOPEN_FAILED' });
    assert.equal(describeError(dlopen), 'undefined symbol: napi_foo');
    assert.equal(errnoName(dlopen), undefined);
    const netlink = 'cannot add 10.0.0.100 to eth0: Request rejected: EEXIST';
    assert.equal(describeError(new VipdError('VIPD_NETLINK', netlink)), netlink);
    assert.equal(describeError(new RangeError('not a UDP port: 70000')), 'not a UDP port: 70000');
  });

  it('a thrown value that is not an Error is itself, as text, and describing never throws', () => {
    assert.equal(describeError('boom'), 'boom');
    assert.equal(describeError(42), '42');
    assert.equal(describeError(undefined), 'undefined');
    assert.equal(describeError(null), 'null');
    assert.equal(describeError({ message: 'from a worker' }), 'from a worker', 'an error that crossed a thread');
    assert.equal(describeError(new Error('')), 'Error', 'no message: the name');
    assert.equal(describeError(Object.create(null)), '[object Object]');
    assert.equal(errnoName('ENOENT'), undefined, 'a string is not an error that carries a code');
  });
});

describe('UsageError', () => {
  it('one bad flag: "invalid flag", the flag first; exit 2, code VIPD_USAGE; not a ConfigError', () => {
    const err = UsageError.flags(['--bind-port: got "x", expected an integer from 1 to 65535']);
    assert.equal(err.message, 'invalid flag --bind-port: got "x", expected an integer from 1 to 65535');
    assert.equal(err.code, 'VIPD_USAGE');
    assert.equal(err.exitCode, ExitCode.usage);
    assert.ok(err instanceof VipdError);
    assert.ok(!(err instanceof ConfigError));
    assert.deepEqual(err.problems, ['--bind-port: got "x", expected an integer from 1 to 65535']);
  });

  it('several bad flags: one line each, all at once', () => {
    const err = UsageError.flags(['--vip: missing; expected a CIDR', '--peers: missing; expected name=IPv4 pairs']);
    assert.equal(
      err.message,
      'invalid flags:\n  - --vip: missing; expected a CIDR\n  - --peers: missing; expected name=IPv4 pairs',
    );
    assert.equal(err.problems.length, 2);
  });

  it('a command line wrong as a whole keeps its own words', () => {
    const err = new UsageError('unknown command "nosuch"; see vipd --help');
    assert.equal(err.message, 'unknown command "nosuch"; see vipd --help');
    assert.deepEqual(err.problems, []);
    assert.equal(err.exitCode, 2);
  });
});
