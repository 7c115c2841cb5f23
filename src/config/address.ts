import { isIP } from 'node:net';

/** A parsed `host:port` listen or connect address. `host` is bare (no IPv6 brackets). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const HOSTNAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `host:port`, `[v6]:port`. Returns an explanation instead of throwing so callers can name
 * the flag or config path the value came from. Port 0 is accepted (the OS picks a port).
 */
export function parseHostPort(text: string): HostPort | { error: string } {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  if (trimmed.startsWith('[')) {
    const close = trimmed.indexOf(']');
    if (close < 0 || trimmed[close + 1] !== ':') return { error: 'expected [ipv6]:port' };
    host = trimmed.slice(1, close);
    portText = trimmed.slice(close + 2);
    if (isIP(host) !== 6) return { error: `"${host}" is not an IPv6 address` };
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon <= 0) return { error: 'expected host:port' };
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (host.includes(':')) return { error: 'IPv6 addresses must be written as [addr]:port' };
    if (isIP(host) === 0 && !HOSTNAME_PATTERN.test(host)) return { error: `"${host}" is not an IP address or host name` };
    // All digits and dots is meant as IPv4 (no top-level domain is numeric): 300.1.1.1 is a typo, not a name.
    if (isIP(host) === 0 && /^[\d.]+$/.test(host)) return { error: `"${host}" is not a valid IPv4 address` };
  }
  if (!/^\d{1,5}$/.test(portText)) return { error: `"${portText}" is not a port number` };
  const port = Number(portText);
  if (port > 65535) return { error: `port ${port} is above 65535` };
  return { host, port };
}

/** Formats an address for display and for URLs (`[::1]:8443`). */
export function formatHostPort(address: HostPort): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
