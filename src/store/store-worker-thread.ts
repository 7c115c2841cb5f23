/**
 * The store's background thread (`StoreWorker`): the work on the node's SQLite file that must not
 * block the node's event loop.
 *
 *  - Snapshot copies: each request copies the state-machine tables as of one read transaction to
 *    the given temporary file and answers with the applied index that transaction saw
 *    (`copyStateMachineAsOfNow`) — the CPU-heavy part of a compaction, ~10 ms per 10k keyval rows.
 *  - WAL checkpoints: every `checkpointIntervalMs` a PASSIVE checkpoint moves committed WAL frames
 *    into the database file and fsyncs it — ~10 ms per 1000 pages on a busy disk, which SQLite's
 *    auto-checkpoint would otherwise run inside whichever commit of the event loop crossed its
 *    threshold (see `StoreWorker` for the bound that stays there). A PASSIVE checkpoint never
 *    blocks the writer.
 *
 * It holds its own connection on the store file and never writes the store's tables, so it never
 * contends with the event loop for SQLite's write lock.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { copyStateMachineAsOfNow } from './snapshot.js';
import type { StoreWorkerData, SnapshotCopyReply, SnapshotCopyRequest } from './store-worker.js';

const port = parentPort;
if (port === null) throw new Error('store-worker-thread.js runs only as a worker thread');
const { dbPath, checkpointIntervalMs } = workerData as StoreWorkerData;
const db = new Database(dbPath, { fileMustExist: true });
// A WAL reader or checkpointer waits only in rare cases (e.g. while another connection recovers the WAL index).
db.pragma('busy_timeout = 5000');
// The checkpoint fsyncs the WAL before copying it and the database file after.
db.pragma('synchronous = FULL');
// This connection only reads and checkpoints; it must never start an automatic checkpoint of its own.
db.pragma('wal_autocheckpoint = 0');

port.on('message', (request: SnapshotCopyRequest) => {
  let reply: SnapshotCopyReply;
  try {
    reply = { id: request.id, ok: true, index: copyStateMachineAsOfNow(db, request.temporary).index };
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    reply = { id: request.id, ok: false, message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) };
  }
  port.postMessage(reply);
});

if (checkpointIntervalMs > 0) {
  setInterval(() => {
    // A failure (e.g. SQLITE_BUSY past the timeout) throws out of this thread: the owner sees the
    // worker die and turns the event loop's own auto-checkpoint back on.
    db.pragma('wal_checkpoint(PASSIVE)');
  }, checkpointIntervalMs);
}
