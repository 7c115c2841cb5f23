import type { Command, Role } from './commands.js';
import type { SqliteDatabase } from './database.js';

/** How long an expired service-account token stays listed before its account's next token removes it. */
export const EXPIRED_TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** A signing key as stored. The private key never leaves the store except to sign locally. */
export interface SigningKeyRecord {
  kid: string;
  public_key_pem: string;
  private_key_pem: string;
  status: 'active' | 'previous' | 'retired';
  created_at: string;
  created_by: string;
  retired_at: string | null;
}

/** Key metadata safe to show: no key material. */
export type SigningKeyInfo = Omit<SigningKeyRecord, 'private_key_pem' | 'public_key_pem'>;

export interface ServiceAccountRecord {
  id: string;
  name: string;
  description: string;
  role: Role;
  status: 'active' | 'disabled';
  created_at: string;
  created_by: string;
}

/** Token metadata; the raw token is never stored (only its id, the JWT's `jti`). */
export interface ServiceAccountTokenRecord {
  id: string;
  sa_id: string;
  name: string;
  role: Role;
  kid: string;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export type AuthCommand = Extract<Command, { type: `auth.${string}` | `sa.${string}` }>;

/** Why an auth command changed nothing; decided deterministically at apply time on every node. */
export type AuthRefusal = 'not_found' | 'conflict' | 'active_key' | 'role_exceeds_account' | 'account_disabled';

export type AuthApplyResult =
  | { type: 'auth.key.add'; key: SigningKeyInfo }
  | { type: 'auth.key.retire'; ok: true; key: SigningKeyInfo }
  | { type: AuthCommand['type']; ok: false; refusal: AuthRefusal }
  | { type: 'sa.create' | 'sa.update'; ok: true; account: ServiceAccountRecord }
  | { type: 'sa.delete'; ok: true }
  | { type: 'sa.token.create'; ok: true; token: ServiceAccountTokenRecord }
  | { type: 'sa.token.revoke'; ok: true; token: ServiceAccountTokenRecord };

const KEY_INFO_COLUMNS = 'kid, status, created_at, created_by, retired_at';
const ACCOUNT_COLUMNS = 'id, name, description, role, status, created_at, created_by';
const TOKEN_COLUMNS = 'id, sa_id, name, role, kid, created_at, created_by, expires_at, revoked_at';

const ROLE_RANK: Record<Role, number> = { readonly: 0, admin: 1 };

/** True when `wanted` grants no more than `held`. */
export function roleWithin(wanted: Role, held: Role): boolean {
  return ROLE_RANK[wanted] <= ROLE_RANK[held];
}

/** Auth tables of the state machine: apply and read. Used only inside StateMachine transactions. */
export class AuthTables {
  constructor(private readonly db: SqliteDatabase) {}

  apply(command: AuthCommand, index: number): AuthApplyResult {
    const db = this.db;
    switch (command.type) {
      case 'auth.key.add': {
        if (this.key(command.kid)) return { type: command.type, ok: false, refusal: 'conflict' };
        db.prepare("UPDATE auth_keys SET status = 'previous', raft_index = ? WHERE status = 'active'").run(index);
        db.prepare(
          `INSERT INTO auth_keys (kid, public_key_pem, private_key_pem, status, created_at, created_by, retired_at, raft_index)
           VALUES (?, ?, ?, 'active', ?, ?, NULL, ?)`,
        ).run(command.kid, command.public_key_pem, command.private_key_pem, command.created_at, command.created_by, index);
        return { type: command.type, key: this.keyInfo(command.kid) as SigningKeyInfo };
      }
      case 'auth.key.retire': {
        const key = this.key(command.kid);
        if (!key || key.status === 'retired') return { type: command.type, ok: false, refusal: 'not_found' };
        if (key.status === 'active') return { type: command.type, ok: false, refusal: 'active_key' };
        db.prepare("UPDATE auth_keys SET status = 'retired', retired_at = ?, raft_index = ? WHERE kid = ?").run(command.retired_at, index, command.kid);
        return { type: command.type, ok: true, key: this.keyInfo(command.kid) as SigningKeyInfo };
      }
      case 'sa.create': {
        if (this.account(command.id) || this.accountByName(command.name)) return { type: command.type, ok: false, refusal: 'conflict' };
        db.prepare(
          `INSERT INTO service_accounts (id, name, description, role, status, created_at, created_by, raft_index)
           VALUES (?, ?, ?, ?, 'active', ?, ?, ?)`,
        ).run(command.id, command.name, command.description, command.role, command.created_at, command.created_by, index);
        return { type: command.type, ok: true, account: this.account(command.id) as ServiceAccountRecord };
      }
      case 'sa.update': {
        const account = this.account(command.id);
        if (!account) return { type: command.type, ok: false, refusal: 'not_found' };
        if (command.name !== undefined && command.name !== account.name && this.accountByName(command.name)) {
          return { type: command.type, ok: false, refusal: 'conflict' };
        }
        const next = {
          name: command.name ?? account.name,
          description: command.description ?? account.description,
          role: command.role ?? account.role,
          status: command.status ?? account.status,
        };
        db.prepare('UPDATE service_accounts SET name = ?, description = ?, role = ?, status = ?, raft_index = ? WHERE id = ?').run(
          next.name, next.description, next.role, next.status, index, command.id,
        );
        if (next.status === 'disabled') {
          db.prepare('UPDATE sa_tokens SET revoked_at = ?, raft_index = ? WHERE sa_id = ? AND revoked_at IS NULL').run(command.updated_at, index, command.id);
        }
        if (next.role === 'readonly') {
          // A demoted account keeps no admin tokens.
          db.prepare("UPDATE sa_tokens SET revoked_at = ?, raft_index = ? WHERE sa_id = ? AND role = 'admin' AND revoked_at IS NULL").run(command.updated_at, index, command.id);
        }
        return { type: command.type, ok: true, account: this.account(command.id) as ServiceAccountRecord };
      }
      case 'sa.delete': {
        if (!this.account(command.id)) return { type: command.type, ok: false, refusal: 'not_found' };
        db.prepare('DELETE FROM sa_tokens WHERE sa_id = ?').run(command.id);
        db.prepare('DELETE FROM service_accounts WHERE id = ?').run(command.id);
        return { type: command.type, ok: true };
      }
      case 'sa.token.create': {
        const account = this.account(command.sa_id);
        if (!account) return { type: command.type, ok: false, refusal: 'not_found' };
        if (account.status !== 'active') return { type: command.type, ok: false, refusal: 'account_disabled' };
        if (!roleWithin(command.role, account.role)) return { type: command.type, ok: false, refusal: 'role_exceeds_account' };
        if (this.token(command.id)) return { type: command.type, ok: false, refusal: 'conflict' };
        // The account's tokens that expired more than the retention before this one was made go:
        // automation that mints a token per job would otherwise grow the table (and every
        // snapshot) forever. Decided from the command's own time, so every replica does the same.
        const createdMs = Date.parse(command.created_at);
        if (Number.isFinite(createdMs)) {
          db.prepare('DELETE FROM sa_tokens WHERE sa_id = ? AND expires_at IS NOT NULL AND expires_at < ?').run(command.sa_id, new Date(createdMs - EXPIRED_TOKEN_RETENTION_MS).toISOString());
        }
        db.prepare(
          `INSERT INTO sa_tokens (id, sa_id, name, role, kid, created_at, created_by, expires_at, revoked_at, raft_index)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
        ).run(command.id, command.sa_id, command.name, command.role, command.kid, command.created_at, command.created_by, command.expires_at, index);
        return { type: command.type, ok: true, token: this.token(command.id) as ServiceAccountTokenRecord };
      }
      case 'sa.token.revoke': {
        const token = this.token(command.id);
        if (!token || token.sa_id !== command.sa_id) return { type: command.type, ok: false, refusal: 'not_found' };
        if (token.revoked_at === null) {
          db.prepare('UPDATE sa_tokens SET revoked_at = ?, raft_index = ? WHERE id = ?').run(command.revoked_at, index, command.id);
        }
        return { type: command.type, ok: true, token: this.token(command.id) as ServiceAccountTokenRecord };
      }
    }
  }

  key(kid: string): SigningKeyRecord | null {
    return (this.db.prepare('SELECT kid, public_key_pem, private_key_pem, status, created_at, created_by, retired_at FROM auth_keys WHERE kid = ?').get(kid) as SigningKeyRecord | undefined) ?? null;
  }

  keyInfo(kid: string): SigningKeyInfo | null {
    return (this.db.prepare(`SELECT ${KEY_INFO_COLUMNS} FROM auth_keys WHERE kid = ?`).get(kid) as SigningKeyInfo | undefined) ?? null;
  }

  activeKey(): SigningKeyRecord | null {
    return (this.db.prepare("SELECT kid, public_key_pem, private_key_pem, status, created_at, created_by, retired_at FROM auth_keys WHERE status = 'active'").get() as SigningKeyRecord | undefined) ?? null;
  }

  keys(): SigningKeyInfo[] {
    return this.db.prepare(`SELECT ${KEY_INFO_COLUMNS} FROM auth_keys ORDER BY created_at, kid`).all() as SigningKeyInfo[];
  }

  account(id: string): ServiceAccountRecord | null {
    return (this.db.prepare(`SELECT ${ACCOUNT_COLUMNS} FROM service_accounts WHERE id = ?`).get(id) as ServiceAccountRecord | undefined) ?? null;
  }

  accountByName(name: string): ServiceAccountRecord | null {
    return (this.db.prepare(`SELECT ${ACCOUNT_COLUMNS} FROM service_accounts WHERE name = ?`).get(name) as ServiceAccountRecord | undefined) ?? null;
  }

  accounts(): ServiceAccountRecord[] {
    return this.db.prepare(`SELECT ${ACCOUNT_COLUMNS} FROM service_accounts ORDER BY name`).all() as ServiceAccountRecord[];
  }

  token(id: string): ServiceAccountTokenRecord | null {
    return (this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM sa_tokens WHERE id = ?`).get(id) as ServiceAccountTokenRecord | undefined) ?? null;
  }

  tokens(saId: string): ServiceAccountTokenRecord[] {
    return this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM sa_tokens WHERE sa_id = ? ORDER BY created_at, id`).all(saId) as ServiceAccountTokenRecord[];
  }
}
