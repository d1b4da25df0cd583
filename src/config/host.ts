/**
 * The checks that need the host a config runs on: its interfaces and addresses, the files the
 * config names, and the state directory the daemon creates. `vipd run` and `vipd check` both go through hostChecks(), so a file `vipd check`
 * passes on a node does not fail `vipd run` there; `vipd check --offline` (a file prepared on
 * another machine) skips them.
 *
 * The host is read into a HostView by readHost() and passed in, so a test gives a table of its own.
 * Addresses come from os.networkInterfaces(), interface names from /sys/class/net as well: libuv
 * lists only interfaces that are up and running, so an interface whose link is down exists but
 * shows no address. The address checks say so rather than call such an address foreign.
 */
import { readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { readCaFile } from './ca-file';
import type { FileConfig } from './config';
import { formatHostPort } from './host-port';
import { familyOf, inSubnet, isWildcard, sameAddress, specialAddress } from './ip';
import { probeStateDir, stateDirProblem } from './state-dir';

export interface HostAddress {
  readonly address: string;
  readonly prefixLength: number;
}

export interface HostInterface {
  readonly name: string;
  /** A loopback interface: the whole subnet of its address is local (127.0.0.1/8 answers 127.0.0.2). */
  readonly loopback: boolean;
  /** Its addresses (IPv4 and IPv6); undefined when they cannot be read (the interface is not up and running). */
  readonly addresses: readonly HostAddress[] | undefined;
}

export interface HostView {
  readonly interfaces: readonly HostInterface[];
  /**
   * Why `election.stateDir` could not be created and written here (the error the daemon's start
   * would throw), or undefined: probeStateDir on a real host.
   */
  readonly stateDirError: (dir: string) => unknown;
}

export interface HostFindings {
  /** vip.interface as set, or the interface carrying this node's address; undefined with a problem. */
  readonly interface: string | undefined;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

/** This host's interfaces and addresses, and its file system for the state directory. */
export function readHost(): HostView {
  const table = networkInterfaces();
  let listed: string[] = [];
  try {
    // Interfaces are links (symlinks into /sys/devices); bonding_masters and the like are files.
    listed = readdirSync('/sys/class/net', { withFileTypes: true })
      .filter((d) => d.isSymbolicLink() || d.isDirectory())
      .map((d) => d.name);
  } catch {
    // No sysfs (a container without /sys): the interfaces that are up are all we can know.
  }
  const names = [...new Set([...Object.keys(table), ...listed])].sort();
  return {
    stateDirError: probeStateDir,
    interfaces: names.map((name): HostInterface => {
      const entries = table[name];
      if (entries === undefined) return { name, loopback: false, addresses: undefined };
      return {
        name,
        loopback: entries.some((e) => e.internal),
        // IPv6 link-local addresses carry a zone and can be nobody's member address or VIP.
        addresses: entries
          .filter((e) => e.family === 'IPv4' || specialAddress(e.address) !== 'link-local')
          .map((e) => ({ address: e.address, prefixLength: Number(e.cidr?.split('/')[1] ?? 0) })),
      };
    }),
  };
}

/** The interface `ip` is local on: one of its addresses, or inside a loopback interface's subnet. */
function localOn(host: HostView, ip: string): HostInterface | undefined {
  return (
    host.interfaces.find((i) => i.addresses?.some((a) => sameAddress(a.address, ip))) ??
    host.interfaces.find((i) => i.loopback && i.addresses?.some((a) => inSubnet(ip, a.address, a.prefixLength)))
  );
}

/** What `ip` was looked for among: the addresses of its family. */
function listAddresses(host: HostView, ip = ''): string {
  const family = familyOf(ip === '' ? '0.0.0.0' : ip);
  const all = host.interfaces.flatMap((i) =>
    (i.addresses ?? []).filter((a) => familyOf(a.address) === family).map((a) => `${a.address} on ${i.name}`),
  );
  const down = host.interfaces.filter((i) => i.addresses === undefined).map((i) => i.name);
  return (
    `its addresses: ${all.length > 0 ? all.join(', ') : 'none'}` +
    (down.length > 0 ? `; ${down.join(', ')} show${down.length === 1 ? 's' : ''} none, not being up` : '')
  );
}

export function hostChecks(config: FileConfig, host: HostView): HostFindings {
  const self = config.self;
  const selfField = `peers[${config.peers.indexOf(self)}].address`;
  if (self.role === 'witness') return witnessChecks(config, host, selfField);
  const problems: string[] = [];
  const warnings: string[] = [];

  let iface: HostInterface | undefined;
  if (config.vip.interface !== undefined) {
    iface = host.interfaces.find((i) => i.name === config.vip.interface);
    if (iface === undefined) {
      problems.push(
        `vip.interface: got "${config.vip.interface}", which is not an interface of this host ` +
          `(it has: ${host.interfaces.map((i) => i.name).join(', ') || 'none'})`,
      );
    }
  } else {
    iface = localOn(host, self.address);
    if (iface === undefined) {
      problems.push(
        `vip.interface: not set, and no interface of this host carries this node's address ` +
          `"${self.address}" (${selfField}, ${config.nodeName}) to take it from (${listAddresses(host, self.address)}); ` +
          'set vip.interface, or correct the address',
      );
    }
  }
  // With the VIP's interface down its addresses cannot be read: an address that should be there is
  // unconfirmed, not foreign (a node may start with its link down, and waits in FAULT).
  const blind = iface !== undefined && iface.addresses === undefined;
  const foreign = (field: string, ip: string, value: string, note = '') => {
    if (localOn(host, ip) !== undefined) return;
    if (blind) {
      warnings.push(
        `${field}: cannot confirm that "${ip}" is an address of this host: ${iface?.name} is down ` +
          'and shows no address',
      );
    } else {
      problems.push(
        `${field}: got "${value}"${note}, which is not an address of this host (${listAddresses(host, ip)})`,
      );
    }
  };
  // vip.interface unset already said this address is nowhere.
  if (config.vip.interface !== undefined) {
    foreign(selfField, self.address, self.address, ` for this node (${config.nodeName}; the election binds it)`);
  }
  const listeners = [
    { field: 'health.listen', bind: config.health.listen },
    ...(config.proxy.enabled
      ? config.proxy.frontends.map((f, i) => ({ field: `proxy.frontends[${i}].bind`, bind: f.bind }))
      : []),
  ];
  for (const { field, bind } of listeners) {
    // The wildcard is always local; the VIP is refused whatever the host (address-rules.ts).
    if (isWildcard(bind.host) || config.vipAddresses.some((v) => sameAddress(v.ip, bind.host))) continue;
    foreign(field, bind.host, formatHostPort(bind.host, bind.port));
  }

  // A loopback interface has no segment to share a subnet with (a dry run or a test on lo).
  const addresses = iface?.addresses;
  if (iface !== undefined && addresses !== undefined && !iface.loopback) {
    config.vipAddresses.forEach(({ ip, family }, i) => {
      if (addresses.some((a) => inSubnet(ip, a.address, a.prefixLength))) return;
      const field = config.vipAddresses.length > 1 ? `vip.addresses[${i}]` : 'vip.address';
      const sameFamily = addresses.filter((a) => familyOf(a.address) === family);
      const subnets = sameFamily.map((a) => `${a.address}/${a.prefixLength}`).join(', ') || `no IPv${family} address`;
      const resolution = family === 6 ? 'Neighbor Discovery' : 'ARP';
      warnings.push(
        `${field}: "${config.vip.addresses[i]}" is outside the subnets of ${iface.name} (${subnets}): ` +
          `hosts on ${iface.name}'s segment reach it only through a route to it, not by ${resolution}; ` +
          `use a free address of ${iface.name}'s subnet, or check vip.interface`,
      );
    });
  }

  problems.push(...fileProblems(config));
  const { stateDir } = config.election;
  const stateDirError = host.stateDirError(stateDir);
  if (stateDirError !== undefined) problems.push(stateDirProblem(stateDir, stateDirError));
  return { interface: iface?.name, problems, warnings };
}

/**
 * A witness's host: it holds no VIP and runs no balancer, so neither the VIP's interface nor the
 * frontends concern it (it may sit on another network): its own address (the election binds it),
 * the health endpoint's, and the state directory. The interface reported is vip.interface as
 * written, or none.
 */
function witnessChecks(config: FileConfig, host: HostView, selfField: string): HostFindings {
  const problems: string[] = [];
  const self = config.self;
  if (localOn(host, self.address) === undefined) {
    problems.push(
      `${selfField}: got "${self.address}" for this node (${config.nodeName}, a witness; the election binds it), ` +
        `which is not an address of this host (${listAddresses(host, self.address)})`,
    );
  }
  const { host: healthHost, port } = config.health.listen;
  if (!isWildcard(healthHost) && localOn(host, healthHost) === undefined) {
    problems.push(
      `health.listen: got "${formatHostPort(healthHost, port)}", which is not an address of this host ` +
        `(${listAddresses(host, healthHost)})`,
    );
  }
  const { stateDir } = config.election;
  const stateDirError = host.stateDirError(stateDir);
  if (stateDirError !== undefined) problems.push(stateDirProblem(stateDir, stateDirError));
  return { interface: config.vip.interface ?? '', problems, warnings: [] };
}

/**
 * The files a config names besides the secret (which the loader reads): each CA bundle must be
 * readable, and hold a certificate when it is used, since Node ignores a bundle that holds none
 * and every check would then fail verification.
 */
function fileProblems(config: FileConfig): string[] {
  if (!config.proxy.enabled) return [];
  const problems: string[] = [];
  config.proxy.frontends.forEach((f, i) => {
    const { caFile, verify } = f.healthCheck.tls;
    if (caFile === undefined) return;
    const field = `proxy.frontends[${i}].healthCheck.tls.caFile`;
    const { problem } = readCaFile(caFile, field, verify && f.healthCheck.type === 'https');
    if (problem !== undefined) problems.push(problem);
  });
  return problems;
}
