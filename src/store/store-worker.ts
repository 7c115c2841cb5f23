/**
 * The store's background thread (`store-worker-thread.ts`), for the work on the node's SQLite file
 * that used to stall the event loop — and with it every write waiting on it — for milliseconds at
 * a time: the snapshot copy of a compaction (~10 ms per 10k keyval rows, inside a Raft processing
 * pass) and SQLite's WAL auto-checkpoint (a copy of 1000 pages and an fsync of the database file,
 * ~10 ms on a busy disk, inside whichever commit crossed the threshold: every ~2,000 writes of the
 * cluster benchmark, on every node).
 *
 * Checkpoints: the thread runs a PASSIVE checkpoint every `checkpointIntervalMs`, and while it
 * runs the event loop's connection checkpoints by itself only past
 * `WAL_AUTOCHECKPOINT_PAGES_WITH_WORKER` pages instead of SQLite's 1000. That bound stays because a
 * checkpoint from another connection can copy the WAL but not restart it: SQLite rewinds the WAL
 * only when a write starts after a checkpoint that copied every frame, which under writes that
 * never pause (a busy leader) does not happen, and the WAL would grow without limit. When the
 * bound is reached the event loop's checkpoint finds nearly every frame copied already (it still
 * fsyncs), ten times less often than before. When the thread dies or is closed, SQLite's default
 * is restored. Durability is unchanged: a checkpoint only copies frames that are already
 * committed, and fsyncs (`synchronous=FULL`) before the WAL can be rewound.
 *
 * Snapshot copies: the thread cannot copy "at" an index of our choosing (the loop keeps applying
 * meanwhile), so it copies as of one read transaction and reports the applied index that
 * transaction saw; the state machine records its applied index in the same transaction as every
 * change, so the copy is exactly the state at that index. The caller then names the file by that
 * index's position.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';
import type { SqliteDatabase } from './database.js';
import { SNAPSHOT_TEMP_SUFFIX, type SnapshotCopy } from './snapshot.js';

/** SQLite's default `wal_autocheckpoint` (pages), restored on the event loop's connection when the thread is gone. */
export const SQLITE_DEFAULT_WAL_AUTOCHECKPOINT_PAGES = 1000;
/** How often the thread checkpoints the WAL (each one fsyncs the WAL and the database file): a few hundred pages each at the benchmark's write rates. */
export const WAL_CHECKPOINT_INTERVAL_MS = 200;
/**
 * The event loop connection's own `wal_autocheckpoint` while the thread checkpoints: bounds the WAL
 * (~40 MB of 4 KiB pages) under writes that never pause; ten times rarer than SQLite's default.
 */
export const WAL_AUTOCHECKPOINT_PAGES_WITH_WORKER = 10_000;

/** What the thread is started with. */
export interface StoreWorkerData {
  readonly dbPath: string;
  /** 0: no checkpoints (the event loop's connection keeps its auto-checkpoint). */
  readonly checkpointIntervalMs: number;
}

/** One copy request: write the copy to `temporary` (a new file; any old one is replaced). */
export interface SnapshotCopyRequest {
  readonly id: number;
  readonly temporary: string;
}

/** The worker's answer to request `id`. */
/** `code`: the failure's error code (`SQLITE_FULL`, `ENOSPC`, ...) when it had one, so a full disk is told from a bug. */
export type SnapshotCopyReply =
  | { readonly id: number; readonly ok: true; readonly index: number }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code?: string };

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
 * One thread per node, started by `start()` (or the first copy) and restarted by the next copy
 * after it died; unref'd, it never keeps the process alive. Copies may overlap but the Raft host
 * asks for one at a time.
 */
export class StoreWorker {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private seq = 0;
  private closed: Promise<void> | null = null;

  /**
   * `db` is the event loop's connection on `dbPath` (its auto-checkpoint is switched off while the
   * thread checkpoints); `checkpointIntervalMs` 0 leaves checkpoints to it.
   */
  constructor(
    private readonly db: SqliteDatabase,
    private readonly dbPath: string,
    private readonly snapshotsDir: string,
    private readonly checkpointIntervalMs: number = WAL_CHECKPOINT_INTERVAL_MS,
  ) {}

  /** Starts the thread (and with it the background checkpoints) unless it runs or the worker is closed. */
  start(): void {
    if (this.closed === null && this.worker === null) this.startWorker();
  }

  /**
   * Copies the state-machine tables of the store at `dbPath` to a temporary file in the snapshots
   * directory, as of one read transaction; resolves with the file and the applied index it holds.
   * Rejects when the copy fails, the worker dies, or the copier is closed (the file is removed).
   */
  copy(): Promise<SnapshotCopy> {
    if (this.closed !== null) return Promise.reject(new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the store worker is closed'));
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
      const abandoned = this.rejectAll(new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the store worker was closed'));
      this.restoreAutoCheckpoint();
      // The thread may have created a file between the removal above and its end: remove again after.
      const removeAbandoned = (): void => {
        for (const path of abandoned) rmSync(path, { force: true });
      };
      this.closed = worker === null ? Promise.resolve() : worker.terminate().then(removeAbandoned, removeAbandoned);
    }
    return this.closed;
  }

  private startWorker(): Worker {
    const data: StoreWorkerData = { dbPath: this.dbPath, checkpointIntervalMs: this.checkpointIntervalMs };
    const worker = new Worker(new URL('./store-worker-thread.js', import.meta.url), { workerData: data });
    worker.unref();
    if (this.checkpointIntervalMs > 0) this.db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES_WITH_WORKER}`);
    worker.on('message', (reply: SnapshotCopyReply) => {
      const waiting = this.waiting.get(reply.id);
      if (waiting === undefined) return;
      this.waiting.delete(reply.id);
      if (reply.ok) waiting.resolve({ temporary: waiting.temporary, index: reply.index });
      else waiting.reject(Object.assign(new Error(`snapshot copy failed: ${reply.message}`), reply.code === undefined ? {} : { code: reply.code }));
    });
    const lost = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.restoreAutoCheckpoint();
      this.rejectAll(err);
    };
    worker.on('error', (err) => lost(new Error(`the store worker failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => lost(new Error(`the store worker exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  /** The event loop's connection checkpoints by itself again (while it is open). */
  private restoreAutoCheckpoint(): void {
    if (this.checkpointIntervalMs > 0 && this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_WAL_AUTOCHECKPOINT_PAGES}`);
  }

  /** Rejects every waiting copy and removes its file; returns the files' paths. */
  private rejectAll(err: Error): string[] {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) {
      rmSync(w.temporary, { force: true });
      w.reject(err);
    }
    return waiting.map((w) => w.temporary);
  }
}
