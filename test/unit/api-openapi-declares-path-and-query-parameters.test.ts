import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildOpenApiDocument, type RouteSchemas } from '../../src/api/openapi.js';
import type { Route } from '../../src/api/router.js';
import { SUPPORT_NODE_SYSDUMP_PATH, SUPPORT_SCHEMAS } from '../../src/api/routes/support.js';

function route(method: Route['method'], path: string, extra: Partial<Route> = {}): Route {
  return { method, path, access: 'read', summary: `${method} ${path}`, handler: () => ({ status: 200 }), ...extra };
}

interface Parameter {
  name: string;
  in: string;
  required: boolean;
  schema: Record<string, unknown>;
}

function parametersOf(document: object, path: string, method: string): Parameter[] {
  const paths = (document as { paths: Record<string, Record<string, { parameters: Parameter[] }>> }).paths;
  const operation = paths[path]?.[method];
  assert.ok(operation, `${method} ${path} is in the document`);
  return operation.parameters;
}

describe('the OpenAPI document', () => {
  const routes = [
    route('GET', '/api/v1/things/:zone'),
    route('PUT', '/api/v1/things/:zone'),
    route('GET', '/api/v1/mine', { routing: 'local' }),
    route('GET', '/health', { access: 'public' }),
  ];
  const schemas: RouteSchemas = {
    'GET /api/v1/things/:zone': {
      query: { limit: { schema: { type: 'integer', minimum: 1, maximum: 10 }, description: 'Page size.' } },
      response: { type: 'object' },
      responseMediaTypes: { 'application/yaml': { type: 'string' } },
    },
    'PUT /api/v1/things/:zone': { request: { type: 'object', properties: { n: { type: ['integer', 'null'] } } }, requestMediaTypes: ['application/yaml'] },
  };
  const document = buildOpenApiDocument(routes, schemas, '1.2.3');

  it('declares path parameters, the route\'s own query parameters, and stale/local on leader-routed reads', () => {
    const get = parametersOf(document, '/api/v1/things/{zone}', 'get');
    assert.deepEqual(get.map((p) => `${p.in}:${p.name}:${p.required}`), ['path:zone:true', 'query:stale:false', 'query:local:false', 'query:limit:false']);
    assert.deepEqual(get.find((p) => p.name === 'limit')?.schema, { type: 'integer', minimum: 1, maximum: 10 });
    assert.equal(get.find((p) => p.name === 'stale')?.schema.type, 'boolean');
  });

  it('offers stale/local only where the server honours them: not on writes, local routes or public routes', () => {
    assert.deepEqual(parametersOf(document, '/api/v1/things/{zone}', 'put').map((p) => p.name), ['zone']);
    assert.deepEqual(parametersOf(document, '/api/v1/mine', 'get'), []);
    assert.deepEqual(parametersOf(document, '/health', 'get'), []);
  });

  it('is OpenAPI 3.1 and lists every media type a route accepts or answers with', () => {
    const doc = document as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };
    assert.equal(doc.openapi, '3.1.0');
    const things = doc.paths['/api/v1/things/{zone}'];
    assert.deepEqual(Object.keys(things?.get?.responses['200']?.content ?? {}), ['application/json', 'application/yaml']);
    const body = things?.put?.requestBody?.content ?? {};
    assert.deepEqual(Object.keys(body), ['application/json', 'application/yaml']);
    assert.deepEqual(body['application/yaml']?.schema, body['application/json']?.schema);
  });

  it('shows the internal node-sysdump endpoint as what it is over HTTPS: a 403, never a success', () => {
    const internal = buildOpenApiDocument([route('POST', SUPPORT_NODE_SYSDUMP_PATH, { access: 'public', routing: 'local' })], SUPPORT_SCHEMAS, '1.2.3') as {
      paths: Record<string, Record<string, { responses: Record<string, { description: string }>; 'x-internal'?: boolean }>>;
    };
    const operation = internal.paths[SUPPORT_NODE_SYSDUMP_PATH]?.post;
    assert.deepEqual(Object.keys(operation?.responses ?? {}), ['403']);
    assert.match(operation?.responses['403']?.description ?? '', /cluster members over the cluster port/);
    assert.equal(operation?.['x-internal'], true);
  });
});
