/**
 * Config-only rules about addresses and ports that the schema cannot see field by field: the VIP
 * and the peers must be addresses a host can own, and the listeners must neither collide nor
 * relay to themselves. Each is something `vipd run` would fail on or silently get wrong; the file
 * alone decides them, so `vipd check --offline` reports them too. What needs the host (is this
 * address mine?) is in host.ts.
 */
import { formatHostPort } from './host-port';
import { familyOf, isWildcard, specialAddress, subnetEdge } from './ip';
import type { ParsedConfig, Peer } from './schema';

type HostPort = { readonly host: string; readonly port: number };

const show = (hp: HostPort) => `"${formatHostPort(hp.host, hp.port)}"`;
const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

/**
 * A listener on `host` takes connections to `address`: its own address; "0.0.0.0", every IPv4
 * address; "::", every address of both families (relay.cc binds it dual-stack, as Linux binds a
 * Node listener on "::" too). Addresses are the schema's canonical text (IPv6 compressed).
 */
function covers(host: string, address: string): boolean {
  return host === address || host === '::' || (host === '0.0.0.0' && !address.includes(':'));
}

/** Two TCP listeners collide on one port when either takes the other's address: Linux refuses the second bind. */
function overlaps(a: HostPort, b: HostPort): boolean {
  return a.port === b.port && (covers(a.host, b.host) || covers(b.host, a.host));
}

/** A listener at `listen` accepts connections to address:port of this node. */
function accepts(listen: HostPort, address: string, port: number, self: Peer): boolean {
  if (listen.port !== port) return false;
  if (listen.host === address) return true;
  const local = address === self.address || address === '::1' || specialAddress(address) === 'loopback';
  return isWildcard(listen.host) && covers(listen.host, address) && local;
}

/**
 * An IPv6 link-local address (fe80::/10) means nothing without a zone ("%eth0"), which the config
 * does not take: the bind or connect fails (EINVAL).
 */
const linkLocal = (address: string) => specialAddress(address) === 'link-local';

/**
 * A listener bound to the VIP fails to start: vipd opens its listeners before it joins the
 * election, and the VIP is on a node only while that node is master. HAProxy setups bind the VIP
 * with net.ipv4.ip_nonlocal_bind; the message names it without sending anyone to set it.
 */
function vipBindProblem(field: string, listen: HostPort, vip: string): string | undefined {
  if (listen.host !== vip) return undefined;
  return (
    `${field}: got ${show(listen)}, the VIP, which is on a node only while it is master, and vipd listens ` +
    'before it joins the election: the bind fails (EADDRNOTAVAIL) on every node, unless ' +
    'net.ipv4.ip_nonlocal_bind is set, which vipd does not need; ' +
    `bind "0.0.0.0:${listen.port}" (or this node's own address) instead: that listener takes the VIP's ` +
    'connections as soon as the VIP arrives, with nothing to rebind on a failover'
  );
}

export function addressProblems(data: ParsedConfig, self: Peer | undefined): string[] {
  const problems: string[] = [];
  const vips = data.vip.addresses.map((cidr, i) => {
    const [ip = '', prefixText = '32'] = cidr.split('/');
    const field = data.vip.addresses.length > 1 ? `vip.addresses[${i}]` : 'vip.address';
    return { cidr, ip, prefixLength: Number(prefixText), field };
  });

  for (const v of vips) {
    const vipSpecial = specialAddress(v.ip);
    if (vipSpecial !== undefined) {
      problems.push(
        `${v.field}: got "${v.cidr}", ${article(vipSpecial)} ${vipSpecial} address; ` +
          "the VIP must be an unused address on the peers' segment",
      );
    }
    const vipEdge = subnetEdge(v.ip, v.ip, v.prefixLength);
    if (vipEdge !== undefined) {
      const what = familyOf(v.ip) === 6 ? 'the Subnet-Router anycast address of its subnet, which routers answer' : '';
      problems.push(
        `${v.field}: got "${v.cidr}", ${what || `the ${vipEdge} address of its own subnet`}, which no host ` +
          'can answer as its own; pick a host address of the subnet',
      );
    }
  }

  const loopbackPeers = data.peers.filter((p) => specialAddress(p.address) === 'loopback');
  data.peers.forEach((p, i) => {
    const special = specialAddress(p.address);
    if (special === 'unspecified' || special === 'multicast' || special === 'broadcast' || special === 'link-local') {
      problems.push(
        `peers[${i}].address: got "${p.address}", ${article(special)} ${special} ` +
          'address; each member needs the unicast address its heartbeats come from' +
          (special === 'link-local' ? ' (a link-local one needs a zone, which heartbeats cannot name)' : ''),
      );
    } else if (special === 'loopback' && loopbackPeers.length < data.peers.length) {
      problems.push(
        `peers[${i}].address: got "${p.address}", a loopback address, beside members on other addresses: ` +
          'the others cannot reach it; use the address the other members reach this one on',
      );
    } else {
      for (const v of vips) {
        const edge = subnetEdge(p.address, v.ip, v.prefixLength);
        if (edge !== undefined) {
          problems.push(
            `peers[${i}].address: got "${p.address}", the ${edge} address of the VIP's subnet ` +
              `(${v.cidr}), which no host can have as its own`,
          );
        }
      }
    }
  });

  const listen = data.health.listen;
  for (const v of vips) {
    const healthOnVip = vipBindProblem('health.listen', listen, v.ip);
    if (healthOnVip !== undefined) problems.push(healthOnVip);
  }
  if (linkLocal(listen.host)) {
    problems.push(
      `health.listen: got ${show(listen)}, an IPv6 link-local address, which needs a zone (%eth0) vipd does ` +
        'not take; use "127.0.0.1:PORT", "[::1]:PORT" or a global or unique local address of this host',
    );
  }

  // A disabled balancer opens no listener: its frontends may describe other nodes (configs/rke2.yaml).
  if (!data.proxy.enabled) return problems;
  const frontends = data.proxy.frontends;
  if (frontends.length === 0) {
    problems.push(
      'proxy.frontends: empty, while proxy.enabled is true: there is nothing to balance; ' +
        'list a frontend, or set proxy.enabled: false to hold the VIP only',
    );
  }
  frontends.forEach((f, i) => {
    const field = `proxy.frontends[${i}]`;
    for (const v of vips) {
      const onVip = vipBindProblem(`${field}.bind`, f.bind, v.ip);
      if (onVip !== undefined) problems.push(onVip);
    }
    if (linkLocal(f.bind.host)) {
      problems.push(
        `${field}.bind: got ${show(f.bind)}, an IPv6 link-local address, which needs a zone (%eth0) vipd does ` +
          `not take; bind "[::]:${f.bind.port}" or a global or unique local (fd00::/8) address of this host`,
      );
    }
    f.backends?.forEach((b, k) => {
      if (!linkLocal(b.address)) return;
      problems.push(
        `${field}.backends[${k}].address: got "${b.address}", an IPv6 link-local address, which needs a zone ` +
          '(%eth0) vipd does not take; use a global or unique local (fd00::/8) address of the backend',
      );
    });
    if (overlaps(listen, f.bind)) {
      problems.push(
        `health.listen: got ${show(listen)}, the port ${field}.bind (${show(f.bind)}) listens on; ` +
          'the second listener would fail to bind: give the health endpoint another port',
      );
    }
    if (self === undefined) return;
    if (f.backends === undefined) {
      const loop = frontends.findIndex((g) => accepts(g.bind, self.address, f.backendPort, self));
      const into = frontends[loop];
      if (into !== undefined) {
        problems.push(
          `${field}.backendPort: got ${f.backendPort}, the port proxy.frontends[${loop}] binds ` +
            `(${show(into.bind)}): the backends are every peer on backendPort, this node included, so vipd would ` +
            'relay to itself; set backendPort to the port the apiservers listen on (kubeadm --apiserver-bind-port)',
        );
      }
      return;
    }
    f.backends.forEach((b, k) => {
      const loop = frontends.findIndex((g) => accepts(g.bind, b.address, b.port, self));
      const into = frontends[loop];
      if (into !== undefined) {
        problems.push(
          `${field}.backends[${k}]: got "${formatHostPort(b.address, b.port)}", which is this node's own ` +
            `proxy.frontends[${loop}] (${show(into.bind)}): vipd would relay to itself`,
        );
      }
    });
  });
  return problems;
}
