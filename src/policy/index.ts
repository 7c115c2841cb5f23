/**
 * The pure policy engine (DESIGN §8): schema and validation, compilation into indexed matchers,
 * and DNS / connection decisions. No sockets, no HTTP, no store: callers parse, compile once per
 * applied policy, and decide per query or connection.
 *
 * Typical use:
 * ```ts
 * const doc = parsePolicy(body);              // or parsePolicyYaml(text); throws PolicyValidationError
 * const policy = compilePolicy(doc);          // throws PolicyCompileError; keep the last good one
 * const d = decideDns(policy, { srcIp, qname });
 * if (d.enforced === 'deny') answerNxdomain(); if (d.finding) recordFinding(d);
 * ```
 */
export type {
  ConnectionFlow,
  Decision,
  DnsQuery,
  HostnameMatch,
  HostnameMatchObject,
  HttpMatch,
  HttpPathMatch,
  HttpRequestInfo,
  PolicyAction,
  PolicyDocument,
  PolicyIssue,
  PolicyMode,
  PolicyProto,
  PolicyRule,
  PolicySources,
  RuleMatch,
  SniMatch,
  SourceGroup,
} from './types.js';
export { PolicyCompileError, PolicyValidationError } from './errors.js';
export { POLICY_JSON_SCHEMA, parsePolicy, parsePolicyYaml, policyToYaml, validatePolicy } from './schema.js';
export { compilePolicy, policyFingerprint } from './compiler.js';
export type { CompiledPolicy, CompileStats } from './compiler.js';
export { decideConnection, decideDns } from './evaluate.js';
export { MAX_REGEX_LENGTH_CHARS } from './regex-safety.js';
