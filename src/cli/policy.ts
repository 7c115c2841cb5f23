import { readFileSync } from 'node:fs';
import { NeuwerkError } from '../errors.js';
import type { ApiConnection } from './connection.js';
import { apiFailure } from './local-node.js';

/** Fetches the policy document as YAML or JSON text. */
export async function getPolicy(connection: ApiConnection, format: 'yaml' | 'json'): Promise<{ text: string; version: number | null }> {
  const response = await connection.call('GET', `/api/v1/policy?format=${format}`);
  if (response.status !== 200) throw apiFailure(response, 'policy get');
  return { text: format === 'json' ? `${JSON.stringify(response.json, null, 2)}\n` : response.text, version: null };
}

/** Applies a policy file (YAML or JSON, by content) and returns the server's answer. */
export async function applyPolicy(connection: ApiConnection, file: string): Promise<{ version: number; active: boolean; source_groups: number; rules: number }> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NeuwerkError('NW_ERR_USAGE', `-f: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const isJson = /^\s*\{/.test(text);
  const response = await connection.callRaw('PUT', '/api/v1/policy', text, isJson ? 'application/json' : 'application/yaml');
  if (response.status !== 200) throw apiFailure(response, `policy apply -f ${file}`);
  return response.json as { version: number; active: boolean; source_groups: number; rules: number };
}
