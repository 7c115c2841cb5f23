import { describeError } from '../errors.js';
import { loadNodeConfig, type StartFlags } from '../config/load.js';
import { createLogger, LogRing } from '../log/logger.js';
import { startNode } from '../node.js';
import { formatHostPort } from '../config/address.js';

/** Hard limit on a graceful stop; past it the process exits 1 so a supervisor can act. */
const STOP_DEADLINE_MS = 10_000;

/**
 * Runs a node in the foreground until SIGTERM or SIGINT, then stops it gracefully and exits 0.
 * Configuration errors surface before anything is opened.
 */
export async function runNodeInForeground(configFlag: string | undefined, flags: StartFlags): Promise<void> {
  const config = loadNodeConfig(configFlag, flags);
  const ring = new LogRing();
  const logger = createLogger({ level: config.log.level, format: config.log.format, ring });
  const node = await startNode(config, logger, ring);

  if (config.log.format === 'pretty') {
    const lines = [
      '',
      `neuwerk node ${node.nodeId} is running`,
      `  management API  https://${formatHostPort(node.httpAddress)}   (CA: ${node.caPath})`,
      `  metrics         http://${formatHostPort(node.metricsAddress)}/metrics`,
      ...(node.dnsAddress === null ? [] : [`  DNS proxy       ${formatHostPort(node.dnsAddress)} (UDP and TCP)`]),
      ...(node.proxyAddress === null ? [] : [`  forward proxy   http://${formatHostPort(node.proxyAddress)}`]),
      `  data dir        ${config.dataDir}`,
      `  check it        neuwerk ready --http-addr ${formatHostPort(node.httpAddress)} --ca ${node.caPath}`,
      `  admin token     ${node.bootstrapCommand} > admin.jwt   (30 min; then use service accounts)`,
      '  stop it         Ctrl-C',
      '',
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
  }

  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
      const deadline = setTimeout(() => {
        logger.error({ budget_ms: STOP_DEADLINE_MS }, 'graceful stop did not finish in time; exiting');
        process.exit(1);
      }, STOP_DEADLINE_MS);
      deadline.unref();
      node
        .stop(signal)
        .then(() => resolve())
        .catch((err: unknown) => {
          logger.error({ err: describeError(err) }, 'graceful stop failed');
          process.exit(1);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  process.exit(0);
}
