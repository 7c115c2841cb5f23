import { Ajv } from 'ajv';
import { NeuwerkError } from '../errors.js';

/**
 * The commands of the replicated log. Each is a versioned JSON document whose every value (ids,
 * timestamps) was fixed by the proposer, so applying it is deterministic on every node: apply
 * never reads the clock or a random source.
 */

/** Zone and key names: 1-253 characters of `[A-Za-z0-9._:-]` (DESIGN §6). */
export const KEYVAL_NAME_PATTERN = '^[A-Za-z0-9._:-]{1,253}$';
/** Largest keyval value, in bytes of UTF-8 (DESIGN §6). */
export const KEYVAL_VALUE_MAX_BYTES = 64 * 1024;

export type Command =
  | { v: 1; type: 'keyval.put'; zone: string; key: string; value: string; expires_at: number | null }
  | { v: 1; type: 'keyval.delete'; zone: string; key: string }
  /** Deletes every key whose `expires_at` <= `now_ms` (proposed periodically by the leader). */
  | { v: 1; type: 'keyval.expire'; now_ms: number }
  | { v: 1; type: 'member.upsert'; node_id: string; cluster_addr: string | null; http_addr: string; role: 'voter' | 'learner'; joined_at: string }
  | { v: 1; type: 'member.remove'; node_id: string }
  | { v: 1; type: 'settings.put'; key: string; value: string };

export type CommandType = Command['type'];

const name = { type: 'string', pattern: KEYVAL_NAME_PATTERN } as const;

const COMMAND_SCHEMA = {
  type: 'object',
  required: ['v', 'type'],
  properties: { v: { const: 1 }, type: { type: 'string' } },
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'zone', 'key', 'value', 'expires_at'],
      properties: {
        v: { const: 1 },
        type: { const: 'keyval.put' },
        zone: name,
        key: name,
        value: { type: 'string' },
        expires_at: { anyOf: [{ type: 'null' }, { type: 'integer', minimum: 0 }] },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'zone', 'key'],
      properties: { v: { const: 1 }, type: { const: 'keyval.delete' }, zone: name, key: name },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'now_ms'],
      properties: { v: { const: 1 }, type: { const: 'keyval.expire' }, now_ms: { type: 'integer', minimum: 0 } },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'node_id', 'cluster_addr', 'http_addr', 'role', 'joined_at'],
      properties: {
        v: { const: 1 },
        type: { const: 'member.upsert' },
        node_id: { type: 'string', minLength: 1, maxLength: 128 },
        cluster_addr: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }] },
        http_addr: { type: 'string', minLength: 1 },
        role: { enum: ['voter', 'learner'] },
        joined_at: { type: 'string', minLength: 1 },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'node_id'],
      properties: { v: { const: 1 }, type: { const: 'member.remove' }, node_id: { type: 'string', minLength: 1 } },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['v', 'type', 'key', 'value'],
      properties: { v: { const: 1 }, type: { const: 'settings.put' }, key: name, value: { type: 'string' } },
    },
  ],
} as const;

const ajv = new Ajv({ allErrors: false, strict: false });
const validateCommandDocument = ajv.compile(COMMAND_SCHEMA);

/**
 * Validates a command at propose time, so a bad command is refused with its reason and never
 * reaches the log. Throws `NW_ERR_COMMAND_INVALID` naming the offending field.
 */
export function validateCommand(candidate: unknown): Command {
  if (!validateCommandDocument(candidate)) {
    const type = (candidate as { type?: unknown } | null)?.type;
    const specific = (validateCommandDocument.errors ?? []).find((e) => e.instancePath !== '' && e.keyword !== 'const');
    const where = specific ? `${specific.instancePath.slice(1).replace(/\//g, '.')} ${specific.message ?? 'is invalid'}` : 'unknown command type or shape';
    throw new NeuwerkError('NW_ERR_COMMAND_INVALID', `invalid command ${JSON.stringify(type ?? null)}: ${where}`);
  }
  const command = candidate as Command;
  if (command.type === 'keyval.put' && Buffer.byteLength(command.value, 'utf8') > KEYVAL_VALUE_MAX_BYTES) {
    throw new NeuwerkError('NW_ERR_COMMAND_INVALID', `invalid command "keyval.put": value is larger than ${KEYVAL_VALUE_MAX_BYTES} bytes`);
  }
  return command;
}

/** Serialises a command for the log. */
export function encodeCommand(command: Command): string {
  return JSON.stringify(command);
}
