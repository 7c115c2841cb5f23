import { Ajv, type ErrorObject } from 'ajv';
import { NeuwerkError } from '../errors.js';

// verbose: errors carry their schema, so a `not: {required: [...]}` can name the fields it forbids together.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });

function renderPath(instancePath: string): string {
  const path = instancePath
    .split('/')
    .slice(1)
    .reduce((acc, segment) => (/^\d+$/.test(segment) ? `${acc}[${segment}]` : acc === '' ? segment : `${acc}.${segment}`), '');
  return path === '' ? 'body' : path;
}

function valueAt(document: unknown, instancePath: string): unknown {
  let current = document;
  for (const segment of instancePath.split('/').slice(1)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function describe(document: unknown, error: ErrorObject): string {
  const path = renderPath(error.instancePath);
  const shown = JSON.stringify(valueAt(document, error.instancePath))?.slice(0, 80) ?? 'nothing';
  switch (error.keyword) {
    case 'additionalProperties':
      return `${path === 'body' ? '' : `${path}.`}${(error.params as { additionalProperty: string }).additionalProperty}: unknown field`;
    case 'required':
      return `${path}: missing required field "${(error.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `${path}: ${shown} is not one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'not': {
      const together = (error.schema as { required?: unknown } | undefined)?.required;
      if (Array.isArray(together)) return `${path === 'body' ? '' : `${path}: `}${together.map((field) => `"${String(field)}"`).join(' and ')} cannot be given together`;
      return `${path}: ${shown} ${error.message ?? 'is invalid'}`;
    }
    default:
      return `${path}: ${shown} ${error.message ?? 'is invalid'}`;
  }
}

/**
 * Compiles a JSON schema for a request body; the validator returns the typed body or throws a 400
 * (NW_ERR_VALIDATION) whose message names the failing field and value. The same schema objects
 * are published in the OpenAPI document.
 */
export function bodyValidator<T>(schema: object): (body: unknown) => T {
  const validate = ajv.compile(schema);
  return (body: unknown): T => {
    let messages: string[];
    try {
      if (validate(body)) return body as T;
      messages = [...new Set((validate.errors ?? []).filter((e) => e.keyword !== 'if' && e.keyword !== 'oneOf').map((e) => describe(body, e)))];
    } catch (err) {
      // A value nested too deeply for the checks' recursion (JSON bodies are refused deeper than
      // JSON_MAX_DEPTH before this; other sources, e.g. YAML, may still get here).
      if (err instanceof RangeError) throw new NeuwerkError('NW_ERR_VALIDATION', 'body: nested too deeply to check');
      throw err;
    }
    throw new NeuwerkError('NW_ERR_VALIDATION', messages.join('; '), { detail: { errors: messages } });
  };
}

/**
 * Refuses a query parameter the route does not read (a typo such as `?prefx=` would otherwise be
 * ignored silently), naming it and the ones the route takes.
 * @throws NeuwerkError NW_ERR_VALIDATION (HTTP 400).
 */
export function checkQueryNames(query: URLSearchParams, known: ReadonlySet<string>): void {
  for (const name of query.keys()) {
    if (!known.has(name)) throw new NeuwerkError('NW_ERR_VALIDATION', `${name.slice(0, 80)}: unknown query parameter (expected ${[...known].join(', ')})`);
  }
}
