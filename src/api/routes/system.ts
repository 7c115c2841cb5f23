import type { Readiness } from '../../readiness.js';
import { buildOpenApiDocument, type RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';

const READY_SCHEMA = {
  type: 'object',
  required: ['ready', 'checks'],
  properties: {
    ready: { type: 'boolean' },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'ok', 'detail'],
        properties: { name: { type: 'string' }, ok: { type: 'boolean' }, detail: { type: ['string', 'null'] } },
      },
    },
  },
} as const;

export const SYSTEM_SCHEMAS: RouteSchemas = {
  'GET /health': { response: { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } } },
  'GET /ready': { response: READY_SCHEMA },
};

/** `/health`, `/ready` and the OpenAPI document: unauthenticated and always served locally. */
export function addSystemRoutes(router: Router, readiness: Readiness, schemas: () => RouteSchemas, version: string): void {
  router.add({
    method: 'GET',
    path: '/health',
    access: 'public',
    summary: 'Liveness: 200 while the process serves.',
    handler: () => ({ status: 200, body: { status: 'ok' } }),
  });
  router.add({
    method: 'GET',
    path: '/ready',
    access: 'public',
    summary: 'Readiness: 200 when every check passes, else 503; lists each check.',
    handler: () => {
      const report = readiness.evaluate();
      return { status: report.ready ? 200 : 503, body: report, headers: { 'cache-control': 'no-store' } };
    },
  });
  let document: object | null = null;
  router.add({
    method: 'GET',
    path: '/api/v1/openapi.json',
    access: 'public',
    summary: 'The OpenAPI 3.1 document of this API.',
    handler: () => ({ status: 200, body: (document ??= buildOpenApiDocument(router.all(), schemas(), version)) }),
  });
}
