import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import type { NodeProcess } from './harness.js';

/** Every object schema that names its properties also refuses others (the test's copy only). */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const copy = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, key === 'properties' ? Object.fromEntries(Object.entries(value as object).map(([name, sub]) => [name, closed(sub)])) : closed(value)]));
  if ('properties' in copy && !('additionalProperties' in copy)) copy.additionalProperties = false;
  return copy;
}

/**
 * Asserts that `body` (a 200 answer of `GET path`) matches the response schema the node itself
 * publishes in `/api/v1/openapi.json`, with no field the schema leaves out.
 */
export async function assertMatchesPublishedSchema(node: NodeProcess, path: string, body: unknown): Promise<void> {
  const document = (await node.api('GET', '/api/v1/openapi.json')).json as { paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, { schema: object }> }> } }> };
  const schema = document.paths[path]?.get?.responses['200']?.content?.['application/json']?.schema;
  assert.ok(schema !== undefined, `GET ${path} has a published response schema`);
  const validate = new Ajv({ allErrors: true, strict: false, validateFormats: false, logger: false }).compile(closed(schema) as object);
  assert.ok(validate(body), `GET ${path} does not match its published schema: ${JSON.stringify(validate.errors)}\n${JSON.stringify(body)}`);
}
