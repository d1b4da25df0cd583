/**
 * The little of rtnetlink vipd needs (links and their IPv4 and IPv6 addresses), over the `netlink` package, shared
 * by the VIP owner and the link watch. Never shells out to `ip`: a missing binary in a distroless
 * image, or a slow fork under memory pressure, must not stall a takeover.
 */
import { createRtNetlink, type RtNetlinkSocket, type rt } from 'netlink';
import { describeError, VipdError } from '../errors';
import { formatMac } from './arp';
import { formatIpv6 } from './ndisc';

export type { RtNetlinkSocket };

export const AF_INET = 2;
export const AF_INET6 = 10;
/** A kernel that does not answer in this long is wedged; fail the call rather than the daemon. */
export const NETLINK_TIMEOUT_MS = 5000;

/**
 * `onError` is required: the socket is an EventEmitter, and an asynchronous receive error (ENOBUFS
 * when multicast events overflow the buffer) with no listener would crash the daemon.
 */
export function openRtnl(onError: (err: Error) => void): RtNetlinkSocket {
  let sock: RtNetlinkSocket;
  try {
    sock = createRtNetlink();
  } catch (err) {
    throw new VipdError('VIPD_NETLINK', `cannot open an rtnetlink socket: ${describeError(err)}`, { cause: err });
  }
  sock.socket.on('error', onError);
  return sock;
}

export function closeRtnl(sock: RtNetlinkSocket): void {
  sock.socket.close();
}

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** Lower-case "aa:bb:..."; '' for links without one. */
  readonly mac: string;
  /**
   * Administratively up and operationally running (IFF_UP and IFF_RUNNING, i.e. carrier): a cable
   * pull or a peer veth going down clears RUNNING while UP stays set.
   */
  readonly up: boolean;
}

export function linkInfo(msg: rt.LinkMessage): LinkInfo | undefined {
  const { index, flags } = msg.data;
  const name = msg.attrs.ifname;
  if (index === undefined || name === undefined) return undefined;
  const address = msg.attrs.address;
  return {
    index,
    name,
    mac: address !== undefined && address.length === 6 ? formatMac(address) : '',
    up: flags?.up === true && flags.running === true,
  };
}

/** The link called `ifname` in this process's network namespace, or undefined if there is none. */
export async function getLinkByName(sock: RtNetlinkSocket, ifname: string): Promise<LinkInfo | undefined> {
  try {
    const replies = await sock.getLink({}, { ifname }, { timeout: NETLINK_TIMEOUT_MS });
    for (const reply of replies) {
      const info = linkInfo(reply);
      if (info !== undefined && info.name === ifname) return info;
    }
    return undefined;
  } catch (err) {
    if (netlinkErrno(err) === 'ENODEV') return undefined;
    throw new VipdError('VIPD_NETLINK', `cannot read link ${ifname}: ${describeError(err)}`, { cause: err });
  }
}

export interface IfAddress {
  readonly index: number;
  /** Dotted quad, or IPv6 in canonical text. */
  readonly address: string;
  readonly prefix: number;
}

/** The addresses of `family` (AF_INET or AF_INET6) on link `index`. */
export async function getAddresses(sock: RtNetlinkSocket, index: number, family: number): Promise<IfAddress[]> {
  let replies: rt.AddressMessage[];
  try {
    replies = await sock.getAddresses({ family, index }, {}, { timeout: NETLINK_TIMEOUT_MS });
  } catch (err) {
    throw new VipdError('VIPD_NETLINK', `cannot list the addresses of link ${index}: ${describeError(err)}`, {
      cause: err,
    });
  }
  const out: IfAddress[] = [];
  const length = family === AF_INET6 ? 16 : 4;
  // Without strict checking the kernel ignores the dump filter, so filter here.
  for (const { data, attrs } of replies) {
    const local = attrs.local ?? attrs.address;
    if (data.family !== family || data.index !== index || local === undefined || local.length !== length) continue;
    const address = family === AF_INET6 ? formatIpv6(local) : Array.from(local).join('.');
    out.push({ index, address, prefix: data.prefixlen ?? length * 8 });
  }
  return out;
}

/**
 * The errno name of a refused request ("EEXIST"), or undefined. The netlink package reports a
 * kernel NLMSG_ERROR only as the text "Request rejected: EEXIST".
 */
export function netlinkErrno(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as Error & { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  return /Request rejected: ([A-Z0-9]+)/.exec(err.message)?.[1];
}
