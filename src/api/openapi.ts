import type { Route } from './router.js';

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error', 'code'],
  properties: { error: { type: 'string' }, code: { type: 'string', pattern: '^NW_ERR_' } },
} as const;

/** A query parameter a route reads: its JSON schema and what it does. */
export interface QueryParameter {
  readonly schema: object;
  readonly description: string;
}

/**
 * Request and response schemas (and the query parameters) published per route, keyed by `METHOD
 * path`. Bodies are `application/json`; `requestMediaTypes` and `responseMediaTypes` name further
 * media types a route accepts or answers with (the request schema applies to each accepted one; a
 * further response type is a document of its own, e.g. YAML or a gzip archive).
 */
export type RouteSchemas = Record<
  string,
  {
    request?: object;
    requestMediaTypes?: readonly string[];
    response?: object;
    responseStatus?: number;
    responseMediaTypes?: Readonly<Record<string, object>>;
    query?: Readonly<Record<string, QueryParameter>>;
    /** A route that only ever refuses over HTTPS (an internal endpoint): its one answer, marked `x-internal`. */
    refusal?: { readonly status: number; readonly description: string };
  }
>;

/**
 * On a follower, an authenticated route with leader routing is proxied to the leader unless one of
 * these asks for this node's own answer (src/api/server.ts).
 */
const LOCAL_READ_PARAMETERS: Readonly<Record<string, QueryParameter>> = {
  stale: { schema: { type: 'boolean', default: false }, description: "true: answer from the serving node's replica instead of the leader's (may lag)." },
  local: { schema: { type: 'boolean', default: false }, description: "true: answer with the serving node's own view instead of the leader's." },
};

/**
 * Builds the OpenAPI 3.1 document from the router's own table and the schemas the server
 * validates with (JSON Schema 2020-12: `type: [..., "null"]` for a nullable field), so the
 * published contract cannot drift from what is served.
 */
export function buildOpenApiDocument(routes: readonly Route[], schemas: RouteSchemas, version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const route of routes) {
    const openApiPath = route.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const schema = schemas[`${route.method} ${route.path}`] ?? {};
    const localRead = route.method === 'GET' && route.access !== 'public' && (route.routing ?? 'leader') === 'leader';
    const query = { ...(localRead ? LOCAL_READ_PARAMETERS : {}), ...(schema.query ?? {}) };
    const parameters = [
      ...[...route.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries(query).map(([name, parameter]) => ({ name, in: 'query', required: false, description: parameter.description, schema: parameter.schema })),
    ];
    const operation: Record<string, unknown> = {
      summary: route.summary,
      parameters,
      responses: {
        [String(schema.responseStatus ?? 200)]: {
          description: 'Success',
          ...(schema.response || schema.responseMediaTypes
            ? {
                content: {
                  ...(schema.response ? { 'application/json': { schema: schema.response } } : {}),
                  ...Object.fromEntries(Object.entries(schema.responseMediaTypes ?? {}).map(([type, body]) => [type, { schema: body }])),
                },
              }
            : {}),
        },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    if (schema.request) {
      const types = ['application/json', ...(schema.requestMediaTypes ?? [])];
      operation.requestBody = { required: true, content: Object.fromEntries(types.map((type) => [type, { schema: schema.request }])) };
    }
    if (route.access !== 'public') operation.security = [{ bearer: [] }, { cookie: [] }];
    if (schema.refusal) {
      operation['x-internal'] = true;
      operation.responses = { [String(schema.refusal.status)]: { description: schema.refusal.description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } };
    }
    (paths[openApiPath] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'neuwerk management API', version },
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'neuwerk_auth' },
      },
    },
  };
}
