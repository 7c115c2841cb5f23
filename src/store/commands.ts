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
  /** `proxy_addr`/`dns_addr` absent: keep the member's recorded value (older entries carry neither). */
  | {
      v: 1;
      type: 'member.upsert';
      node_id: string;
      cluster_addr: string | null;
      http_addr: string;
      proxy_addr?: string | null;
      dns_addr?: string | null;
      role: 'voter' | 'learner';
      joined_at: string;
    }
  | { v: 1; type: 'member.remove'; node_id: string }
  | { v: 1; type: 'settings.put'; key: string; value: string }
  /** Adds a signing key and makes it the active one; the previous active key keeps verifying. */
  | { v: 1; type: 'auth.key.add'; kid: string; public_key_pem: string; private_key_pem: string; created_at: string; created_by: string }
  /** Retires a key: its tokens stop verifying. Refused (no change) for the active key. */
  | { v: 1; type: 'auth.key.retire'; kid: string; retired_at: string }
  | { v: 1; type: 'sa.create'; id: string; name: string; description: string; role: Role; created_at: string; created_by: string }
  /** Changes an account; setting status "disabled" revokes all its tokens at `updated_at`. */
  | { v: 1; type: 'sa.update'; id: string; name?: string; description?: string; role?: Role; status?: 'active' | 'disabled'; updated_at: string }
  | { v: 1; type: 'sa.delete'; id: string }
  | { v: 1; type: 'sa.token.create'; id: string; sa_id: string; name: string; role: Role; kid: string; created_at: string; created_by: string; expires_at: string | null }
  | { v: 1; type: 'sa.token.revoke'; sa_id: string; id: string; revoked_at: string }
  /**
   * Replaces the singleton policy document. The proposer validated and compiled it; apply only
   * stores it (the Raft index becomes its version) and every node replays it into enforcement.
   */
  | { v: 1; type: 'policy.set'; document: Record<string, unknown>; set_by: string; set_at: string }
  /** Records the cluster CA certificate (never its key) once, on the seed. */
  | { v: 1; type: 'ca.set'; cluster_id: string; cert_pem: string }
  /** A node's copy of the CA key, encrypted under the bootstrap token that enrolled it. */
  | { v: 1; type: 'ca.envelope.put'; node_id: string; envelope: Record<string, string> }
  /** Removes a member for good: its identity may never rejoin (a fresh join needs a new node id). */
  | { v: 1; type: 'member.tombstone'; node_id: string; removed_at: string };

/** API roles: `admin` may write, `readonly` may only read (DESIGN §6). */
export type Role = 'admin' | 'readonly';

export type CommandType = Command['type'];

const name = { type: 'string', pattern: KEYVAL_NAME_PATTERN } as const;
const id = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } as const;
const text = (maxLength: number) => ({ type: 'string', maxLength }) as const;
const timestamp = { type: 'string', minLength: 1, maxLength: 64 } as const;
const role = { enum: ['admin', 'readonly'] } as const;
const pem = { type: 'string', minLength: 1, maxLength: 8192 } as const;
const shape = (type: string, required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  additionalProperties: false,
  required: ['v', 'type', ...required],
  properties: { v: { const: 1 }, type: { const: type }, ...properties },
});

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
        proxy_addr: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }] },
        dns_addr: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }] },
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
    shape('auth.key.add', ['kid', 'public_key_pem', 'private_key_pem', 'created_at', 'created_by'], {
      kid: id, public_key_pem: pem, private_key_pem: pem, created_at: timestamp, created_by: text(256),
    }),
    shape('auth.key.retire', ['kid', 'retired_at'], { kid: id, retired_at: timestamp }),
    shape('sa.create', ['id', 'name', 'description', 'role', 'created_at', 'created_by'], {
      id, name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' }, description: text(1024), role, created_at: timestamp, created_by: text(256),
    }),
    shape('sa.update', ['id', 'updated_at'], {
      id, name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' }, description: text(1024), role, status: { enum: ['active', 'disabled'] }, updated_at: timestamp,
    }),
    shape('sa.delete', ['id'], { id }),
    shape('sa.token.create', ['id', 'sa_id', 'name', 'role', 'kid', 'created_at', 'created_by', 'expires_at'], {
      id, sa_id: id, name: text(128), role, kid: id, created_at: timestamp, created_by: text(256), expires_at: { anyOf: [{ type: 'null' }, timestamp] },
    }),
    shape('sa.token.revoke', ['sa_id', 'id', 'revoked_at'], { sa_id: id, id, revoked_at: timestamp }),
    shape('policy.set', ['document', 'set_by', 'set_at'], { document: { type: 'object' }, set_by: text(256), set_at: timestamp }),
    shape('ca.set', ['cluster_id', 'cert_pem'], { cluster_id: id, cert_pem: pem }),
    shape('ca.envelope.put', ['node_id', 'envelope'], {
      node_id: id,
      envelope: { type: 'object', additionalProperties: { type: 'string', maxLength: 16384 }, required: ['kid', 'salt', 'nonce', 'ciphertext', 'tag'] },
    }),
    shape('member.tombstone', ['node_id', 'removed_at'], { node_id: id, removed_at: timestamp }),
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
