import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Flags } from '@oclif/core';
import { Agent, request, type Dispatcher } from 'undici';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { chooseConfigPath, DEFAULT_DATA_DIR, DEFAULT_HTTP_BIND, loadConfigFile } from '../config/load.js';
import type { ConfigFile } from '../config/schema.js';
import { NeuwerkError } from '../errors.js';

/** Connection flags shared by every command that talks to the management API (DESIGN §7). */
export const connectionFlags = {
  'http-addr': Flags.string({ description: "Management API host:port (default the local node's, from the config file, else 127.0.0.1:8443)." }),
  ca: Flags.string({ description: 'CA certificate (PEM) that signed the API certificate (default <data-dir>/http-tls/ca.crt when present).', exclusive: ['insecure'] }),
  insecure: Flags.boolean({ description: 'Skip verification of the API certificate.', default: false, exclusive: ['ca'] }),
  'data-dir': Flags.string({ description: "Local node's data dir, used to find its CA certificate (default /var/lib/neuwerk)." }),
  config: Flags.string({ description: 'Config file of the local node, used for defaults (default /etc/neuwerk/config.yaml when it exists).' }),
};

/** The bearer token of commands that need one (DESIGN §7: `--token` or NEUWERK_TOKEN). */
export const tokenFlag = {
  token: Flags.string({ description: 'Bearer token for the management API (default $NEUWERK_TOKEN).', env: 'NEUWERK_TOKEN' }),
};

/** Resolves connection flags plus a required token. */
export function resolveAuthenticatedConnection(options: ConnectionOptions & { token?: string | undefined }): ApiConnection {
  if (options.token === undefined || options.token.trim() === '') {
    throw new NeuwerkError('NW_ERR_USAGE', 'this command needs a token: pass --token or set NEUWERK_TOKEN', {
      actions: ['On the node itself: export NEUWERK_TOKEN=$(neuwerk auth bootstrap --data-dir /var/lib/neuwerk)'],
    });
  }
  return resolveConnection(options, options.token.trim());
}

/** Per-request timeout for management API calls from the CLI. */
export const API_REQUEST_TIMEOUT_MS = 5_000;

export interface ConnectionOptions {
  readonly 'http-addr'?: string | undefined;
  readonly ca?: string | undefined;
  readonly insecure?: boolean | undefined;
  readonly 'data-dir'?: string | undefined;
  readonly config?: string | undefined;
}

/** A resolved management API endpoint with its TLS trust settings. */
export class ApiConnection {
  private readonly dispatcher: Agent;

  constructor(readonly baseUrl: string, private readonly ca: string | null, readonly token: string | null = null) {
    this.dispatcher = new Agent({
      connect: ca === null ? { rejectUnauthorized: false } : { ca, rejectUnauthorized: true },
      connections: 4,
    });
  }

  /** Sends one JSON request; network failures become NW_ERR_API_UNREACHABLE naming the address. */
  async call(method: string, path: string, body?: unknown, timeoutMs = API_REQUEST_TIMEOUT_MS): Promise<{ status: number; json: unknown; text: string }> {
    return this.callRaw(method, path, body === undefined ? undefined : JSON.stringify(body), 'application/json', timeoutMs);
  }

  /** Sends a request with a body of the given content type. */
  async callRaw(method: string, path: string, body: string | undefined, contentType: string, timeoutMs = API_REQUEST_TIMEOUT_MS): Promise<{ status: number; json: unknown; text: string }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = contentType;
    try {
      const response = await request(`${this.baseUrl}${path}`, {
        method: method as 'GET',
        headers,
        body: body ?? null,
        dispatcher: this.dispatcher,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.body.text();
      let json: unknown = null;
      try {
        json = text.length > 0 ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      return { status: response.statusCode, json, text };
    } catch (err) {
      const cause = err as { code?: string; message: string; cause?: { code?: string; message?: string } };
      const code = cause.cause?.code ?? cause.code ?? cause.message;
      throw new NeuwerkError('NW_ERR_API_UNREACHABLE', `cannot reach the management API at ${this.baseUrl}: ${code}`, {
        actions: ['Check that the node runs and --http-addr is right; for a certificate error pass --ca <ca.crt> or --insecure.'],
      });
    }
  }

  /** A connection to another node (`host:port`) with the same trust settings and token. */
  sibling(hostPort: string): ApiConnection {
    return new ApiConnection(`https://${hostPort}`, this.ca, this.token);
  }

  /**
   * Sends a request and hands back the raw response (status, headers, body stream) for callers
   * that stream large answers to disk. Network failures become NW_ERR_API_UNREACHABLE.
   */
  async stream(method: string, path: string, options: { accept: string; timeoutMs: number }): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { accept: options.accept };
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    try {
      return await request(`${this.baseUrl}${path}`, {
        method: method as 'POST',
        headers,
        dispatcher: this.dispatcher,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      const cause = err as { code?: string; message: string; cause?: { code?: string } };
      throw new NeuwerkError('NW_ERR_API_UNREACHABLE', `cannot reach the management API at ${this.baseUrl}: ${cause.cause?.code ?? cause.code ?? cause.message}`, {
        actions: ['Check that the node runs and --http-addr is right; for a certificate error pass --ca <ca.crt> or --insecure.'],
      });
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/**
 * The config file a connection takes its defaults from: `--config`, else the default file when it
 * exists. The default file unreadable (not root on an appliance) is a usage error that says what
 * to pass instead.
 */
function readConnectionConfig(configFlag: string | undefined): ConfigFile | null {
  const configPath = chooseConfigPath(configFlag);
  if (configPath === null) return null;
  try {
    return loadConfigFile(configPath);
  } catch (err) {
    if (configFlag === undefined && err instanceof NeuwerkError && /EACCES/.test(err.message)) {
      throw new NeuwerkError('NW_ERR_USAGE', `cannot read ${configPath} (permission denied) to find the node's address and CA`, {
        actions: ['Pass --http-addr <host:port> and --ca <a copy of the node\'s http-tls/ca.crt> (or --insecure), or run the command with sudo.'],
      });
    }
    throw err;
  }
}

/** Resolves `--http-addr`, `--ca`/`--insecure` and the token into a connection. */
export function resolveConnection(options: ConnectionOptions, token: string | null = null): ApiConnection {
  // The default config file is read only for what the flags leave open: an operator who is not
  // root can reach a node with --http-addr and --ca (or --insecure) although
  // /etc/neuwerk/config.yaml is root:neuwerk 0640 on an appliance. A --config given is always read.
  const needsFile = options.config !== undefined || options['http-addr'] === undefined || (!options.insecure && options.ca === undefined);
  const file = needsFile ? readConnectionConfig(options.config) : null;
  const addressText = options['http-addr'] ?? file?.http?.advertise ?? file?.http?.bind ?? DEFAULT_HTTP_BIND;
  const address = parseHostPort(addressText);
  if ('error' in address) {
    throw new NeuwerkError('NW_ERR_USAGE', `--http-addr: "${addressText}" is not a valid address (${address.error})`);
  }
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  const baseUrl = `https://${formatHostPort({ host, port: address.port })}`;
  if (options.insecure) return new ApiConnection(baseUrl, null, token);
  const dataDir = options['data-dir'] ?? file?.node?.data_dir ?? DEFAULT_DATA_DIR;
  const caPath = options.ca ?? (file?.http?.tls_dir ? join(file.http.tls_dir, 'ca.crt') : join(dataDir, 'http-tls', 'ca.crt'));
  if (options.ca === undefined && !existsSync(caPath)) {
    throw new NeuwerkError('NW_ERR_USAGE', `no CA certificate to verify ${baseUrl} (looked for ${caPath})`, {
      actions: ['Pass --ca <path to the node\'s http-tls/ca.crt>, --data-dir <the node\'s data dir>, or --insecure.'],
    });
  }
  let ca: string;
  try {
    ca = readFileSync(caPath, 'utf8');
  } catch (err) {
    throw new NeuwerkError('NW_ERR_USAGE', `--ca: cannot read ${caPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return new ApiConnection(baseUrl, ca, token);
}
