import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../src/cli/connection.js';
import { parseDurationMs } from '../../src/config/duration.js';
import { NeuwerkError } from '../../src/errors.js';
import { DEFAULT_API_BIND, DEFAULT_PROXY_BIND, DEFAULT_PROXY_PORT, DEFAULT_STATS_SOCKET, runHaproxy } from '../../src/lb/haproxy.js';

export default class LbHaproxy extends NeuwerkCommand {
  static override summary = 'Render an HAProxy configuration (forward proxy and management API) from the live membership.';
  static override description =
    "Servers are the voters and learners of GET /api/v1/cluster/members, sorted by node id, health-checked through each node's /ready over HTTPS. " +
    "Each server is the forward proxy address the node recorded in the membership (proxy_addr); a member that records none is assumed at its management API host with --proxy-port. " +
    'Without --output the configuration goes to stdout; with it the file is replaced atomically (mode 0644) and "changed" or "unchanged" goes to stderr. ' +
    '--watch re-renders every --interval and runs --reload-cmd only when the text changed. ' +
    "--send-proxy makes HAProxy start each forward-proxy connection with a PROXY protocol v2 header naming the client (send-proxy-v2), so policy, denylist and findings see the client's address; start the nodes with --proxy-protocol-from <the balancer's address>. The management API backend and the health checks never get the header.";
  static override examples = [
    '<%= config.bin %> lb haproxy --http-addr 10.0.0.11:8443 > haproxy.cfg',
    "<%= config.bin %> lb haproxy --output /etc/haproxy/haproxy.cfg --watch --reload-cmd 'systemctl reload haproxy'",
    '<%= config.bin %> lb haproxy --http-addr 10.0.0.11:8443 --send-proxy --output /etc/haproxy/haproxy.cfg',
  ];
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    output: Flags.string({ description: 'Write the configuration to this file (atomically, mode 0644) instead of stdout.' }),
    watch: Flags.boolean({ description: 'Keep re-rendering every --interval until SIGINT/SIGTERM.', default: false }),
    interval: Flags.string({ description: 'How often --watch re-renders.', default: '5s' }),
    'reload-cmd': Flags.string({ description: 'Command run with /bin/sh -c after the output file changed (e.g. "systemctl reload haproxy").', dependsOn: ['output'] }),
    'proxy-port': Flags.integer({ description: "Forward proxy port of a member that records no proxy_addr (host: its management API host).", default: DEFAULT_PROXY_PORT, min: 1, max: 65535 }),
    'proxy-bind': Flags.string({ description: 'HAProxy bind of the forward proxy frontend.', default: DEFAULT_PROXY_BIND }),
    'api-bind': Flags.string({ description: 'HAProxy bind of the management API frontend.', default: DEFAULT_API_BIND }),
    'stats-socket': Flags.string({ description: 'Path of the HAProxy admin stats socket.', default: DEFAULT_STATS_SOCKET }),
    'send-proxy': Flags.boolean({
      description: "Send the PROXY protocol v2 (send-proxy-v2) to each node's forward proxy so nodes see the clients' addresses; the nodes need --proxy-protocol-from <this balancer's address>. Not sent to the management API or with health checks.",
      default: false,
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(LbHaproxy);
    const intervalMs = parseDurationMs(flags.interval);
    if (typeof intervalMs !== 'number' || intervalMs < 100) {
      throw new NeuwerkError('NW_ERR_USAGE', `--interval: ${typeof intervalMs === 'number' ? 'must be at least 100ms' : intervalMs.error}`);
    }
    const connection = resolveAuthenticatedConnection(flags);
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await runHaproxy(
        connection,
        {
          proxyPort: flags['proxy-port'],
          proxyBind: flags['proxy-bind'],
          apiBind: flags['api-bind'],
          statsSocket: flags['stats-socket'],
          sendProxy: flags['send-proxy'],
          output: flags.output ?? null,
          reloadCommand: flags['reload-cmd'] ?? null,
          watch: flags.watch,
          intervalMs,
          log: (line) => process.stderr.write(`${line}\n`),
          print: (text) => process.stdout.write(text),
        },
        controller.signal,
      );
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await connection.close();
    }
  }
}
