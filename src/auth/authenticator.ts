import { createHash, type KeyObject } from 'node:crypto';
import { NeuwerkError } from '../errors.js';
import { roleWithin } from '../store/auth-tables.js';
import type { StateMachine } from '../store/state-machine.js';
import { publicKeyFromPem, verifyToken, type Identity } from './tokens.js';

/** Verified tokens remembered to skip repeated signature checks (revocation is still checked). */
export const VERIFIED_TOKEN_CACHE_ENTRIES = 10_000;

/**
 * What the verified-token cache is keyed by: the token's SHA-256, so the cache holds no bearer
 * credential (a heap snapshot or core dump of a busy node would otherwise hold up to
 * `VERIFIED_TOKEN_CACHE_ENTRIES` live tokens).
 */
export function verifiedTokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}

/** Whether an applied batch (its AppliedListener types) may have changed the auth tables. */
export function changesAuthTables(types: ReadonlySet<string>): boolean {
  for (const type of types) if (type === 'snapshot' || type.startsWith('auth.') || type.startsWith('sa.')) return true;
  return false;
}

/**
 * Verifies bearer tokens against the replicated keyset and service-account records of the local
 * replica, so a key retirement, a revocation or a disabled account takes effect on a node as soon
 * as the change is applied there.
 *
 * What a request reads from those tables (a key's status, a service-account token's record and
 * account) is remembered until the next applied batch that can change them (any `auth.*` or
 * `sa.*` command, or a snapshot install): the state machine tells its listeners synchronously
 * after the batch's transaction, before any request runs again, so a cached answer is never one
 * the tables no longer give.
 */
export class Authenticator {
  private readonly parsedKeys = new Map<string, KeyObject>();
  /** `verifiedTokenKey(token)` -> the identity its verified signature gave. */
  private readonly verified = new Map<string, Identity>();
  /** kid -> its public key, or null for an unknown or retired kid, as the tables say now. */
  private keyStatus = new Map<string, KeyObject | null>();
  /** Service-account identities whose token record and account passed the check as the tables say now. */
  private accountChecked = new WeakSet<Identity>();

  constructor(private readonly stateMachine: StateMachine) {
    stateMachine.onApplied((types) => {
      if (!changesAuthTables(types)) return;
      this.keyStatus = new Map();
      this.accountChecked = new WeakSet();
      if (types.has('snapshot')) this.parsedKeys.clear();
    });
  }

  private resolveKey = (kid: string): KeyObject | null => {
    const known = this.keyStatus.get(kid);
    if (known !== undefined) return known;
    const key = this.stateMachine.auth.key(kid);
    let resolved: KeyObject | null = null;
    if (key !== null && key.status !== 'retired') {
      let parsed = this.parsedKeys.get(kid);
      if (parsed === undefined) {
        parsed = publicKeyFromPem(key.public_key_pem);
        this.parsedKeys.set(kid, parsed);
      }
      resolved = parsed;
    }
    // Bounded: the keyset holds a handful of kids, and a token's kid is only looked up once its
    // header parsed; unknown kids from forged tokens are not remembered.
    if (resolved !== null) this.keyStatus.set(kid, resolved);
    return resolved;
  };

  /** Returns the identity of a valid token or throws a 401-class NeuwerkError. */
  async authenticate(token: string, nowMs = Date.now()): Promise<Identity> {
    const cacheKey = verifiedTokenKey(token);
    let identity = this.verified.get(cacheKey);
    if (identity === undefined) {
      identity = await verifyToken(token, this.resolveKey, nowMs);
      if (this.verified.size >= VERIFIED_TOKEN_CACHE_ENTRIES) {
        const oldest = this.verified.keys().next().value as string;
        this.verified.delete(oldest);
      }
      this.verified.set(cacheKey, identity);
    } else {
      // The signature was checked before; the key status and expiry may have changed since.
      if (this.resolveKey(identity.kid) === null) throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'token signed by an unknown or retired key');
      if (identity.exp !== null && identity.exp * 1000 + 30_000 <= nowMs) throw new NeuwerkError('NW_ERR_AUTH_EXPIRED', 'token has expired');
    }
    if (identity.sa_id !== null && !this.accountChecked.has(identity)) {
      this.checkServiceAccountToken(identity);
      this.accountChecked.add(identity);
    }
    return identity;
  }

  private checkServiceAccountToken(identity: Identity): void {
    const record = this.stateMachine.auth.token(identity.jti);
    if (record === null || record.sa_id !== identity.sa_id) throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'service-account token is unknown');
    if (record.revoked_at !== null) throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'service-account token has been revoked');
    const account = this.stateMachine.auth.account(record.sa_id);
    if (account === null || account.status !== 'active') throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'service account is disabled or deleted');
    if (!identity.roles.every((role) => roleWithin(role, account.role))) throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'token role exceeds its service account');
  }
}
