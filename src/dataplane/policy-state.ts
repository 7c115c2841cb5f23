import { performance } from 'node:perf_hooks';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { compilePolicy, parsePolicy, type CompiledPolicy, type PolicyDocument } from '../policy/index.js';
import type { StateMachine } from '../store/state-machine.js';

/** The document a fresh cluster starts with: no source groups, the `--default-policy` action. */
export function defaultPolicyDocument(action: 'allow' | 'deny'): PolicyDocument {
  return { default_policy: action, source_groups: [] } as unknown as PolicyDocument;
}

/**
 * The node's local enforcement state: the compiled form of the latest policy it has applied.
 * Every node replays `policy.set` from its own log into this, so enforcement never waits for the
 * cluster, and keeps the last good policy if a document ever failed to compile here.
 */
export class PolicyEnforcement {
  private compiled: CompiledPolicy | null = null;
  private versionValue = 0;
  private lastCompileMs = 0;
  private lastError: string | null = null;
  private readonly changeListeners: ((version: number) => void)[] = [];
  /**
   * A document this node compiled while serving its PUT, as the JSON text the store will hold:
   * when that text is applied, its compiled form is used instead of parsing and compiling it a
   * second time (each takes hundreds of milliseconds at tens of thousands of rules, during which
   * the proxies on this node wait).
   */
  private prepared: { readonly text: string; readonly compiled: CompiledPolicy; readonly compileMs: number } | null = null;

  constructor(
    private readonly stateMachine: StateMachine,
    private readonly logger: Logger,
    private readonly onCompiled?: (seconds: number) => void,
  ) {
    stateMachine.onApplied((types) => {
      if (types.has('policy.set') || types.has('snapshot')) this.refresh();
    });
    this.refresh();
  }

  /**
   * Offers the compiled form of a document this node is about to propose (see `prepared`); used
   * only if exactly this document is the next one applied.
   */
  prepare(document: PolicyDocument, compiled: CompiledPolicy, compileMs: number): void {
    this.prepared = { text: JSON.stringify(document), compiled, compileMs };
  }

  /** Compiles the stored policy if its version differs from the active one. */
  refresh(): void {
    const record = this.stateMachine.policyText();
    if (record === null || record.version === this.versionValue) return;
    const prepared = this.prepared;
    this.prepared = null;
    const started = performance.now();
    try {
      const reused = prepared !== null && prepared.text === record.text;
      const compiled = reused ? prepared.compiled : compilePolicy(parsePolicy(JSON.parse(record.text)));
      this.lastCompileMs = reused ? prepared.compileMs : performance.now() - started;
      this.compiled = compiled;
      this.versionValue = record.version;
      this.lastError = null;
      this.onCompiled?.(this.lastCompileMs / 1000);
      this.logger.info({ version: record.version, compile_ms: Math.round(this.lastCompileMs * 10) / 10, compiled_when: reused ? 'served' : 'applied' }, 'policy active');
      for (const listener of this.changeListeners) listener(record.version);
    } catch (err) {
      this.lastError = describeError(err);
      this.logger.error({ version: record.version, err: this.lastError }, 'policy failed to compile on this node; keeping the last good policy');
    }
  }

  /** The active compiled policy, or null before the first one. */
  get active(): CompiledPolicy | null {
    return this.compiled;
  }

  /** Version (Raft index) of the active policy; 0 before any. */
  get version(): number {
    return this.versionValue;
  }

  get compileMs(): number {
    return this.lastCompileMs;
  }

  onChange(listener: (version: number) => void): void {
    this.changeListeners.push(listener);
  }

  /** Readiness `policy_ready`: a compiled policy is active. */
  readiness(): { ok: boolean; detail?: string } {
    if (this.compiled !== null) return { ok: true };
    return { ok: false, detail: this.lastError ?? 'no policy applied yet' };
  }
}
