import chalk from 'chalk';
import type { ReadinessCheck } from '../readiness.js';
import { NeuwerkError } from '../errors.js';
import type { ApiConnection } from './connection.js';

/** Pause between polls of `neuwerk ready --wait`. */
export const READY_POLL_INTERVAL_MS = 500;

export interface ReadyResult {
  readonly url: string;
  readonly reachable: boolean;
  readonly ready: boolean;
  readonly checks: readonly ReadinessCheck[];
  /** Why the node could not be asked (unreachable, bad answer); null when it answered. */
  readonly error: string | null;
}

async function queryOnce(connection: ApiConnection): Promise<ReadyResult> {
  const url = `${connection.baseUrl}/ready`;
  try {
    const { status, json } = await connection.call('GET', '/ready');
    const body = json as { ready?: unknown; checks?: unknown } | null;
    if ((status !== 200 && status !== 503) || body === null || typeof body.ready !== 'boolean' || !Array.isArray(body.checks)) {
      return { url, reachable: true, ready: false, checks: [], error: `unexpected answer from /ready (HTTP ${status})` };
    }
    return { url, reachable: true, ready: body.ready && status === 200, checks: body.checks as ReadinessCheck[], error: null };
  } catch (err) {
    if (err instanceof NeuwerkError && err.code === 'NW_ERR_API_UNREACHABLE') return { url, reachable: false, ready: false, checks: [], error: err.message };
    throw err;
  }
}

/** Asks `/ready` once, or with `waitMs` polls until ready or the time is up. */
export async function checkReady(connection: ApiConnection, waitMs: number | null): Promise<ReadyResult> {
  const deadline = Date.now() + (waitMs ?? 0);
  for (;;) {
    const result = await queryOnce(connection);
    if (result.ready || waitMs === null || Date.now() + READY_POLL_INTERVAL_MS > deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_INTERVAL_MS));
  }
}

/** Human rendering of a readiness result; `--json` prints the same object as JSON. */
export function renderReady(result: ReadyResult): string {
  if (!result.reachable) return `${chalk.red('not reachable')}: ${result.error ?? result.url}\n`;
  const lines = [`${result.ready ? chalk.green('ready') : chalk.red('not ready')}  ${result.url}`];
  if (result.error !== null) lines.push(`  ${result.error}`);
  for (const check of result.checks) {
    lines.push(`  ${check.ok ? chalk.green('ok  ') : chalk.red('FAIL')}  ${check.name}${check.ok || check.detail === null ? '' : `: ${check.detail}`}`);
  }
  return `${lines.join('\n')}\n`;
}
