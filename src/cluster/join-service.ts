import { createServer, type Server } from 'node:http';
import { NeuwerkError, describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { readBody } from '../api/router.js';
import { LOGIN_BLOCK_MS, LoginLimiter } from '../auth/login-limiter.js';
import { loadBootstrapTokens, tokenValidAt, type BootstrapToken } from './bootstrap-token.js';
import { signNodeCertificate, type KeyAndCert } from './ca.js';
import { joinRequestMacValid, sealCaKey, sealJoinResponse, type JoinGrant, type JoinRequest } from './crypto.js';
import { parseHostPort } from '../config/address.js';

/** A join request's timestamp may differ from this node's clock by at most this much. */
export const JOIN_TIMESTAMP_SKEW_MS = 5 * 60_000;
/** Nonces are remembered this long (covers the whole timestamp window on both sides). */
export const JOIN_NONCE_MEMORY_MS = 2 * JOIN_TIMESTAMP_SKEW_MS;
export const JOIN_NONCES_MAX = 100_000;
/** Largest join request body. */
export const JOIN_REQUEST_MAX_BYTES = 64 * 1024;
export const JOIN_PATH = '/v1/join';

/** What admission needs to know about the joiner (no secrets except the sealed envelope). */
export interface Admission {
  readonly node_id: string;
  readonly cluster_addr: string;
  readonly http_addr: string;
  readonly proxy_addr: string | null;
  readonly dns_addr: string | null;
  readonly envelope: Record<string, string>;
}

export interface JoinServiceDeps {
  readonly nodeId: string;
  readonly tokenPath: string;
  readonly logger: Logger;
  /** The CA key and certificate, opened from this node's envelope with its token. */
  readonly ca: () => KeyAndCert;
  readonly clusterId: () => string;
  /** Current members with addresses and roles (for idempotency and the grant). */
  readonly members: () => { node_id: string; cluster_addr: string | null; http_addr: string; role: string }[];
  readonly isRemoved: (nodeId: string) => boolean;
  /** Adds the joiner as a learner (on the leader, or forwarded to it). */
  readonly admit: (admission: Admission) => Promise<void>;
}

function refuse(reason: string): NeuwerkError {
  return new NeuwerkError('NW_ERR_JOIN_REFUSED', reason);
}

/** What a node id may look like (the join request's check, applied to forwarded admissions too). */
const NODE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const ENVELOPE_FIELDS = ['kid', 'salt', 'nonce', 'ciphertext', 'tag'] as const;

/**
 * Checks an admission a member forwarded to the leader (cluster RPC `join.admit`): the member
 * checked the join request, but the leader proposes what it receives, so it checks the shape
 * again and refuses anything else with a message naming the field.
 */
export function parseAdmission(body: unknown): Admission {
  const bad = (field: string): NeuwerkError => new NeuwerkError('NW_ERR_COMMAND_INVALID', `join.admit: ${field} is missing or malformed`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('the admission');
  const value = body as Record<string, unknown>;
  if (typeof value.node_id !== 'string' || !NODE_ID.test(value.node_id)) throw bad('node_id');
  for (const field of ['cluster_addr', 'http_addr'] as const) {
    const address = value[field];
    if (typeof address !== 'string' || 'error' in parseHostPort(address)) throw bad(field);
  }
  for (const field of ['proxy_addr', 'dns_addr'] as const) {
    const address = value[field];
    if (address !== null && (typeof address !== 'string' || 'error' in parseHostPort(address))) throw bad(field);
  }
  const envelope = value.envelope as Record<string, unknown> | null | undefined;
  if (envelope === null || typeof envelope !== 'object' || Array.isArray(envelope)) throw bad('envelope');
  for (const field of ENVELOPE_FIELDS) if (typeof envelope[field] !== 'string' || (envelope[field] as string).length === 0) throw bad(`envelope.${field}`);
  return {
    node_id: value.node_id,
    cluster_addr: value.cluster_addr as string,
    http_addr: value.http_addr as string,
    proxy_addr: value.proxy_addr as string | null,
    dns_addr: value.dns_addr as string | null,
    envelope: Object.fromEntries(ENVELOPE_FIELDS.map((field) => [field, envelope[field] as string])),
  };
}

/**
 * The member side of the join protocol (DESIGN §5): checks the token window, the HMAC (constant
 * time), the timestamp and the nonce; signs the CSRs; seals the CA key for the joiner; has the
 * leader add it as a learner; and answers with an encrypted, authenticated grant. Each refusal has
 * its own message, is logged here, and never reveals the token.
 */
export class JoinService {
  private readonly nonces = new Map<string, number>();

  constructor(private readonly deps: JoinServiceDeps) {}

  private rememberNonce(nonce: string, nowMs: number): void {
    for (const [seen, at] of this.nonces) {
      if (nowMs - at <= JOIN_NONCE_MEMORY_MS && this.nonces.size < JOIN_NONCES_MAX) break;
      this.nonces.delete(seen);
    }
    this.nonces.set(nonce, nowMs);
  }

  async handle(request: JoinRequest, nowMs = Date.now()): Promise<ReturnType<typeof sealJoinResponse>> {
    const { logger } = this.deps;
    try {
      const response = await this.handleChecked(request, nowMs);
      logger.info({ joiner: request.node_id, cluster_addr: request.cluster_advertise, kid: request.kid }, 'join: admitted node as learner');
      return response;
    } catch (err) {
      logger.warn({ joiner: typeof request?.node_id === 'string' ? request.node_id : null, kid: typeof request?.kid === 'string' ? request.kid : null, reason: describeError(err) }, 'join: refused');
      throw err;
    }
  }

  private async handleChecked(request: JoinRequest, nowMs: number): Promise<ReturnType<typeof sealJoinResponse>> {
    for (const field of ['node_id', 'cluster_advertise', 'http_advertise', 'csr', 'http_csr', 'kid', 'nonce', 'hmac'] as const) {
      if (typeof request?.[field] !== 'string' || request[field].length === 0) throw refuse(`malformed join request: missing ${field}`);
    }
    if (typeof request.timestamp !== 'number') throw refuse('malformed join request: missing timestamp');
    if (!NODE_ID.test(request.node_id)) throw refuse('malformed join request: bad node_id');
    const clusterAddress = parseHostPort(request.cluster_advertise);
    const httpAddress = parseHostPort(request.http_advertise);
    if ('error' in clusterAddress || 'error' in httpAddress) throw refuse('malformed join request: bad advertised address');
    for (const field of ['proxy_advertise', 'dns_advertise'] as const) {
      const value: unknown = request[field];
      if (typeof value !== 'string' || (value !== '' && 'error' in parseHostPort(value))) throw refuse(`malformed join request: bad ${field}`);
    }

    let tokens: BootstrapToken[];
    try {
      tokens = loadBootstrapTokens(this.deps.tokenPath, nowMs);
    } catch (err) {
      throw new NeuwerkError('NW_ERR_JOIN_REFUSED', `this member cannot check join tokens: ${describeError(err)}`);
    }
    const token = tokens.find((t) => t.kid === request.kid);
    if (token === undefined) throw refuse(`unknown token kid ${JSON.stringify(request.kid)}`);
    if (!tokenValidAt(token, nowMs)) {
      throw refuse(token.validFromMs !== null && nowMs < token.validFromMs ? `token ${request.kid} is not valid yet` : `token ${request.kid} has expired`);
    }
    if (!joinRequestMacValid(request, token.secret)) throw refuse(`bad HMAC: the request was not made with token ${request.kid} (wrong token secret?)`);
    if (Math.abs(nowMs - request.timestamp) > JOIN_TIMESTAMP_SKEW_MS) throw refuse('request timestamp is more than 5 minutes away from this member\'s clock (check time sync)');
    if (this.nonces.has(request.nonce)) throw refuse('replayed join request (nonce already used)');
    this.rememberNonce(request.nonce, nowMs);

    if (this.deps.isRemoved(request.node_id)) {
      throw refuse(`node id ${request.node_id} was removed from this cluster and cannot rejoin with its old identity; wipe its data dir to join as a new node`);
    }
    if (request.node_id === this.deps.nodeId) throw refuse(`node id ${request.node_id} is this member's own id`);
    const existing = this.deps.members().find((m) => m.node_id === request.node_id);
    if (existing !== undefined && existing.cluster_addr !== request.cluster_advertise) {
      throw refuse(`node id ${request.node_id} is already a member with cluster address ${existing.cluster_addr ?? 'none'}`);
    }

    const ca = this.deps.ca();
    const nodeCert = signNodeCertificate(ca, request.csr, request.node_id, clusterAddress.host);
    const httpCert = signNodeCertificate(ca, request.http_csr, request.node_id, httpAddress.host);
    // Idempotent: the same id and address again only re-issues certificates.
    if (existing === undefined) {
      await this.deps.admit({
        node_id: request.node_id,
        cluster_addr: request.cluster_advertise,
        http_addr: request.http_advertise,
        proxy_addr: request.proxy_advertise === '' ? null : request.proxy_advertise,
        dns_addr: request.dns_advertise === '' ? null : request.dns_advertise,
        envelope: { ...sealCaKey(ca.keyPem, token) },
      });
    }
    const members = this.deps.members().map((m) => ({ node_id: m.node_id, cluster_addr: m.cluster_addr, http_addr: m.http_addr, role: m.role }));
    // Admitted through the leader: this member's replica may not have applied the admission yet.
    if (!members.some((m) => m.node_id === request.node_id)) members.push({ node_id: request.node_id, cluster_addr: request.cluster_advertise, http_addr: request.http_advertise, role: 'learner' });
    const grant: JoinGrant = { node_cert: nodeCert, http_cert: httpCert, ca_cert: ca.certPem, cluster_id: this.deps.clusterId(), members };
    return sealJoinResponse(grant, request, token.secret);
  }
}

/** The join listener: plain HTTP, because every request and answer is authenticated and the answer encrypted. */
export function createJoinServer(service: JoinService, logger: Logger, limiter = new LoginLimiter()): Server {
  const server = createServer((req, res) => {
    const answer = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (req.method !== 'POST' || req.url !== JOIN_PATH) {
      answer(404, { error: `join listener: POST ${JOIN_PATH} only`, code: 'NW_ERR_HTTP_NOT_FOUND' });
      return;
    }
    // Refused joins are limited per address like failed token-logins: a token guesser (or a
    // misconfigured loop) gets 429s without a token file read or a log line each.
    const address = req.socket.remoteAddress ?? 'unknown';
    const waitMs = limiter.retryAfterMs(address);
    if (waitMs > 0) {
      req.resume();
      answer(429, { error: `too many refused joins from ${address}; retry in ${Math.ceil(waitMs / 1000)} s`, code: 'NW_ERR_AUTH_RATE_LIMITED' });
      return;
    }
    readBody(req, JOIN_REQUEST_MAX_BYTES)
      .then(async (body) => {
        let request: JoinRequest;
        try {
          request = JSON.parse(body.toString('utf8')) as JoinRequest;
        } catch {
          throw refuse('malformed join request: not JSON');
        }
        answer(200, await service.handle(request));
        limiter.recordSuccess(address);
      })
      .catch((err: unknown) => {
        const error = err instanceof NeuwerkError ? err : new NeuwerkError('NW_ERR_INTERNAL', 'join failed on this member');
        if (error.code === 'NW_ERR_INTERNAL') logger.error({ err: describeError(err) }, 'join handler failed');
        if (error.code === 'NW_ERR_JOIN_REFUSED' || error.code === 'NW_ERR_HTTP_BODY_TOO_LARGE' || error.code === 'NW_ERR_HTTP_BAD_REQUEST') {
          limiter.recordFailure(address);
          if (limiter.retryAfterMs(address) > 0) logger.warn({ address, block_ms: LOGIN_BLOCK_MS }, 'join: too many refused joins from one address; refusing it for a while');
        }
        const status = error.code === 'NW_ERR_JOIN_REFUSED' ? 403 : error.code === 'NW_ERR_NOT_LEADER' || error.code === 'NW_ERR_NO_LEADER' || error.code === 'NW_ERR_TIMEOUT' ? 503 : error.httpStatus;
        answer(status, error.toJSON());
      });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}
