/**
 * The one error catalogue of neuwerk. Every expected failure is a `NeuwerkError` with a stable
 * code (`NW_ERR_<AREA>_<WHAT>`), a CLI exit code (DESIGN §7: 1 failure, 2 usage) and an HTTP
 * status, so the CLI, the API and the tests agree on what each failure is.
 *
 * Broken invariants are not errors of this kind: they are assertions (`invariant`) that stop the
 * process, because continuing would risk diverging replicated state.
 */

/** Exit code for failures and "not ready" (DESIGN §7). */
export const EXIT_FAILURE = 1;
/** Exit code for usage errors: bad flags, bad config (DESIGN §7). */
export const EXIT_USAGE = 2;

interface ErrorSpec {
  readonly exitCode: number;
  readonly httpStatus: number;
}

/** Every error code with its exit code and HTTP status. The table test enumerates this. */
export const ERROR_CATALOGUE = {
  NW_ERR_USAGE: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_CONFIG_INVALID: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_CONFIG_UNREADABLE: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_DATA_DIR_UNUSABLE: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_NODE_ID_CORRUPT: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_ADDRESS_IN_USE: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_LISTEN_FAILED: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_TLS_MATERIAL: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_STORE_CORRUPT: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_STORE_UNAVAILABLE: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_COMMAND_INVALID: { exitCode: EXIT_FAILURE, httpStatus: 400 },
  NW_ERR_NOT_LEADER: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_NO_LEADER: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_TIMEOUT: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_SHUTTING_DOWN: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_API_UNREACHABLE: { exitCode: EXIT_FAILURE, httpStatus: 502 },
  NW_ERR_API_RESPONSE: { exitCode: EXIT_FAILURE, httpStatus: 502 },
  NW_ERR_HTTP_NOT_FOUND: { exitCode: EXIT_FAILURE, httpStatus: 404 },
  NW_ERR_HTTP_METHOD: { exitCode: EXIT_FAILURE, httpStatus: 405 },
  NW_ERR_HTTP_BODY_TOO_LARGE: { exitCode: EXIT_FAILURE, httpStatus: 413 },
  NW_ERR_HTTP_BAD_REQUEST: { exitCode: EXIT_FAILURE, httpStatus: 400 },
  NW_ERR_HTTP_HEADERS_TOO_LARGE: { exitCode: EXIT_FAILURE, httpStatus: 431 },
  NW_ERR_HTTP_REQUEST_TIMEOUT: { exitCode: EXIT_FAILURE, httpStatus: 408 },
  NW_ERR_INTERNAL: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_VALIDATION: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_NOT_FOUND: { exitCode: EXIT_FAILURE, httpStatus: 404 },
  NW_ERR_CONFLICT: { exitCode: EXIT_FAILURE, httpStatus: 409 },
  NW_ERR_AUTH_MISSING: { exitCode: EXIT_FAILURE, httpStatus: 401 },
  NW_ERR_AUTH_INVALID: { exitCode: EXIT_FAILURE, httpStatus: 401 },
  NW_ERR_AUTH_EXPIRED: { exitCode: EXIT_FAILURE, httpStatus: 401 },
  NW_ERR_AUTH_FORBIDDEN: { exitCode: EXIT_FAILURE, httpStatus: 403 },
  NW_ERR_AUTH_RATE_LIMITED: { exitCode: EXIT_FAILURE, httpStatus: 429 },
  NW_ERR_AUTH_KEY_ACTIVE: { exitCode: EXIT_FAILURE, httpStatus: 409 },
  NW_ERR_AUTH_NO_KEY: { exitCode: EXIT_FAILURE, httpStatus: 503 },
  NW_ERR_AUTH_NO_CREDENTIALS: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_BOOTSTRAP_TOKEN: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_NODE_REMOVED: { exitCode: EXIT_FAILURE, httpStatus: 409 },
  NW_ERR_POLICY_INVALID: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_POLICY_COMPILE: { exitCode: EXIT_USAGE, httpStatus: 400 },
  NW_ERR_JOIN_REFUSED: { exitCode: EXIT_FAILURE, httpStatus: 403 },
  NW_ERR_JOIN_FAILED: { exitCode: EXIT_FAILURE, httpStatus: 502 },
  NW_ERR_CLUSTER_TLS: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_RPC: { exitCode: EXIT_FAILURE, httpStatus: 502 },
  NW_ERR_SYSDUMP_NO_NODE: { exitCode: EXIT_FAILURE, httpStatus: 404 },
  NW_ERR_SYSDUMP_OUTPUT: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_SYSDUMP_SECRET_FOUND: { exitCode: EXIT_FAILURE, httpStatus: 500 },
  NW_ERR_SYSDUMP_TOO_LARGE: { exitCode: EXIT_FAILURE, httpStatus: 500 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface NeuwerkErrorOptions {
  /** Lines telling the operator what to do next; printed after the message by the CLI. */
  readonly actions?: readonly string[];
  /** The underlying error, kept for logs; never shown to API clients. */
  readonly cause?: unknown;
  /** Structured detail that is safe to show (no secrets), e.g. the failing config path. */
  readonly detail?: Record<string, unknown>;
}

/** The base of every expected, user-facing failure. */
export class NeuwerkError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly httpStatus: number;
  readonly actions: readonly string[];
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: NeuwerkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NeuwerkError';
    this.code = code;
    this.exitCode = ERROR_CATALOGUE[code].exitCode;
    this.httpStatus = ERROR_CATALOGUE[code].httpStatus;
    this.actions = options.actions ?? [];
    this.detail = options.detail;
  }

  /** The JSON body of an HTTP error response, and the `--json` form of a CLI error. */
  toJSON(): { error: string; code: ErrorCode } {
    return { error: this.message, code: this.code };
  }
}

/** Thrown by `invariant` when internal state is impossible; never caught to continue. */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

/** Asserts an internal invariant; a failure is a bug and must stop the process. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantViolation(typeof message === 'string' ? message : message());
}

export function isNeuwerkError(err: unknown): err is NeuwerkError {
  return err instanceof NeuwerkError;
}

/** Error text of an unknown thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
