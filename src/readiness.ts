/** One readiness check result as `/ready` and `neuwerk ready` show it (DESIGN §6). */
export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  /** Why the check fails, or useful facts when it passes (null when there is nothing to say). Never secrets. */
  readonly detail: string | null;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: readonly ReadinessCheck[];
}

type CheckFunction = () => { ok: boolean; detail?: string | null };

/**
 * The node's readiness: each subsystem registers a check when it exists. A node is ready when
 * every registered check passes and it is not draining.
 */
export class Readiness {
  private readonly checks = new Map<string, CheckFunction>();
  private drainingReason: string | null = null;

  register(name: string, check: CheckFunction): void {
    this.checks.set(name, check);
  }

  /** Marks the node as leaving service (graceful stop): `/ready` fails before listeners close. */
  drain(reason: string): void {
    this.drainingReason = reason;
  }

  evaluate(): ReadinessReport {
    const checks: ReadinessCheck[] = [];
    for (const [name, check] of this.checks) {
      try {
        const result = check();
        checks.push({ name, ok: result.ok, detail: result.detail ?? (result.ok ? null : 'not ready') });
      } catch (err) {
        checks.push({ name, ok: false, detail: `check failed: ${(err as Error).message}` });
      }
    }
    if (this.drainingReason !== null) checks.push({ name: 'draining', ok: false, detail: this.drainingReason });
    return { ready: checks.every((c) => c.ok), checks };
  }
}
