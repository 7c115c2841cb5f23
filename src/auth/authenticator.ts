import type { KeyObject } from 'node:crypto';
import { NeuwerkError } from '../errors.js';
import { roleWithin } from '../store/auth-tables.js';
import type { StateMachine } from '../store/state-machine.js';
import { publicKeyFromPem, verifyToken, type Identity } from './tokens.js';

/** Verified tokens remembered to skip repeated signature checks (revocation is still checked). */
export const VERIFIED_TOKEN_CACHE_ENTRIES = 10_000;

/**
 * Verifies bearer tokens against the replicated keyset and service-account records of the local
 * replica, so a key retirement, a revocation or a disabled account takes effect on a node as soon
 * as the change is applied there.
 */
export class Authenticator {
  private readonly parsedKeys = new Map<string, KeyObject>();
  private readonly verified = new Map<string, Identity>();

  constructor(private readonly stateMachine: StateMachine) {}

  private resolveKey = (kid: string): KeyObject | null => {
    const key = this.stateMachine.auth.key(kid);
    if (key === null || key.status === 'retired') return null;
    let parsed = this.parsedKeys.get(kid);
    if (parsed === undefined) {
      parsed = publicKeyFromPem(key.public_key_pem);
      this.parsedKeys.set(kid, parsed);
    }
    return parsed;
  };

  /** Returns the identity of a valid token or throws a 401-class NeuwerkError. */
  async authenticate(token: string, nowMs = Date.now()): Promise<Identity> {
    let identity = this.verified.get(token);
    if (identity === undefined) {
      identity = await verifyToken(token, this.resolveKey, nowMs);
      if (this.verified.size >= VERIFIED_TOKEN_CACHE_ENTRIES) {
        const oldest = this.verified.keys().next().value as string;
        this.verified.delete(oldest);
      }
      this.verified.set(token, identity);
    } else {
      // The signature was checked before; the key status and expiry may have changed since.
      if (this.resolveKey(identity.kid) === null) throw new NeuwerkError('NW_ERR_AUTH_INVALID', 'token signed by an unknown or retired key');
      if (identity.exp !== null && identity.exp * 1000 + 30_000 <= nowMs) throw new NeuwerkError('NW_ERR_AUTH_EXPIRED', 'token has expired');
    }
    if (identity.sa_id !== null) this.checkServiceAccountToken(identity);
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
