import type { Replicator } from '../../cluster/replicator.js';
import { DENYLIST_ZONE } from '../../dataplane/denylist.js';
import type { Logger } from '../../log/logger.js';
import { NeuwerkError } from '../../errors.js';
import { KEYVAL_NAME_PATTERN, KEYVAL_VALUE_MAX_BYTES } from '../../store/commands.js';
import type { KeyvalRecord } from '../../store/state-machine.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';
import { bodyValidator, checkQueryNames } from '../validate.js';

/** Largest `ttl_secs` accepted for a key (one year). */
export const KEYVAL_TTL_MAX_SECONDS = 366 * 86_400;
export const KEYVAL_LIST_LIMIT_DEFAULT = 1000;
export const KEYVAL_LIST_LIMIT_MAX = 10_000;

const PUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['value'],
  properties: {
    value: { type: 'string' },
    ttl_secs: { type: 'integer', minimum: 1, maximum: KEYVAL_TTL_MAX_SECONDS },
  },
} as const;

const RECORD_SCHEMA = {
  type: 'object',
  required: ['zone', 'key', 'value', 'version', 'expires_at'],
  properties: {
    zone: { type: 'string' }, key: { type: 'string' }, value: { type: 'string' },
    version: { type: 'integer', description: 'The Raft index that last wrote the key.' },
    expires_at: { type: ['string', 'null'], description: 'RFC 3339, or null for no expiry.' },
  },
} as const;

export const KEYVAL_SCHEMAS: RouteSchemas = {
  'PUT /api/v1/keyval/:zone/:key': { request: PUT_SCHEMA, response: RECORD_SCHEMA },
  'GET /api/v1/keyval/:zone/:key': { response: RECORD_SCHEMA },
  'GET /api/v1/keyval/:zone': {
    query: {
      prefix: { schema: { type: 'string', default: '' }, description: 'Only keys starting with this prefix.' },
      after: { schema: { type: 'string' }, description: 'Start after this key (the previous page\'s `next`).' },
      limit: { schema: { type: 'integer', minimum: 1, maximum: KEYVAL_LIST_LIMIT_MAX, default: KEYVAL_LIST_LIMIT_DEFAULT }, description: 'Page size.' },
    },
    response: { type: 'object', required: ['items', 'next'], properties: { items: { type: 'array', items: RECORD_SCHEMA }, next: { type: ['string', 'null'] } } },
  },
  'DELETE /api/v1/keyval/:zone/:key': { responseStatus: 204 },
};

const validatePut = bodyValidator<{ value: string; ttl_secs?: number }>(PUT_SCHEMA);
const NAME = new RegExp(KEYVAL_NAME_PATTERN);
/** Query parameters of a key read and of a listing (`stale` and `local` ask for this node's replica). */
const READ_QUERY_NAMES: ReadonlySet<string> = new Set(['stale', 'local']);
const LIST_QUERY_NAMES: ReadonlySet<string> = new Set(['prefix', 'after', 'limit', 'stale', 'local']);

function checkName(kind: 'zone' | 'key', value: string): void {
  if (!NAME.test(value)) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `${kind} ${JSON.stringify(value.slice(0, 80))} is not valid: 1-253 characters of A-Z a-z 0-9 . _ : -`);
  }
}

function present(record: KeyvalRecord): Record<string, unknown> {
  return { ...record, expires_at: record.expires_at === null ? null : new Date(record.expires_at).toISOString() };
}

/** Replicated key-value zones (DESIGN §6): writes answer after commit; reads are linearizable unless `?stale=true`. */
export function addKeyvalRoutes(router: Router, replicator: Replicator, logger: Logger): void {
  // A change of the denylist zone changes enforcement on every node: audited like a policy change.
  const auditDenylist = (zone: string, action: 'put' | 'delete', key: string, actor: string, detail: Record<string, unknown> = {}): void => {
    if (zone === DENYLIST_ZONE) logger.info({ audit: true, actor, action: `denylist.${action}`, key, ...detail }, `audit: denylist.${action}`);
  };
  const read = async (stale: boolean): Promise<void> => {
    if (!stale) await replicator.linearizableRead();
  };
  router.add({
    method: 'PUT',
    path: '/api/v1/keyval/:zone/:key',
    access: 'admin',
    summary: 'Write a key; answers once the write is committed and applied on this node.',
    handler: async (ctx) => {
      const zone = ctx.params.zone as string;
      const key = ctx.params.key as string;
      checkName('zone', zone);
      checkName('key', key);
      const body = validatePut(await ctx.readJson());
      if (Buffer.byteLength(body.value, 'utf8') > KEYVAL_VALUE_MAX_BYTES) {
        throw new NeuwerkError('NW_ERR_VALIDATION', `value: ${Buffer.byteLength(body.value, 'utf8')} bytes is above the limit of ${KEYVAL_VALUE_MAX_BYTES}`);
      }
      const expiresAt = body.ttl_secs === undefined ? null : Date.now() + body.ttl_secs * 1000;
      const result = await replicator.propose({ v: 1, type: 'keyval.put', zone, key, value: body.value, expires_at: expiresAt });
      if (result.type !== 'keyval.put') throw new NeuwerkError('NW_ERR_INTERNAL', 'unexpected apply result');
      auditDenylist(zone, 'put', key, ctx.identity?.sub ?? 'unknown', { version: result.record.version, expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString() });
      return { status: 200, body: present(result.record) };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/keyval/:zone/:key',
    access: 'read',
    summary: 'Read a key (linearizable; ?stale=true reads the local replica).',
    handler: async (ctx) => {
      checkQueryNames(ctx.query, READ_QUERY_NAMES);
      checkName('zone', ctx.params.zone as string);
      checkName('key', ctx.params.key as string);
      await read(ctx.query.get('stale') === 'true');
      const record = replicator.stateMachine.getKeyval(ctx.params.zone as string, ctx.params.key as string, Date.now());
      if (record === null) throw new NeuwerkError('NW_ERR_NOT_FOUND', `key ${ctx.params.key} not found in zone ${ctx.params.zone}`);
      return { status: 200, body: present(record) };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/keyval/:zone',
    access: 'read',
    summary: 'List keys in key order: ?prefix=&after=&limit= (1..10000, default 1000).',
    handler: async (ctx) => {
      checkQueryNames(ctx.query, LIST_QUERY_NAMES);
      checkName('zone', ctx.params.zone as string);
      const limitText = ctx.query.get('limit');
      const limit = limitText === null ? KEYVAL_LIST_LIMIT_DEFAULT : /^\d{1,6}$/.test(limitText) ? Number(limitText) : Number.NaN;
      if (!Number.isInteger(limit) || limit < 1 || limit > KEYVAL_LIST_LIMIT_MAX) {
        throw new NeuwerkError('NW_ERR_VALIDATION', `limit: ${JSON.stringify(limitText)} must be an integer from 1 to ${KEYVAL_LIST_LIMIT_MAX}`);
      }
      await read(ctx.query.get('stale') === 'true');
      const items = replicator.stateMachine.listKeyval(ctx.params.zone as string, {
        prefix: ctx.query.get('prefix') ?? '',
        after: ctx.query.get('after'),
        limit: limit + 1,
        nowMs: Date.now(),
      });
      const page = items.slice(0, limit);
      const next = items.length > limit ? (page[page.length - 1] as KeyvalRecord).key : null;
      return { status: 200, body: { items: page.map((r) => { const { zone: _zone, ...rest } = present(r); return rest; }), next } };
    },
  });
  router.add({
    method: 'DELETE',
    path: '/api/v1/keyval/:zone/:key',
    access: 'admin',
    summary: 'Delete a key (204 whether or not it existed).',
    handler: async (ctx) => {
      checkName('zone', ctx.params.zone as string);
      checkName('key', ctx.params.key as string);
      await replicator.propose({ v: 1, type: 'keyval.delete', zone: ctx.params.zone as string, key: ctx.params.key as string });
      auditDenylist(ctx.params.zone as string, 'delete', ctx.params.key as string, ctx.identity?.sub ?? 'unknown');
      return { status: 204 };
    },
  });
}
