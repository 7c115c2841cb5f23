import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ApiConnection } from '../cli/connection.js';
import { apiFailure } from '../cli/local-node.js';
import { describeError, NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';
import { defaultClusterSysdumpFileName, NODE_SYSDUMP_TIMEOUT_MS } from './cluster-sysdump.js';
import { resolveOutputPath, SYSDUMP_FILE_MODE } from './node-sysdump.js';

/** The whole cluster sysdump request: the per-node timeout plus assembly and transfer. */
export const CLUSTER_SYSDUMP_REQUEST_TIMEOUT_MS = NODE_SYSDUMP_TIMEOUT_MS + 40_000;
/** Progress is printed at most this often while the archive streams in. */
const PROGRESS_INTERVAL_MS = 1_000;
/** Mode of an output directory the command has to create. */
const OUTPUT_DIRECTORY_MODE = 0o700;

/** What `fetchClusterSysdump` wrote. */
export interface ClusterSysdumpDownload {
  readonly path: string;
  readonly size_bytes: number;
  readonly partial: boolean | null;
}

function outputPath(option: string | undefined, date: Date): string {
  return resolveOutputPath(option, defaultClusterSysdumpFileName(date));
}

/**
 * `neuwerk sysdump cluster`: POSTs `/api/v1/support/sysdump/cluster` and streams the answer into
 * a temporary file created with mode 0600 beside the output, renamed into place once complete (a
 * failed download leaves nothing behind).
 */
export async function fetchClusterSysdump(connection: ApiConnection, options: { output?: string | undefined; progress: (message: string) => void; now?: () => Date }): Promise<ClusterSysdumpDownload> {
  const path = outputPath(options.output, (options.now ?? (() => new Date()))());
  options.progress(`asking ${connection.baseUrl} for a cluster sysdump (every member answers within ${NODE_SYSDUMP_TIMEOUT_MS / 1000} s or is listed in node_errors)`);
  const response = await connection.stream('POST', '/api/v1/support/sysdump/cluster', { accept: 'application/gzip', timeoutMs: CLUSTER_SYSDUMP_REQUEST_TIMEOUT_MS });
  if (response.statusCode !== 200) {
    const text = await response.body.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    throw apiFailure({ status: response.statusCode, json, text }, 'cluster sysdump');
  }
  const partialHeader = response.headers['x-neuwerk-sysdump-partial'];
  const partial = partialHeader === 'true' ? true : partialHeader === 'false' ? false : null;
  const temporary = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let received = 0;
  let lastReport = Date.now();
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (Date.now() - lastReport >= PROGRESS_INTERVAL_MS) {
        lastReport = Date.now();
        options.progress(`received ${received} bytes`);
      }
      callback(null, chunk);
    },
  });
  try {
    makeDirectory(dirname(path), OUTPUT_DIRECTORY_MODE);
    await pipeline(response.body, counter, createWriteStream(temporary, { flags: 'wx', mode: SYSDUMP_FILE_MODE }));
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw new NeuwerkError('NW_ERR_SYSDUMP_OUTPUT', `cannot write the cluster sysdump ${path}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`, {
      actions: ['Pass --output with a path in a writable directory; if the transfer broke off, run the command again.'],
    });
  }
  options.progress(`wrote ${received} bytes to ${path}${partial === true ? ' (partial: see node_errors in manifest.json)' : ''}`);
  return { path, size_bytes: received, partial };
}
