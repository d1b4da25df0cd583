/**
 * An endpoint's "HOST:PORT" text, both ways and for either family: the form a listener is written in
 * the config ("0.0.0.0:6443", "[::]:6443", "[fd00::1]:6443": an IPv6 address in brackets, as in a
 * URL, since its own colons would swallow the port), and the form every message, log line and
 * /status shows an endpoint in, which parses back. IPv6 addresses are kept in their RFC 5952 text
 * (lowercase, no leading zeros, the longest zero run as "::"), the text the relay reports them in
 * (src/native/relay-engine.ts), so two spellings of one address compare equal as strings.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** "10.0.0.1:6443", "[fd00::1]:6443". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * An IPv6 address (no brackets) in its RFC 5952 text, or undefined: not IPv6, with a zone
 * ("fe80::1%eth0": nothing here takes one), or IPv4-mapped ("::ffff:10.0.0.1", which is the IPv4
 * address and is written as such). The WHATWG URL parser's serialization of an IPv6 host is RFC 5952's.
 */
export function canonicalIpv6(text: string): string | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let host: string;
  try {
    host = new URL(`http://[${text}]/`).hostname;
  } catch {
    return undefined;
  }
  const canonical = host.slice(1, -1);
  return /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(canonical) ? undefined : canonical;
}

/** An IPv4 or IPv6 address as the config keeps it (IPv6 canonical), or undefined. */
export function canonicalAddress(text: string): string | undefined {
  return isIPv4(text) ? text : canonicalIpv6(text);
}

/** An IPv6 host written without brackets (":::6443", "fd00::1:6443"): the text has two colons or more. */
export function unbracketedIpv6(text: string): boolean {
  return !text.startsWith('[') && (text.match(/:/g)?.length ?? 0) >= 2;
}

/**
 * "ADDRESS:PORT" with a dotted-quad IPv4 address, or "[ADDRESS]:PORT" with an IPv6 one when `ipv6`,
 * the port 1-65535; undefined for anything else.
 */
export function parseHostPort(text: string, ipv6: boolean): { host: string; port: number } | undefined {
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  const v6 = ipv6 ? /^\[([^\]]*)\]:(\d{1,5})$/.exec(text) : null;
  const host = v4 !== null ? (isIPv4(v4[1] ?? '') ? v4[1] : undefined) : canonicalIpv6(v6?.[1] ?? '');
  const port = Number((v4 ?? v6)?.[2]);
  if (host === undefined || !(port >= 1 && port <= 65535)) return undefined;
  return { host, port };
}
