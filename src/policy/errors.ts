import { NeuwerkError } from '../errors.js';
import type { PolicyIssue } from './types.js';

/** At most this many issues are spelled out in an error message; all stay in `issues`. */
export const MAX_ISSUES_IN_MESSAGE = 20;

function renderIssues(headline: string, issues: readonly PolicyIssue[]): string {
  const shown = issues.slice(0, MAX_ISSUES_IN_MESSAGE).map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`));
  const more = issues.length > MAX_ISSUES_IN_MESSAGE ? `; … and ${issues.length - MAX_ISSUES_IN_MESSAGE} more` : '';
  return `${headline}: ${shown.join('; ')}${more}`;
}

/**
 * The document does not follow the policy schema (DESIGN §8). The message names every failing
 * path and its bad value, e.g. `source_groups[2].rules[0].match.dst_ports[1]: "80-70" is not a
 * valid port range`; `issues` holds them one by one. HTTP 400.
 */
export class PolicyValidationError extends NeuwerkError {
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[], headline = 'invalid policy') {
    super('NW_ERR_POLICY_INVALID', renderIssues(headline, issues), {
      detail: { issues: issues.map((i) => ({ path: i.path, message: i.message })) },
      actions: ['Fix the listed fields and apply the policy again; the active policy is unchanged.'],
    });
    this.name = 'PolicyValidationError';
    this.issues = issues;
  }
}

/**
 * The document is valid but cannot be compiled: an unsafe or invalid regular expression, or a
 * rule whose selectors can never match together. Each issue names the rule as
 * `source_groups[i].rules[j] (id "x")`. HTTP 400.
 */
export class PolicyCompileError extends NeuwerkError {
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[]) {
    super('NW_ERR_POLICY_COMPILE', renderIssues('policy cannot be compiled', issues), {
      detail: { issues: issues.map((i) => ({ path: i.path, message: i.message })) },
      actions: ['Fix the named rules and apply the policy again; the active policy is unchanged.'],
    });
    this.name = 'PolicyCompileError';
    this.issues = issues;
  }
}
