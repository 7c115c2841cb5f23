/**
 * The policy document (DESIGN §8) as TypeScript types, and the inputs and outputs of a decision.
 *
 * The document types mirror `POLICY_JSON_SCHEMA` in `schema.ts` exactly: optional fields stay
 * optional (`parsePolicy` does not fill defaults, so what an operator PUTs is what GET returns);
 * the compiler applies the defaults (`mode: enforce`, empty `rules`, ...).
 */

export type PolicyAction = 'allow' | 'deny';
export type PolicyMode = 'enforce' | 'audit';
export type PolicyProto = 'tcp' | 'udp' | 'any';

/**
 * The object form of `dns_hostname`: the selector matches when ANY listed entry matches.
 * - `exact`: the hostname equals the entry.
 * - `suffix`: the hostname equals the entry or is a subdomain of it (`github.com` matches
 *   `github.com` and `api.github.com`, not `xgithub.com`).
 * - `glob`: `*` matches zero or more characters within ONE label (`*.github.com` matches
 *   `api.github.com`, not `a.b.github.com`); no other wildcard characters.
 * - `regex`: as the plain-string form.
 * Hostnames are compared case-insensitively and without a trailing dot.
 */
export interface HostnameMatchObject {
  readonly exact?: readonly string[];
  readonly suffix?: readonly string[];
  readonly glob?: readonly string[];
  readonly regex?: string;
}

/**
 * `dns_hostname`: a plain string is a regular expression matched against the WHOLE normalised
 * hostname (implicitly anchored as `^(?:…)$`, case-insensitive); or the object form.
 */
export type HostnameMatch = string | HostnameMatchObject;

/** `tls.sni`: any listed entry matches (exact / suffix / regex as for `dns_hostname`). */
export interface SniMatch {
  readonly exact?: readonly string[];
  readonly suffix?: readonly string[];
  readonly regex?: string;
}

/** `http.path`: any listed entry matches; case-sensitive; the query string is not part of the path. */
export interface HttpPathMatch {
  readonly prefix?: readonly string[];
  readonly exact?: readonly string[];
  readonly regex?: string;
}

/** `http`: plain-HTTP requests only; every given field must match. */
export interface HttpMatch {
  readonly methods?: readonly string[];
  readonly host?: readonly string[];
  readonly path?: HttpPathMatch;
}

/** A rule's selectors: every given selector must match (AND); an empty match matches every connection. */
export interface RuleMatch {
  readonly dns_hostname?: HostnameMatch;
  readonly dst_cidrs?: readonly string[];
  readonly dst_ips?: readonly string[];
  readonly proto?: PolicyProto;
  /** Ports (1–65535) and inclusive ranges written `"lo-hi"` (a single port may also be a string). */
  readonly dst_ports?: readonly (number | string)[];
  readonly tls?: { readonly sni: SniMatch };
  readonly http?: HttpMatch;
}

export interface PolicyRule {
  readonly id: string;
  readonly priority?: number;
  readonly action: PolicyAction;
  readonly mode?: PolicyMode;
  readonly match: RuleMatch;
}

export interface PolicySources {
  readonly cidrs?: readonly string[];
  readonly ips?: readonly string[];
}

export interface SourceGroup {
  readonly id: string;
  readonly mode?: PolicyMode;
  readonly priority?: number;
  readonly sources: PolicySources;
  readonly default_action?: PolicyAction;
  readonly rules?: readonly PolicyRule[];
}

/** The singleton policy document. */
export interface PolicyDocument {
  readonly default_policy: PolicyAction;
  readonly source_groups?: readonly SourceGroup[];
}

/** A DNS query to decide: the client's address and the queried name. */
export interface DnsQuery {
  readonly srcIp: string;
  readonly qname: string;
}

/** A plain-HTTP request's fields, for `http` selectors. */
export interface HttpRequestInfo {
  readonly method: string;
  /** The Host header or the authority of the absolute-form URL; a `:port` suffix is ignored. */
  readonly host: string;
  /** The request path; anything from the first `?` or `#` on is ignored. */
  readonly path: string;
}

/** A proxied connection (CONNECT tunnel or plain-HTTP request) to decide. */
export interface ConnectionFlow {
  readonly srcIp: string;
  /** The requested hostname; absent (or an IP literal) for a connection to an IP literal. */
  readonly hostname?: string;
  readonly dstIp: string;
  readonly dstPort: number;
  readonly proto: 'tcp' | 'udp';
  /** The SNI of the client's ClientHello, when the tunnel carries TLS. */
  readonly sni?: string;
  /** Present only for plain-HTTP (absolute-form) requests. */
  readonly http?: HttpRequestInfo;
}

/**
 * The outcome of a decision.
 * - `action`: what the policy says.
 * - `enforced`: what the dataplane must do — `allow` when an audit-mode deny was let through.
 * - `finding`: an audit finding is due for every deny: `deny` (enforced) or `audit` (audit-mode
 *   would-be deny that was allowed); `null` for allows.
 * - `sourceGroup` / `ruleId`: who decided (`null` when `default_policy` or "no group" decided;
 *   `ruleId` is `null` for group fallbacks).
 * - `reason`: one line for logs, 403 bodies and findings.
 */
export interface Decision {
  readonly action: PolicyAction;
  readonly enforced: PolicyAction;
  readonly mode: PolicyMode;
  readonly sourceGroup: string | null;
  readonly ruleId: string | null;
  readonly finding: 'deny' | 'audit' | null;
  readonly reason: string;
}

/** One problem found in a document: where (`source_groups[2].rules[0].match`) and what. */
export interface PolicyIssue {
  readonly path: string;
  readonly message: string;
}
