import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { formatHostPort, type HostPort } from '../config/address.js';
import { NeuwerkError, describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { currentToken, loadBootstrapTokens } from './bootstrap-token.js';
import { createNodeCsr } from './ca.js';
import { openJoinResponse, signJoinRequest, type JoinGrant, type JoinResponse } from './crypto.js';
import { JOIN_PATH } from './join-service.js';
import type { ClusterTls } from './transport.js';

export const JOIN_ATTEMPTS_MAX = 8;
export const JOIN_REQUEST_TIMEOUT_MS = 15_000;
export const JOIN_BACKOFF_BASE_MS = 250;
export const JOIN_BACKOFF_MAX_MS = 8_000;

export interface JoinResult {
  readonly cluster: ClusterTls;
  readonly management: { keyPem: string; certPem: string; caPem: string };
  readonly grant: JoinGrant;
  /** The grant lists this node as a learner (and the join said so in its log). */
  readonly addedAsLearner: boolean;
}

/**
 * The joiner side (DESIGN §5): authenticates with the current bootstrap token, sends fresh CSRs,
 * and opens the grant. Network trouble and "no leader" are retried with backoff; a refusal is
 * final and says which stage failed and how to fix it.
 */
export async function joinCluster(options: {
  seed: HostPort;
  nodeId: string;
  tokenPath: string;
  clusterAdvertise: HostPort;
  httpAdvertise: HostPort;
  /** The joiner's forward/DNS proxy addresses as clients reach them, when known before the join. */
  proxyAdvertise: string | null;
  dnsAdvertise: string | null;
  logger: Logger;
}): Promise<JoinResult> {
  const { logger } = options;
  const stage = (name: string, detail: Record<string, unknown> = {}): void => logger.info({ stage: name, ...detail }, `join: ${name}`);
  let token;
  try {
    token = currentToken(loadBootstrapTokens(options.tokenPath));
  } catch (err) {
    throw new NeuwerkError('NW_ERR_JOIN_FAILED', `join failed at stage "bootstrap token": ${describeError(err)}`, {
      actions: [`Copy the cluster's bootstrap token file to ${options.tokenPath} (mode 0600) or pass --bootstrap-token-path.`],
    });
  }
  if (token === null) throw new NeuwerkError('NW_ERR_JOIN_FAILED', 'join failed at stage "bootstrap token": no valid token');
  const cluster = createNodeCsr(options.nodeId, options.clusterAdvertise.host);
  const management = createNodeCsr(options.nodeId, options.httpAdvertise.host);
  const url = `http://${formatHostPort(options.seed)}${JOIN_PATH}`;
  stage('requesting', { seed: formatHostPort(options.seed), kid: token.kid });

  let lastError = 'no attempt made';
  for (let attempt = 1; attempt <= JOIN_ATTEMPTS_MAX; attempt += 1) {
    const joinRequest = signJoinRequest(
      {
        node_id: options.nodeId,
        cluster_advertise: formatHostPort(options.clusterAdvertise),
        http_advertise: formatHostPort(options.httpAdvertise),
        proxy_advertise: options.proxyAdvertise ?? '',
        dns_advertise: options.dnsAdvertise ?? '',
        csr: cluster.csrPem,
        http_csr: management.csrPem,
        kid: token.kid,
        nonce: randomBytes(16).toString('base64'),
        timestamp: Date.now(),
      },
      token.secret,
    );
    try {
      const response = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(joinRequest),
        headersTimeout: JOIN_REQUEST_TIMEOUT_MS,
        bodyTimeout: JOIN_REQUEST_TIMEOUT_MS,
      });
      const body = (await response.body.json().catch(() => null)) as (JoinResponse & { error?: string }) | null;
      if (response.statusCode === 200 && body !== null) {
        const grant = openJoinResponse(body, joinRequest, token.secret);
        stage('token accepted, certificates issued', { cluster_id: grant.cluster_id, members: grant.members.length });
        // The member answers only once the leader committed the joiner's membership (a learner, or
        // what it already was on an idempotent repeat of the same join).
        const addedAsLearner = grant.members.some((m) => m.node_id === options.nodeId && m.role === 'learner');
        if (addedAsLearner) stage('added as learner');
        return {
          cluster: { keyPem: cluster.keyPem, certPem: grant.node_cert, caPem: grant.ca_cert },
          management: { keyPem: management.keyPem, certPem: grant.http_cert, caPem: grant.ca_cert },
          grant,
          addedAsLearner,
        };
      }
      lastError = body?.error ?? `HTTP ${response.statusCode}`;
      if (response.statusCode === 403) {
        throw new NeuwerkError('NW_ERR_JOIN_FAILED', `join refused by ${formatHostPort(options.seed)}: ${lastError}`, {
          actions: ['Check that this node has the same bootstrap token file as the cluster, that the token is within its validity window, and that clocks are in sync.'],
        });
      }
      if (response.statusCode === 429) {
        throw new NeuwerkError('NW_ERR_JOIN_FAILED', `join refused by ${formatHostPort(options.seed)}: ${lastError}`, {
          actions: ['Too many joins from this address were refused; fix the cause (token file, clocks) and try again once the wait has passed.'],
        });
      }
    } catch (err) {
      if (err instanceof NeuwerkError && err.code === 'NW_ERR_JOIN_FAILED') throw err;
      lastError = describeError(err);
    }
    const delay = Math.min(JOIN_BACKOFF_BASE_MS * 2 ** (attempt - 1), JOIN_BACKOFF_MAX_MS) + Math.floor(Math.random() * JOIN_BACKOFF_BASE_MS);
    logger.warn({ stage: 'requesting', attempt, of: JOIN_ATTEMPTS_MAX, error: lastError, retry_in_ms: delay }, 'join: attempt failed; retrying');
    if (attempt < JOIN_ATTEMPTS_MAX) await new Promise((resolve) => setTimeout(resolve, delay));
  }
  throw new NeuwerkError('NW_ERR_JOIN_FAILED', `join failed at stage "requesting": ${formatHostPort(options.seed)} did not admit this node after ${JOIN_ATTEMPTS_MAX} attempts (last error: ${lastError})`, {
    actions: [`Check that ${formatHostPort(options.seed)} is a member's join listener (cluster port + 1) and reachable.`],
  });
}
