import type { Authenticator } from '../../auth/authenticator.js';
import type { LoginLimiter } from '../../auth/login-limiter.js';
import type { AuthService } from '../../auth/service.js';
import type { Identity } from '../../auth/tokens.js';
import { MINT_TTL_MAX_MS } from '../../auth/tokens.js';
import { parseDurationMs } from '../../config/duration.js';
import { NeuwerkError } from '../../errors.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';
import { AUTH_COOKIE } from '../server.js';
import { bodyValidator } from '../validate.js';

const role = { type: 'string', enum: ['admin', 'readonly'] } as const;
const accountName = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } as const;

const IDENTITY_SCHEMA = {
  type: 'object',
  required: ['sub', 'roles', 'exp', 'sa_id'],
  properties: {
    sub: { type: 'string' },
    roles: { type: 'array', items: role },
    exp: { type: ['integer', 'null'] },
    sa_id: { type: ['string', 'null'] },
  },
} as const;

const TOKEN_LOGIN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 8192 } },
} as const;

const ACCOUNT_CREATE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role'],
  properties: { name: accountName, description: { type: 'string', maxLength: 1024 }, role },
} as const;

const ACCOUNT_UPDATE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { name: accountName, description: { type: 'string', maxLength: 1024 }, role, status: { type: 'string', enum: ['active', 'disabled'] } },
} as const;

const TOKEN_CREATE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', maxLength: 128 },
    role,
    ttl: { description: 'Duration such as "30d" or "12h", or seconds.', oneOf: [{ type: 'string', minLength: 1 }, { type: 'integer', minimum: 1 }] },
    eternal: { type: 'boolean' },
  },
  not: { required: ['ttl', 'eternal'] },
} as const;

const ACCOUNT_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, description: { type: 'string' }, role,
    status: { type: 'string', enum: ['active', 'disabled'] }, created_at: { type: 'string' }, created_by: { type: 'string' },
  },
} as const;

const TOKEN_METADATA_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, created_at: { type: 'string' }, created_by: { type: 'string' },
    expires_at: { type: ['string', 'null'] }, revoked_at: { type: ['string', 'null'] },
    last_used_at: { type: ['string', 'null'] }, kid: { type: 'string' }, role,
    status: { type: 'string', enum: ['active', 'revoked', 'expired'] },
  },
} as const;

const KEY_SCHEMA = {
  type: 'object',
  properties: {
    kid: { type: 'string' }, status: { type: 'string', enum: ['active', 'previous', 'retired'] },
    created_at: { type: 'string' }, created_by: { type: 'string' }, retired_at: { type: ['string', 'null'] },
  },
} as const;

export const AUTH_SCHEMAS: RouteSchemas = {
  'GET /api/v1/auth/whoami': { response: IDENTITY_SCHEMA },
  'POST /api/v1/auth/token-login': { request: TOKEN_LOGIN_SCHEMA, response: IDENTITY_SCHEMA },
  'POST /api/v1/auth/logout': { responseStatus: 204 },
  'GET /api/v1/auth/keys': { response: { type: 'object', properties: { keys: { type: 'array', items: KEY_SCHEMA } } } },
  'POST /api/v1/auth/keys/rotate': { response: KEY_SCHEMA },
  'DELETE /api/v1/auth/keys/:kid': { response: KEY_SCHEMA },
  'GET /api/v1/service-accounts': { response: { type: 'object', properties: { items: { type: 'array', items: ACCOUNT_SCHEMA } } } },
  'POST /api/v1/service-accounts': { request: ACCOUNT_CREATE_SCHEMA, response: ACCOUNT_SCHEMA, responseStatus: 201 },
  'PUT /api/v1/service-accounts/:id': { request: ACCOUNT_UPDATE_SCHEMA, response: ACCOUNT_SCHEMA },
  'DELETE /api/v1/service-accounts/:id': { responseStatus: 204 },
  'GET /api/v1/service-accounts/:id/tokens': { response: { type: 'object', properties: { items: { type: 'array', items: TOKEN_METADATA_SCHEMA } } } },
  'POST /api/v1/service-accounts/:id/tokens': {
    request: TOKEN_CREATE_SCHEMA,
    response: { type: 'object', required: ['token', 'metadata'], properties: { token: { type: 'string', description: 'Shown once; never retrievable again.' }, metadata: TOKEN_METADATA_SCHEMA } },
    responseStatus: 201,
  },
  'DELETE /api/v1/service-accounts/:id/tokens/:token_id': { responseStatus: 204 },
};

const validateTokenLogin = bodyValidator<{ token: string }>(TOKEN_LOGIN_SCHEMA);
const validateAccountCreate = bodyValidator<{ name: string; description?: string; role: 'admin' | 'readonly' }>(ACCOUNT_CREATE_SCHEMA);
const validateAccountUpdate = bodyValidator<{ name?: string; description?: string; role?: 'admin' | 'readonly'; status?: 'active' | 'disabled' }>(ACCOUNT_UPDATE_SCHEMA);
const validateTokenCreate = bodyValidator<{ name?: string; role?: 'admin' | 'readonly'; ttl?: string | number; eternal?: boolean }>(TOKEN_CREATE_SCHEMA);

/** Default lifetime of a service-account token minted without `ttl` or `eternal`. */
export const SERVICE_ACCOUNT_TOKEN_DEFAULT_TTL_MS = 90 * 86_400_000;

function whoami(identity: Identity): { sub: string; roles: readonly string[]; exp: number | null; sa_id: string | null } {
  return { sub: identity.sub, roles: identity.roles, exp: identity.exp, sa_id: identity.sa_id };
}

function tokenTtlMs(body: { ttl?: string | number; eternal?: boolean }): number | null {
  if (body.eternal === true) return null;
  if (body.ttl === undefined) return SERVICE_ACCOUNT_TOKEN_DEFAULT_TTL_MS;
  const ms = typeof body.ttl === 'number' ? body.ttl * 1000 : parseDurationMs(body.ttl);
  if (typeof ms !== 'number') throw new NeuwerkError('NW_ERR_VALIDATION', `ttl: ${ms.error}`);
  if (ms < 1000 || ms > MINT_TTL_MAX_MS) throw new NeuwerkError('NW_ERR_VALIDATION', `ttl: ${JSON.stringify(body.ttl)} must be between 1s and ${MINT_TTL_MAX_MS / 86_400_000}d`);
  return ms;
}

/** Largest token-login body: a JSON object holding one token. */
export const TOKEN_LOGIN_MAX_BODY_BYTES = 16 * 1024;

/** Identity, login, signing keys and service accounts (DESIGN §6). */
export function addAuthRoutes(router: Router, deps: { auth: AuthService; authenticator: Authenticator; limiter: LoginLimiter }): void {
  const { auth, authenticator, limiter } = deps;
  const actor = (identity: Identity | null): Identity => identity as Identity;

  router.add({ method: 'GET', path: '/api/v1/auth/whoami', access: 'read', summary: 'The identity of the calling token.', handler: (ctx) => ({ status: 200, body: whoami(actor(ctx.identity)) }) });

  router.add({
    method: 'POST',
    path: '/api/v1/auth/token-login',
    access: 'public',
    // Anyone may call it: a token fits in far less, and a body refused as malformed counts as a failed login.
    maxBodyBytes: TOKEN_LOGIN_MAX_BODY_BYTES,
    summary: 'Exchange a bearer token for the neuwerk_auth cookie (rate-limited per client address).',
    handler: async (ctx) => {
      const waitMs = limiter.retryAfterMs(ctx.clientAddress);
      if (waitMs > 0) {
        throw new NeuwerkError('NW_ERR_AUTH_RATE_LIMITED', `too many failed logins from ${ctx.clientAddress}; retry in ${Math.ceil(waitMs / 1000)} s`, { detail: { retryAfterSeconds: Math.ceil(waitMs / 1000) } });
      }
      let body: { token: string };
      try {
        body = validateTokenLogin(await ctx.readJson());
      } catch (err) {
        limiter.recordFailure(ctx.clientAddress);
        throw err;
      }
      const token = body.token.replace(/^Bearer\s+/i, '').trim();
      let identity: Identity;
      try {
        identity = await authenticator.authenticate(token);
      } catch (err) {
        limiter.recordFailure(ctx.clientAddress);
        auth.auditLoginFailure(ctx.clientAddress, err instanceof NeuwerkError ? err.message : 'error');
        throw err;
      }
      limiter.recordSuccess(ctx.clientAddress);
      const maxAgeSeconds = identity.exp === null ? 12 * 3600 : Math.max(0, identity.exp - Math.floor(Date.now() / 1000));
      return {
        status: 200,
        body: whoami(identity),
        headers: { 'set-cookie': `${AUTH_COOKIE}=${token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}` },
      };
    },
  });

  router.add({
    method: 'POST',
    path: '/api/v1/auth/logout',
    access: 'public',
    summary: 'Clear the neuwerk_auth cookie.',
    handler: () => ({ status: 204, headers: { 'set-cookie': `${AUTH_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0` } }),
  });

  router.add({ method: 'GET', path: '/api/v1/auth/keys', access: 'read', summary: 'Signing keys (metadata only).', handler: () => ({ status: 200, body: { keys: auth.listKeys() } }) });
  router.add({
    method: 'POST',
    path: '/api/v1/auth/keys/rotate',
    access: 'admin',
    summary: 'Create a new active signing key; the previous one keeps verifying until retired.',
    handler: async (ctx) => ({ status: 200, body: await auth.rotateKey(actor(ctx.identity).sub) }),
  });
  router.add({
    method: 'DELETE',
    path: '/api/v1/auth/keys/:kid',
    access: 'admin',
    summary: "Retire a signing key: its tokens stop verifying on every node. The active key can't be retired.",
    handler: async (ctx) => ({ status: 200, body: await auth.retireKey(actor(ctx.identity).sub, ctx.params.kid as string) }),
  });

  router.add({ method: 'GET', path: '/api/v1/service-accounts', access: 'read', summary: 'List service accounts.', handler: () => ({ status: 200, body: { items: auth.listAccounts() } }) });
  router.add({
    method: 'POST',
    path: '/api/v1/service-accounts',
    access: 'admin',
    summary: 'Create a service account (role admin or readonly).',
    handler: async (ctx) => {
      const body = validateAccountCreate(await ctx.readJson());
      return { status: 201, body: await auth.createAccount(actor(ctx.identity), { name: body.name, description: body.description ?? '', role: body.role }) };
    },
  });
  router.add({
    method: 'PUT',
    path: '/api/v1/service-accounts/:id',
    access: 'admin',
    summary: 'Change a service account; status "disabled" revokes all its tokens.',
    handler: async (ctx) => ({ status: 200, body: await auth.updateAccount(actor(ctx.identity), ctx.params.id as string, validateAccountUpdate(await ctx.readJson())) }),
  });
  router.add({
    method: 'DELETE',
    path: '/api/v1/service-accounts/:id',
    access: 'admin',
    summary: 'Delete a service account and its tokens.',
    handler: async (ctx) => {
      await auth.deleteAccount(actor(ctx.identity), ctx.params.id as string);
      return { status: 204 };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/service-accounts/:id/tokens',
    access: 'read',
    summary: "A service account's tokens (metadata only).",
    handler: (ctx) => ({ status: 200, body: { items: auth.listTokens(ctx.params.id as string) } }),
  });
  router.add({
    method: 'POST',
    path: '/api/v1/service-accounts/:id/tokens',
    access: 'admin',
    summary: 'Mint a token (ttl or eternal, never above the account role); the raw token is returned once.',
    handler: async (ctx) => {
      const body = validateTokenCreate(await ctx.readJson());
      const created = await auth.createToken(actor(ctx.identity), ctx.params.id as string, { name: body.name ?? '', ttlMs: tokenTtlMs(body), ...(body.role ? { role: body.role } : {}) });
      return { status: 201, body: created, headers: { 'cache-control': 'no-store' } };
    },
  });
  router.add({
    method: 'DELETE',
    path: '/api/v1/service-accounts/:id/tokens/:token_id',
    access: 'admin',
    summary: 'Revoke a token on every node.',
    handler: async (ctx) => {
      await auth.revokeToken(actor(ctx.identity), ctx.params.id as string, ctx.params.token_id as string);
      return { status: 204 };
    },
  });
}
