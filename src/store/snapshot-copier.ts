/**
 * Copies the state machine for a snapshot on a worker thread (`snapshot-worker.ts`), off the
 * node's event loop: the copy used to be taken synchronously inside a Raft processing pass, a
 * stall of ~10 ms per 10k keyval rows on every node at every compaction, which is what the slowest
 * writes of a loaded cluster waited for.
 *
 * The worker cannot copy "at" an index of our choosing (the loop keeps applying meanwhile), so it
 * copies as of one read transaction and reports the applied index that transaction saw; the state
 * machine records its applied index in the same transaction as every change, so the copy is
 * exactly the state at that index. The caller then names the file by that index's position.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';
import { SNAPSHOT_TEMP_SUFFIX, type SnapshotCopy } from './snapshot.js';

/** What the worker is started with. */
export interface SnapshotWorkerData {
  readonly dbPath: string;
}

/** One copy request: write the copy to `temporary` (a new file; any old one is replaced). */
export interface SnapshotCopyRequest {
  readonly id: number;
  readonly temporary: string;
}

/** The worker's answer to request `id`. */
export type SnapshotCopyReply = { readonly id: number; readonly ok: true; readonly index: number } | { readonly id: number; readonly ok: false; readonly message: string };

/** Mode of the snapshots directory (as in `snapshot.ts`). */
const SNAPSHOTS_DIR_MODE = 0o700;
/** Prefix of the copier's temporary files: `snap-*.tmp`, so the prune at start removes orphans. */
const COPY_FILE_PREFIX = 'snap-copy-';

interface Waiting {
  readonly temporary: string;
  readonly resolve: (copy: SnapshotCopy) => void;
  readonly reject: (err: Error) => void;
}

/**
 * One worker per node, started at the first copy and kept (unref'd: it never keeps the process
 * alive). Copies may overlap but the Raft host asks for one at a time.
 */
export class SnapshotCopier {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private seq = 0;
  private closed: Promise<void> | null = null;

  constructor(
    private readonly dbPath: string,
    private readonly snapshotsDir: string,
  ) {}

  /**
   * Copies the state-machine tables of the store at `dbPath` to a temporary file in the snapshots
   * directory, as of one read transaction; resolves with the file and the applied index it holds.
   * Rejects when the copy fails, the worker dies, or the copier is closed (the file is removed).
   */
  copy(): Promise<SnapshotCopy> {
    if (this.closed !== null) return Promise.reject(new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the snapshot copier is closed'));
    makeDirectory(this.snapshotsDir, SNAPSHOTS_DIR_MODE);
    const worker = this.worker ?? this.startWorker();
    this.seq += 1;
    const id = this.seq;
    const temporary = join(this.snapshotsDir, `${COPY_FILE_PREFIX}${id}.db${SNAPSHOT_TEMP_SUFFIX}`);
    return new Promise<SnapshotCopy>((resolve, reject) => {
      this.waiting.set(id, { temporary, resolve, reject });
      const request: SnapshotCopyRequest = { id, temporary };
      worker.postMessage(request);
    });
  }

  /** Stops the worker; copies still running reject and their files are removed. Resolves once the thread is gone. */
  close(): Promise<void> {
    if (this.closed === null) {
      const worker = this.worker;
      this.worker = null;
      this.rejectAll(new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the snapshot copier was closed'));
      this.closed = worker === null ? Promise.resolve() : worker.terminate().then(() => undefined);
    }
    return this.closed;
  }

  private startWorker(): Worker {
    const data: SnapshotWorkerData = { dbPath: this.dbPath };
    const worker = new Worker(new URL('./snapshot-worker.js', import.meta.url), { workerData: data });
    worker.unref();
    worker.on('message', (reply: SnapshotCopyReply) => {
      const waiting = this.waiting.get(reply.id);
      if (waiting === undefined) return;
      this.waiting.delete(reply.id);
      if (reply.ok) waiting.resolve({ temporary: waiting.temporary, index: reply.index });
      else waiting.reject(new Error(`snapshot copy failed: ${reply.message}`));
    });
    const lost = (err: Error): void => {
      if (this.worker === worker) this.worker = null;
      this.rejectAll(err);
    };
    worker.on('error', (err) => lost(new Error(`the snapshot worker failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      if (this.closed === null) lost(new Error(`the snapshot worker exited (code ${code})`));
    });
    this.worker = worker;
    return worker;
  }

  private rejectAll(err: Error): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) {
      rmSync(w.temporary, { force: true });
      w.reject(err);
    }
  }
}
