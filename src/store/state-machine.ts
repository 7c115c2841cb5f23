import type { Statement } from 'better-sqlite3';
import { invariant, NeuwerkError } from '../errors.js';
import { AuthTables, type AuthApplyResult, type AuthCommand } from './auth-tables.js';
import { validateCommand, type Command } from './commands.js';
import type { SqliteDatabase } from './database.js';

/** A committed log entry as the state machine sees it. */
export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  /** JSON command text; '' for a leader's no-op entry and for configuration entries. */
  readonly data: string;
}

export interface KeyvalRecord {
  zone: string;
  key: string;
  value: string;
  /** The Raft index that last wrote the record. */
  version: number;
  /** Milliseconds since the epoch, or null for no expiry. */
  expires_at: number | null;
}

export interface MemberRecord {
  node_id: string;
  cluster_addr: string | null;
  http_addr: string;
  /** The node's forward proxy as clients reach it; null when it runs none or has not said yet. */
  proxy_addr: string | null;
  /** The node's DNS proxy (UDP and TCP); null when it runs none or has not said yet. */
  dns_addr: string | null;
  role: 'voter' | 'learner';
  joined_at: string;
  raft_index: number;
}

interface MemberUpsertParams {
  node_id: string;
  cluster_addr: string | null;
  http_addr: string;
  proxy_addr: string | null;
  dns_addr: string | null;
  /** 1 when the command carries `proxy_addr` (else the recorded value stays). */
  set_proxy: 0 | 1;
  set_dns: 0 | 1;
  role: string;
  joined_at: string;
  raft_index: number;
}

const MEMBER_COLUMNS = 'node_id, cluster_addr, http_addr, proxy_addr, dns_addr, role, joined_at, raft_index';

/** What applying one command produced; returned to the proposer once the entry is applied. */
export type ApplyResult =
  | { type: 'keyval.put'; record: KeyvalRecord }
  | { type: 'keyval.delete'; deleted: boolean }
  | { type: 'keyval.expire'; deleted: number }
  | { type: 'member.upsert'; member: MemberRecord }
  | { type: 'member.remove'; removed: boolean }
  | { type: 'settings.put' }
  | AuthApplyResult
  | { type: 'policy.set'; version: number; previousVersion: number | null }
  | { type: 'ca.set' | 'ca.envelope.put' | 'member.tombstone' }
  | { type: 'noop' };

/** An applied batch's results; `notify` tells the listeners once the caller's transaction committed. */
export interface DeferredApply {
  readonly results: ApplyResult[];
  readonly notify: () => void;
}

/** The stored policy document and its version (the Raft index that set it). */
export interface PolicyRecord {
  document: Record<string, unknown>;
  version: number;
  set_by: string;
  set_at: string;
}

/**
 * Told after each applied batch (outside the transaction) which command types it held, or
 * 'snapshot' after the tables were replaced wholesale: how enforcement state replays changes.
 * A batch with keyval puts or deletes also names each zone they touched as
 * `keyvalZoneChange(zone)`, so a listener for one zone skips batches that wrote others.
 */
export type AppliedListener = (types: ReadonlySet<string>) => void;

/** The AppliedListener marker of a batch that put or deleted keys of `zone`. */
export function keyvalZoneChange(zone: string): string {
  return `keyval.zone:${zone}`;
}

/**
 * The control-plane state machine: SQLite tables changed only by applying committed commands.
 * `apply` records the applied index in the same transaction as the changes, so a crash never
 * applies an entry twice or skips one (DESIGN §4).
 */
export class StateMachine {
  private readonly statements: {
    getMeta: Statement<[string], { value: string }>;
    setApplied: Statement<[string, string]>;
    putKeyval: Statement<[string, string, string, number, number | null, number]>;
    getKeyval: Statement<[string, string], KeyvalRecord>;
    deleteKeyval: Statement<[string, string]>;
    expireKeyval: Statement<[number]>;
    upsertMember: Statement<[MemberUpsertParams]>;
    getMember: Statement<[string], MemberRecord>;
    deleteMember: Statement<[string]>;
    putSetting: Statement<[string, string, number]>;
  };
  private appliedIndexValue: number;
  private appliedTermValue: number;
  /** Signing keys, service accounts and their tokens. */
  readonly auth: AuthTables;
  private readonly listeners: AppliedListener[] = [];
  private readonly preparedBySql = new Map<string, Statement>();
  /**
   * `applyBatch` in a transaction, made once (better-sqlite3 builds its wrappers on every
   * `transaction()` call); inside a caller's transaction it runs as a savepoint of it.
   */
  private readonly applyTransaction: (batch: readonly AppliedEntry[], zones: Set<string>) => ApplyResult[];

  constructor(private readonly db: SqliteDatabase) {
    this.auth = new AuthTables(db);
    this.applyTransaction = db.transaction((batch: readonly AppliedEntry[], zones: Set<string>) => this.applyBatch(batch, zones));
    this.statements = {
      getMeta: db.prepare('SELECT value FROM sm_meta WHERE key = ?'),
      // The applied index and term, in one statement (one per applied batch).
      setApplied: db.prepare(
        "INSERT INTO sm_meta (key, value) VALUES ('applied_index', ?), ('applied_term', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ),
      putKeyval: db.prepare(
        `INSERT INTO keyval (zone, key, value, version, expires_at, raft_index) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (zone, key) DO UPDATE SET value = excluded.value, version = excluded.version,
           expires_at = excluded.expires_at, raft_index = excluded.raft_index`,
      ),
      getKeyval: db.prepare('SELECT zone, key, value, version, expires_at FROM keyval WHERE zone = ? AND key = ?'),
      deleteKeyval: db.prepare('DELETE FROM keyval WHERE zone = ? AND key = ?'),
      expireKeyval: db.prepare('DELETE FROM keyval WHERE expires_at IS NOT NULL AND expires_at <= ?'),
      upsertMember: db.prepare(
        `INSERT INTO members (node_id, cluster_addr, http_addr, proxy_addr, dns_addr, role, joined_at, raft_index)
         VALUES (@node_id, @cluster_addr, @http_addr, @proxy_addr, @dns_addr, @role, @joined_at, @raft_index)
         ON CONFLICT (node_id) DO UPDATE SET cluster_addr = excluded.cluster_addr, http_addr = excluded.http_addr,
           proxy_addr = CASE WHEN @set_proxy THEN excluded.proxy_addr ELSE members.proxy_addr END,
           dns_addr = CASE WHEN @set_dns THEN excluded.dns_addr ELSE members.dns_addr END,
           role = excluded.role, raft_index = excluded.raft_index`,
      ),
      getMember: db.prepare(`SELECT ${MEMBER_COLUMNS} FROM members WHERE node_id = ?`),
      deleteMember: db.prepare('DELETE FROM members WHERE node_id = ?'),
      putSetting: db.prepare(
        'INSERT INTO settings (key, value, raft_index) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, raft_index = excluded.raft_index',
      ),
    };
    this.appliedIndexValue = Number(this.statements.getMeta.get('applied_index')?.value ?? 0);
    this.appliedTermValue = Number(this.statements.getMeta.get('applied_term')?.value ?? 0);
  }
  /** Prepares `sql` once per store connection (better-sqlite3 compiles on every `prepare`). */
  private statement(sql: string): Statement {
    let prepared = this.preparedBySql.get(sql);
    if (prepared === undefined) {
      prepared = this.db.prepare(sql);
      this.preparedBySql.set(sql, prepared);
    }
    return prepared;
  }


  /**
   * Re-reads the applied index and term from the database; call after the tables were replaced
   * wholesale by a snapshot install.
   */
  reload(): void {
    this.appliedIndexValue = Number(this.statements.getMeta.get('applied_index')?.value ?? 0);
    this.appliedTermValue = Number(this.statements.getMeta.get('applied_term')?.value ?? 0);
    this.notify(new Set(['snapshot']));
  }

  /** Registers a listener for applied batches (see AppliedListener). */
  onApplied(listener: AppliedListener): void {
    this.listeners.push(listener);
  }

  private notify(types: ReadonlySet<string>): void {
    for (const listener of this.listeners) listener(types);
  }

  /** Index of the last applied entry (0 before any). */
  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get appliedTerm(): number {
    return this.appliedTermValue;
  }

  /**
   * Applies committed entries in one transaction and returns one result per entry. An entry that
   * was committed but cannot be applied is a bug (the command was validated at propose time):
   * the error propagates as an invariant violation and the node must stop rather than diverge.
   */
  apply(entries: readonly AppliedEntry[]): ApplyResult[] {
    const applied = this.applyDeferringNotify(entries);
    applied.notify();
    return applied.results;
  }

  /**
   * `apply` for a caller that runs it inside a transaction of its own (it becomes a savepoint of
   * it): the listeners, told outside the transaction, are told when the caller calls `notify()`
   * after its commit.
   */
  applyDeferringNotify(entries: readonly AppliedEntry[]): DeferredApply {
    if (entries.length === 0) return { results: [], notify: () => undefined };
    const zones = new Set<string>();
    const results = this.applyTransaction(entries, zones);
    const last = entries[entries.length - 1] as AppliedEntry;
    this.appliedIndexValue = last.index;
    this.appliedTermValue = last.term;
    const notify = (): void => {
      if (this.listeners.length === 0) return;
      for (const result of results) zones.add(result.type);
      this.notify(zones);
    };
    return { results, notify };
  }

  /** The body of `apply`'s transaction; adds to `zones` the keyval zones the batch wrote. */
  private applyBatch(batch: readonly AppliedEntry[], zones: Set<string>): ApplyResult[] {
    const results: ApplyResult[] = [];
    let expected = this.appliedIndexValue + 1;
    for (const entry of batch) {
      invariant(entry.index === expected, () => `apply out of order: expected index ${expected}, got ${entry.index}`);
      if (entry.data === '') {
        results.push({ type: 'noop' });
      } else {
        const command = parseCommitted(entry);
        results.push(this.applyCommand(command, entry.index));
        if (command.type === 'keyval.put' || command.type === 'keyval.delete') zones.add(keyvalZoneChange(command.zone));
      }
      expected += 1;
    }
    const last = batch[batch.length - 1] as AppliedEntry;
    this.statements.setApplied.run(String(last.index), String(last.term));
    return results;
  }

  private applyCommand(command: Command, index: number): ApplyResult {
    switch (command.type) {
      case 'keyval.put': {
        this.statements.putKeyval.run(command.zone, command.key, command.value, index, command.expires_at, index);
        return { type: 'keyval.put', record: { zone: command.zone, key: command.key, value: command.value, version: index, expires_at: command.expires_at } };
      }
      case 'keyval.delete':
        return { type: 'keyval.delete', deleted: this.statements.deleteKeyval.run(command.zone, command.key).changes > 0 };
      case 'keyval.expire':
        return { type: 'keyval.expire', deleted: this.statements.expireKeyval.run(command.now_ms).changes };
      case 'member.upsert': {
        this.statements.upsertMember.run({
          node_id: command.node_id,
          cluster_addr: command.cluster_addr,
          http_addr: command.http_addr,
          proxy_addr: command.proxy_addr ?? null,
          dns_addr: command.dns_addr ?? null,
          set_proxy: command.proxy_addr === undefined ? 0 : 1,
          set_dns: command.dns_addr === undefined ? 0 : 1,
          role: command.role,
          joined_at: command.joined_at,
          raft_index: index,
        });
        return { type: 'member.upsert', member: this.statements.getMember.get(command.node_id) as MemberRecord };
      }
      case 'member.remove':
        return { type: 'member.remove', removed: this.statements.deleteMember.run(command.node_id).changes > 0 };
      case 'settings.put':
        this.statements.putSetting.run(command.key, command.value, index);
        return { type: 'settings.put' };
      case 'auth.key.add':
      case 'auth.key.retire':
      case 'sa.create':
      case 'sa.update':
      case 'sa.delete':
      case 'sa.token.create':
      case 'sa.token.revoke':
        return this.auth.apply(command as AuthCommand, index);
      case 'policy.set': {
        const previousVersion = this.policyVersion() || null;
        this.db
          .prepare(
            `INSERT INTO policy (id, document, version, raft_index, set_by, set_at) VALUES (1, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET document = excluded.document, version = excluded.version,
               raft_index = excluded.raft_index, set_by = excluded.set_by, set_at = excluded.set_at`,
          )
          .run(JSON.stringify(command.document), index, index, command.set_by, command.set_at);
        return { type: 'policy.set', version: index, previousVersion };
      }
      case 'ca.set':
        // The first CA wins: a second seed can never replace the cluster's trust root.
        this.statement('INSERT INTO cluster_ca (id, cluster_id, cert_pem, raft_index) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING').run(command.cluster_id, command.cert_pem, index);
        return { type: 'ca.set' };
      case 'ca.envelope.put':
        this.db
          .prepare('INSERT INTO ca_envelopes (node_id, envelope, raft_index) VALUES (?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET envelope = excluded.envelope, raft_index = excluded.raft_index')
          .run(command.node_id, JSON.stringify(command.envelope), index);
        return { type: 'ca.envelope.put' };
      case 'member.tombstone':
        this.statement('DELETE FROM members WHERE node_id = ?').run(command.node_id);
        this.statement('DELETE FROM ca_envelopes WHERE node_id = ?').run(command.node_id);
        this.statement('INSERT INTO removed_members (node_id, removed_at, raft_index) VALUES (?, ?, ?) ON CONFLICT (node_id) DO NOTHING').run(command.node_id, command.removed_at, index);
        return { type: 'member.tombstone' };
      default:
        return assertNever(command);
    }
  }

  /** Reads one key from the local replica; an expired key reads as absent. */
  getKeyval(zone: string, key: string, nowMs: number): KeyvalRecord | null {
    const record = this.statements.getKeyval.get(zone, key);
    if (!record || (record.expires_at !== null && record.expires_at <= nowMs)) return null;
    return record;
  }

  /** Lists keys of a zone in key order after `after`, skipping expired ones. */
  listKeyval(zone: string, options: { prefix: string; after: string | null; limit: number; nowMs: number }): KeyvalRecord[] {
    const rows = this
      .statement(
        `SELECT zone, key, value, version, expires_at FROM keyval
         WHERE zone = ? AND key > ? AND substr(key, 1, ?) = ? AND (expires_at IS NULL OR expires_at > ?)
         ORDER BY key LIMIT ?`,
      )
      .all(zone, options.after ?? '', options.prefix.length, options.prefix, options.nowMs, options.limit) as KeyvalRecord[];
    return rows;
  }

  /** The earliest expiry among stored keys, or null; lets the leader schedule expiry commands. */
  nextExpiryMs(): number | null {
    const row = this.statement('SELECT MIN(expires_at) AS next FROM keyval WHERE expires_at IS NOT NULL').get() as { next: number | null };
    return row.next;
  }

  /** The cluster CA certificate and cluster id, or null before the seed recorded them. */
  clusterCa(): { cluster_id: string; cert_pem: string } | null {
    return (this.statement('SELECT cluster_id, cert_pem FROM cluster_ca WHERE id = 1').get() as { cluster_id: string; cert_pem: string } | undefined) ?? null;
  }

  /** A node's encrypted copy of the CA key. */
  caEnvelope(nodeId: string): Record<string, string> | null {
    const row = this.statement('SELECT envelope FROM ca_envelopes WHERE node_id = ?').get(nodeId) as { envelope: string } | undefined;
    return row === undefined ? null : (JSON.parse(row.envelope) as Record<string, string>);
  }

  /** True when the node id was removed from the cluster for good. */
  isRemoved(nodeId: string): boolean {
    return this.statement('SELECT 1 FROM removed_members WHERE node_id = ?').get(nodeId) !== undefined;
  }

  /** The stored policy, or null before the first `policy.set`. */
  policy(): PolicyRecord | null {
    const row = this.statement('SELECT document, version, set_by, set_at FROM policy WHERE id = 1').get() as
      | { document: string; version: number; set_by: string; set_at: string }
      | undefined;
    return row === undefined ? null : { document: JSON.parse(row.document) as Record<string, unknown>, version: row.version, set_by: row.set_by, set_at: row.set_at };
  }

  /** The stored policy document as its JSON text, with its version (null before any): no parse. */
  policyText(): { readonly text: string; readonly version: number } | null {
    const row = this.statement('SELECT document, version FROM policy WHERE id = 1').get() as { document: string; version: number } | undefined;
    return row === undefined ? null : { text: row.document, version: row.version };
  }

  /** The version of the stored policy (0 before any): cheap, for readiness checks. */
  policyVersion(): number {
    const row = this.statement('SELECT version FROM policy WHERE id = 1').get() as { version: number } | undefined;
    return row?.version ?? 0;
  }

  /** One member's record (a keyed lookup, not a scan of the table). */
  member(nodeId: string): MemberRecord | undefined {
    return this.statements.getMember.get(nodeId);
  }

  members(): MemberRecord[] {
    return this.statement(`SELECT ${MEMBER_COLUMNS} FROM members ORDER BY node_id`).all() as MemberRecord[];
  }

  setting(key: string): string | null {
    const row = this.statement('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }
}

function parseCommitted(entry: AppliedEntry): Command {
  let parsed: unknown;
  try {
    parsed = JSON.parse(entry.data);
  } catch (err) {
    invariant(false, `committed entry ${entry.index} is not JSON: ${(err as Error).message}`);
  }
  try {
    return validateCommand(parsed);
  } catch (err) {
    const reason = err instanceof NeuwerkError ? err.message : String(err);
    invariant(false, `committed entry ${entry.index} is not a valid command: ${reason}`);
  }
}

function assertNever(value: never): never {
  invariant(false, `unhandled command ${JSON.stringify(value)}`);
}
