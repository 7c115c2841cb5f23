import { Flags } from '@oclif/core';

/**
 * The start flags of DESIGN §7. Each is also settable in the config file; a flag wins. Values are
 * validated when the configuration is resolved, so errors can name the flag and the value.
 */
export const startFlags = {
  config: Flags.string({ description: 'YAML config file (default /etc/neuwerk/config.yaml when it exists).' }),
  'data-dir': Flags.string({ description: 'Directory for node state (default /var/lib/neuwerk). Created with mode 0700.' }),
  'node-id-path': Flags.string({ description: 'File holding the node id (default <data-dir>/node_id).' }),
  'cluster-bind': Flags.string({ description: 'Cluster RPC listener host:port; its presence enables cluster mode (default 127.0.0.1:9600 in cluster mode).' }),
  'cluster-join-bind': Flags.string({ description: 'Join listener host:port (default cluster port + 1).' }),
  'cluster-advertise': Flags.string({ description: 'Cluster address other nodes use to reach this one (default the bind).' }),
  join: Flags.string({ description: "Join an existing cluster through a member's join listener host:port." }),
  'cluster-data-dir': Flags.string({ description: 'Directory for raft.db and cluster TLS files (default <data-dir>/cluster).' }),
  'bootstrap-token-path': Flags.string({ description: 'Bootstrap token file, mode 0600 (default <data-dir>/bootstrap-token).' }),
  'http-bind': Flags.string({ description: 'Management API (HTTPS) host:port (default 127.0.0.1:8443).' }),
  'http-advertise': Flags.string({ description: 'Management address other nodes and load balancers use (default the bind).' }),
  'http-tls-dir': Flags.string({ description: 'Management TLS files server.crt, server.key, ca.crt; generated on first start (default <data-dir>/http-tls).' }),
  'metrics-bind': Flags.string({ description: 'Prometheus metrics listener host:port, plain HTTP (default 127.0.0.1:8080).' }),
  'dns-bind': Flags.string({ description: 'DNS proxy host:port, UDP and TCP.' }),
  'dns-upstream': Flags.string({ description: 'Upstream DNS server host:port; repeat for failover order.', multiple: true }),
  'proxy-bind': Flags.string({ description: 'Forward proxy host:port.' }),
  'proxy-protocol-from': Flags.string({
    description:
      'CIDR of a load balancer that sends a PROXY protocol header (v1 or v2, e.g. HAProxy send-proxy-v2); repeat for several. Connections from it must begin with one and are decided by the client address it names; others are never parsed for one. Default: none.',
    multiple: true,
  }),
  'default-policy': Flags.string({ description: 'Policy of a fresh cluster when no source group decides.', options: ['allow', 'deny'] as const }),
  'log-level': Flags.string({ description: 'Minimum log level (default info).', options: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const }),
  'log-format': Flags.string({ description: 'Log output: JSON lines or human-readable text (default json).', options: ['json', 'pretty'] as const }),
};
