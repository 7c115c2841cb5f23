/**
 * JSON schema of the config file (`version: 1`). Every object is closed (`additionalProperties:
 * false`) so a typo is an error rather than a silently ignored setting. Each start flag of DESIGN
 * §7 has its key (`--cluster-join-bind` is `cluster.join_bind`); a few keys have no flag
 * (`http.cert_path`, `http.key_path`, `proxy.tunnel_grace_ms`, the cluster timer and snapshot keys).
 */

const hostPort = { type: 'string', format: 'host-port' } as const;
const path = { type: 'string', minLength: 1 } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;
const cidr = { type: 'string', format: 'cidr' } as const;
/**
 * Longest `proxy.tunnel_grace_ms`: the 2.5 s drain, this grace, a leadership transfer and closing
 * the store must fit the 10 s graceful-stop limit.
 */
export const MAX_TUNNEL_GRACE_MS = 5_000;
export const DEFAULT_TUNNEL_GRACE_MS = 3_000;
/** Most address ranges `proxy.proxy_protocol_from` may list (a few balancers, not a client list). */
export const MAX_PROXY_PROTOCOL_FROM = 64;
/** DNS upstreams in failover order, from the file or repeated flags. */
export const MAX_DNS_UPSTREAMS = 8;

export const CONFIG_SCHEMA = {
  $id: 'neuwerk-config-v1',
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { const: 1 },
    node: {
      type: 'object',
      additionalProperties: false,
      properties: {
        data_dir: path,
        node_id_path: path,
      },
    },
    cluster: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bind: hostPort,
        join_bind: hostPort,
        advertise: hostPort,
        join: hostPort,
        data_dir: path,
        bootstrap_token_path: path,
        tick_ms: { type: 'integer', minimum: 10, maximum: 1000 },
        election_timeout_ticks: { type: 'integer', minimum: 2, maximum: 1000 },
        heartbeat_ticks: positiveInt,
        snapshot_threshold_entries: { type: 'integer', minimum: 16 },
        snapshot_trailing_entries: { type: 'integer', minimum: 0 },
      },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bind: hostPort,
        advertise: hostPort,
        tls_dir: path,
        cert_path: path,
        key_path: path,
      },
      dependencies: { cert_path: ['key_path'], key_path: ['cert_path'] },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: { bind: hostPort },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bind: hostPort,
        upstreams: { type: 'array', items: hostPort, minItems: 1, maxItems: MAX_DNS_UPSTREAMS },
      },
    },
    proxy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bind: hostPort,
        tunnel_grace_ms: { type: 'integer', minimum: 0, maximum: MAX_TUNNEL_GRACE_MS },
        proxy_protocol_from: { type: 'array', items: cidr, maxItems: MAX_PROXY_PROTOCOL_FROM },
      },
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      properties: { default: { enum: ['allow', 'deny'] } },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] },
        format: { enum: ['json', 'pretty'] },
      },
    },
  },
} as const;

/** The config file as written (after validation): every key optional except `version`. */
export interface ConfigFile {
  version: 1;
  node?: { data_dir?: string; node_id_path?: string };
  cluster?: {
    bind?: string;
    join_bind?: string;
    advertise?: string;
    join?: string;
    data_dir?: string;
    bootstrap_token_path?: string;
    tick_ms?: number;
    election_timeout_ticks?: number;
    heartbeat_ticks?: number;
    snapshot_threshold_entries?: number;
    snapshot_trailing_entries?: number;
  };
  http?: { bind?: string; advertise?: string; tls_dir?: string; cert_path?: string; key_path?: string };
  metrics?: { bind?: string };
  dns?: { bind?: string; upstreams?: string[] };
  proxy?: { bind?: string; tunnel_grace_ms?: number; proxy_protocol_from?: string[] };
  policy?: { default?: 'allow' | 'deny' };
  log?: { level?: LogLevel; format?: LogFormat };
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type LogFormat = 'json' | 'pretty';
