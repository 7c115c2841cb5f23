import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { listMembers, type MemberView } from '../cli/cluster.js';
import type { ApiConnection } from '../cli/connection.js';
import { NeuwerkError } from '../errors.js';
import { writeFileAtomic } from '../fs-util.js';
import { renderTemplate } from './render.js';

/** The HAProxy template shipped in the package (`templates/haproxy.cfg`). */
export const HAPROXY_TEMPLATE_URL = new URL('../../../templates/haproxy.cfg', import.meta.url);

export const DEFAULT_PROXY_PORT = 3128;
export const DEFAULT_PROXY_BIND = '*:3128';
export const DEFAULT_API_BIND = '*:8443';
export const DEFAULT_STATS_SOCKET = '/run/haproxy/admin.sock';

export interface HaproxyOptions {
  /**
   * Forward proxy port of a member that has not recorded its proxy address (an older node); its
   * host is then the node's management API host.
   */
  readonly proxyPort: number;
  readonly proxyBind: string;
  readonly apiBind: string;
  readonly statsSocket: string;
  /**
   * Send the PROXY protocol (v2) to the forward-proxy servers (`default-server send-proxy-v2` in
   * their backend), never to the management API; checks go to the management API without it.
   */
  readonly sendProxy: boolean;
}

/** HAProxy server names: letters, digits and `-_.:`. */
const SERVER_NAME = /^[A-Za-z0-9_.:-]+$/;

export function loadHaproxyTemplate(): string {
  return readFileSync(HAPROXY_TEMPLATE_URL, 'utf8');
}

/** Members that serve traffic: voters and learners (a candidate/follower/leader is a voter). */
export function servingMembers(members: readonly MemberView[]): MemberView[] {
  return members.filter((m) => m.voter || m.role === 'learner');
}

/**
 * Renders the HAProxy configuration for `members` (servers sorted by node id, so the same
 * membership always gives byte-identical text). A member's forward proxy is its recorded
 * `proxy_addr`; a member that records none (an older node) is assumed at its management API host
 * with `proxyPort`. Health checks go to the member's management API (`/ready` over HTTPS). With
 * `sendProxy` the forward-proxy servers get the PROXY protocol v2 (the checks do not).
 */
export function renderHaproxyConfig(members: readonly MemberView[], options: HaproxyOptions, template = loadHaproxyTemplate()): string {
  for (const [flag, bind] of [['--proxy-bind', options.proxyBind], ['--api-bind', options.apiBind]] as const) {
    const port = /:(\d+)$/.exec(bind)?.[1];
    if (port === undefined || Number(port) < 1 || Number(port) > 65535) throw new NeuwerkError('NW_ERR_USAGE', `${flag}: "${bind}" is not <address>:<port> with a port of 1-65535`);
  }
  const serving = servingMembers(members);
  if (serving.length === 0) throw new NeuwerkError('NW_ERR_API_RESPONSE', 'the membership lists no voter or learner; refusing to render a configuration without servers');
  const servers = serving
    .map((member) => {
      if (!SERVER_NAME.test(member.node_id)) {
        throw new NeuwerkError('NW_ERR_API_RESPONSE', `member id ${JSON.stringify(member.node_id)} is not usable as an HAProxy server name`);
      }
      const http = parseMemberAddress(member, 'http_addr', member.http_addr);
      const proxy = member.proxy_addr === undefined || member.proxy_addr === null ? { host: http.host, port: options.proxyPort } : parseMemberAddress(member, 'proxy_addr', member.proxy_addr);
      return {
        node_id: member.node_id,
        http_addr: formatHostPort(http),
        proxy_addr: formatHostPort(proxy),
        check_host: http.host,
        mgmt_port: http.port,
      };
    })
    .sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0));
  return renderTemplate(template, {
    member_count: servers.length,
    proxy_port: options.proxyPort,
    proxy_bind: options.proxyBind,
    api_bind: options.apiBind,
    stats_socket: options.statsSocket,
    // A block rendered once or not at all: the renderer's values hold no whitespace, so an optional line is a list.
    send_proxy: options.sendProxy ? [{}] : [],
    servers,
  });
}

function parseMemberAddress(member: MemberView, field: string, value: string): { host: string; port: number } {
  const parsed = parseHostPort(value);
  if ('error' in parsed) throw new NeuwerkError('NW_ERR_API_RESPONSE', `member ${member.node_id}: ${field} "${value}" is not host:port (${parsed.error})`);
  return parsed;
}

/** Writes `text` to `path` atomically (mode 0644) unless it already holds exactly that. */
export function writeIfChanged(path: string, text: string): boolean {
  let current: string | null = null;
  try {
    current = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (current === text) return false;
  try {
    writeFileAtomic(path, text, 0o644);
  } catch (err) {
    throw new NeuwerkError('NW_ERR_USAGE', `--output: cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return true;
}

/** Runs `command` with `/bin/sh -c`, its output passed through to stderr; resolves to the exit code. */
export function runReloadCommand(command: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', process.stderr, process.stderr] });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}

/**
 * The membership from the connection's node, else from any member seen earlier (so a watcher
 * survives the loss of the node it was pointed at).
 */
export async function fetchMembers(connection: ApiConnection, known: readonly MemberView[]): Promise<MemberView[]> {
  let lastError: unknown = null;
  const primary = connection.baseUrl.replace('https://', '');
  for (const address of [primary, ...known.map((m) => m.http_addr).filter((a) => a !== primary)]) {
    const peer = address === primary ? connection : connection.sibling(address);
    try {
      return await listMembers(peer);
    } catch (err) {
      lastError = err;
    } finally {
      if (peer !== connection) await peer.close();
    }
  }
  throw lastError;
}

export interface HaproxyRunOptions extends HaproxyOptions {
  readonly output: string | null;
  readonly reloadCommand: string | null;
  readonly watch: boolean;
  readonly intervalMs: number;
  readonly log: (line: string) => void;
  readonly print: (text: string) => void;
}

/**
 * One render (or, with `watch`, a render every `intervalMs` until `signal` aborts). With an output
 * file the text is written only when it changed, and the reload command runs only then.
 */
export async function runHaproxy(connection: ApiConnection, options: HaproxyRunOptions, signal: AbortSignal): Promise<void> {
  const template = loadHaproxyTemplate();
  let known: MemberView[] = [];
  let last: string | null = null;
  let first = true;
  while (!signal.aborted) {
    try {
      known = await fetchMembers(connection, known);
      const text = renderHaproxyConfig(known, options, template);
      if (options.output === null) {
        if (text !== last) options.print(text);
        last = text;
      } else {
        const changed = writeIfChanged(options.output, text);
        if (changed || first) options.log(changed ? 'changed' : 'unchanged');
        if (changed && options.reloadCommand !== null) {
          const code = await runReloadCommand(options.reloadCommand);
          if (code !== 0) {
            if (!options.watch) throw new NeuwerkError('NW_ERR_INTERNAL', `--reload-cmd exited with ${code}`);
            options.log(`warning: --reload-cmd exited with ${code}`);
          }
        }
      }
      first = false;
    } catch (err) {
      if (!options.watch) throw err;
      options.log(`warning: ${(err as Error).message}; keeping the last configuration`);
    }
    if (!options.watch) return;
    await sleep(options.intervalMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
