import { randomUUID } from 'node:crypto';
import type { Replicator } from '../cluster/replicator.js';
import { NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { AuthApplyResult, AuthRefusal, AuthTables, ServiceAccountRecord, ServiceAccountTokenRecord, SigningKeyInfo } from '../store/auth-tables.js';
import { roleWithin } from '../store/auth-tables.js';
import type { Command, Role } from '../store/commands.js';
import { generateSigningKey, MINT_TTL_MAX_MS, signToken, type Identity } from './tokens.js';

export interface MintWithKeysRequest {
  readonly sub: string;
  readonly roles: readonly Role[];
  readonly ttlMs: number | null;
  readonly kid?: string;
  readonly saId?: string;
  readonly jti?: string;
}

/**
 * Signs a token with the keyset of a (possibly read-only) replica: the active key, or `kid` if it
 * is active or previous. Used by the node and by `auth` commands run on the node itself.
 */
export async function mintWithKeys(tables: AuthTables, request: MintWithKeysRequest): Promise<{ token: string; kid: string; jti: string }> {
  const key = request.kid === undefined ? tables.activeKey() : tables.key(request.kid);
  if (key === null) {
    throw request.kid === undefined
      ? new NeuwerkError('NW_ERR_AUTH_NO_KEY', 'no active signing key yet; start the node once so it creates one')
      : new NeuwerkError('NW_ERR_VALIDATION', `kid: signing key ${request.kid} does not exist`);
  }
  if (key.status === 'retired') throw new NeuwerkError('NW_ERR_VALIDATION', `kid: signing key ${key.kid} is retired and cannot sign`);
  const jti = request.jti ?? randomUUID();
  const token = await signToken({ kid: key.kid, privateKeyPem: key.private_key_pem }, { sub: request.sub, roles: request.roles, ttlMs: request.ttlMs, jti, ...(request.saId ? { saId: request.saId } : {}) });
  return { token, kid: key.kid, jti };
}

/** Service-account token metadata as the API shows it (never the raw token). */
export interface TokenMetadata extends ServiceAccountTokenRecord {
  last_used_at: string | null;
  status: 'active' | 'revoked' | 'expired';
}

const REFUSALS: Record<AuthRefusal, (what: string) => NeuwerkError> = {
  not_found: (what) => new NeuwerkError('NW_ERR_NOT_FOUND', `${what} does not exist`),
  conflict: (what) => new NeuwerkError('NW_ERR_CONFLICT', `${what} already exists`),
  active_key: (what) =>
    new NeuwerkError('NW_ERR_AUTH_KEY_ACTIVE', `${what} is the active signing key and cannot be retired`, {
      actions: ['Rotate first (neuwerk auth key rotate), then retire the previous key.'],
    }),
  role_exceeds_account: (what) => new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', `${what}: a token cannot have a higher role than its service account`),
  account_disabled: (what) => new NeuwerkError('NW_ERR_CONFLICT', `${what}: the service account is disabled`),
};

/** Returns the apply result, or throws the typed error for a refusal decided at apply time. */
function accepted<R>(result: unknown, what: string): R {
  const r = result as AuthApplyResult;
  if ('ok' in r && r.ok === false) throw REFUSALS[r.refusal](what);
  return r as R;
}

/** How many service-account tokens' last use a node remembers (see `AuthService.lastUsed`). */
export const LAST_USED_MAX_TOKENS = 10_000;

/**
 * Auth operations that change replicated state: every one is a command through the replicator,
 * with its ids and timestamps fixed here (the proposer), and an audit log line naming who did
 * what — never the secret.
 */
export class AuthService {
  /**
   * Last use of service-account tokens seen by this node (not replicated: a write per request
   * would be too costly), for at most `LAST_USED_MAX_TOKENS` tokens, least recently used first
   * out: automation that mints a short-lived token per job would otherwise grow it forever.
   */
  private readonly lastUsed = new Map<string, string>();

  constructor(private readonly replicator: Replicator, private readonly logger: Logger) {}

  private get tables() {
    return this.replicator.stateMachine.auth;
  }

  private audit(actor: string, action: string, detail: Record<string, unknown>): void {
    this.logger.info({ audit: true, actor, action, ...detail }, `audit: ${action}`);
  }

  private async propose(command: Command): Promise<unknown> {
    return this.replicator.propose(command);
  }

  /** Creates the first signing key of a fresh store. */
  async ensureSigningKey(actor: string): Promise<void> {
    if (this.tables.activeKey() !== null) return;
    const key = generateSigningKey();
    await this.propose({ v: 1, type: 'auth.key.add', kid: key.kid, public_key_pem: key.publicKeyPem, private_key_pem: key.privateKeyPem, created_at: new Date().toISOString(), created_by: actor });
    this.audit(actor, 'auth.key.create', { kid: key.kid });
  }

  listKeys(): SigningKeyInfo[] {
    return this.tables.keys();
  }

  async rotateKey(actor: string): Promise<SigningKeyInfo> {
    const key = generateSigningKey();
    const result = accepted<{ key: SigningKeyInfo }>(
      await this.propose({ v: 1, type: 'auth.key.add', kid: key.kid, public_key_pem: key.publicKeyPem, private_key_pem: key.privateKeyPem, created_at: new Date().toISOString(), created_by: actor }),
      `signing key ${key.kid}`,
    );
    this.audit(actor, 'auth.key.rotate', { kid: key.kid });
    return result.key;
  }

  async retireKey(actor: string, kid: string): Promise<SigningKeyInfo> {
    const existing = this.tables.keyInfo(kid);
    if (existing === null || existing.status === 'retired') throw REFUSALS.not_found(`signing key ${kid}`);
    if (existing.status === 'active') throw REFUSALS.active_key(`signing key ${kid}`);
    const result = accepted<{ key: SigningKeyInfo }>(
      await this.propose({ v: 1, type: 'auth.key.retire', kid, retired_at: new Date().toISOString() }),
      `signing key ${kid}`,
    );
    this.audit(actor, 'auth.key.retire', { kid });
    return result.key;
  }

  /** Signs a token locally with the active key, or with `kid` if it is active or previous. */
  async mint(request: MintWithKeysRequest): Promise<{ token: string; kid: string; jti: string }> {
    return mintWithKeys(this.tables, request);
  }

  listAccounts(): ServiceAccountRecord[] {
    return this.tables.accounts();
  }

  getAccount(id: string): ServiceAccountRecord {
    const account = this.tables.account(id);
    if (account === null) throw REFUSALS.not_found(`service account ${id}`);
    return account;
  }

  async createAccount(actor: Identity, input: { name: string; description: string; role: Role }): Promise<ServiceAccountRecord> {
    const id = randomUUID();
    const result = accepted<{ account: ServiceAccountRecord }>(
      await this.propose({ v: 1, type: 'sa.create', id, name: input.name, description: input.description, role: input.role, created_at: new Date().toISOString(), created_by: actor.sub }),
      `service account ${input.name}`,
    );
    this.audit(actor.sub, 'service_account.create', { sa_id: id, name: input.name, role: input.role });
    return result.account;
  }

  async updateAccount(actor: Identity, id: string, changes: { name?: string; description?: string; role?: Role; status?: 'active' | 'disabled' }): Promise<ServiceAccountRecord> {
    const result = accepted<{ account: ServiceAccountRecord }>(
      await this.propose({ v: 1, type: 'sa.update', id, ...changes, updated_at: new Date().toISOString() }),
      `service account ${id}`,
    );
    this.audit(actor.sub, 'service_account.update', { sa_id: id, changes });
    return result.account;
  }

  async deleteAccount(actor: Identity, id: string): Promise<void> {
    accepted(await this.propose({ v: 1, type: 'sa.delete', id }), `service account ${id}`);
    this.audit(actor.sub, 'service_account.delete', { sa_id: id });
  }

  listTokens(saId: string): TokenMetadata[] {
    this.getAccount(saId);
    return this.tables.tokens(saId).map((t) => this.metadata(t));
  }

  /**
   * Mints a service-account token. The record (metadata only) is committed first, so the token is
   * valid on every node that has applied it; the raw token is returned once and never stored.
   */
  async createToken(actor: Identity, saId: string, input: { name: string; ttlMs: number | null; role?: Role }): Promise<{ token: string; metadata: TokenMetadata }> {
    const account = this.getAccount(saId);
    const role = input.role ?? account.role;
    if (!roleWithin(role, account.role)) throw REFUSALS.role_exceeds_account(`token for ${account.name}`);
    if (input.ttlMs !== null && (input.ttlMs <= 0 || input.ttlMs > MINT_TTL_MAX_MS)) {
      throw new NeuwerkError('NW_ERR_VALIDATION', `ttl must be between 1 second and ${MINT_TTL_MAX_MS / 86_400_000} days`);
    }
    const key = this.tables.activeKey();
    if (key === null) throw new NeuwerkError('NW_ERR_AUTH_NO_KEY', 'no active signing key');
    const id = randomUUID();
    const nowMs = Date.now();
    const expiresAt = input.ttlMs === null ? null : new Date(Math.floor(nowMs / 1000) * 1000 + Math.ceil(input.ttlMs / 1000) * 1000).toISOString();
    const result = accepted<{ token: ServiceAccountTokenRecord }>(
      await this.propose({ v: 1, type: 'sa.token.create', id, sa_id: saId, name: input.name, role, kid: key.kid, created_at: new Date(nowMs).toISOString(), created_by: actor.sub, expires_at: expiresAt }),
      `token for service account ${saId}`,
    );
    const { token } = await this.mint({ sub: `sa:${account.name}`, roles: [role], ttlMs: input.ttlMs, kid: key.kid, saId, jti: id });
    this.audit(actor.sub, 'service_account.token.create', { sa_id: saId, token_id: id, role, expires_at: expiresAt });
    return { token, metadata: this.metadata(result.token) };
  }

  async revokeToken(actor: Identity, saId: string, tokenId: string): Promise<void> {
    accepted(await this.propose({ v: 1, type: 'sa.token.revoke', sa_id: saId, id: tokenId, revoked_at: new Date().toISOString() }), `token ${tokenId} of service account ${saId}`);
    this.lastUsed.delete(tokenId);
    this.audit(actor.sub, 'service_account.token.revoke', { sa_id: saId, token_id: tokenId });
  }

  /** When this node last saw service-account token `jti` used (null: not seen, or forgotten). */
  lastUsedAt(jti: string): string | null {
    return this.lastUsed.get(jti) ?? null;
  }

  /** Notes a successful use of a service-account token (local to this node). */
  noteUse(identity: Identity): void {
    if (identity.sa_id === null) return;
    // Re-inserted so the map's order is the order of last use.
    this.lastUsed.delete(identity.jti);
    this.lastUsed.set(identity.jti, new Date().toISOString());
    if (this.lastUsed.size > LAST_USED_MAX_TOKENS) this.lastUsed.delete(this.lastUsed.keys().next().value as string);
  }

  private metadata(record: ServiceAccountTokenRecord): TokenMetadata {
    const expired = record.expires_at !== null && Date.parse(record.expires_at) <= Date.now();
    return { ...record, last_used_at: this.lastUsedAt(record.id), status: record.revoked_at !== null ? 'revoked' : expired ? 'expired' : 'active' };
  }

  /** Logs a failed token-login (who tried and why; never the token). */
  auditLoginFailure(address: string, reason: string): void {
    this.logger.warn({ audit: true, actor: `address:${address}`, action: 'auth.token_login.failed', reason }, 'audit: auth.token_login.failed');
  }
}
