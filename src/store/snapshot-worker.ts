/**
 * The thread that copies the state machine for a snapshot (`SnapshotCopier`), so the copy — the
 * CPU-heavy part of a compaction, ~10 ms per 10k keyval rows — never blocks the node's event loop.
 *
 * It holds its own connection on the node's store file and only reads it: each request copies the
 * state-machine tables as of one read transaction to the given temporary file and answers with the
 * applied index that transaction saw (`copyStateMachineAsOfNow`). It never writes the store, so it
 * never contends with the event loop for SQLite's write lock.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { copyStateMachineAsOfNow } from './snapshot.js';
import type { SnapshotCopyReply, SnapshotCopyRequest, SnapshotWorkerData } from './snapshot-copier.js';

const port = parentPort;
if (port === null) throw new Error('snapshot-worker.js runs only as a worker thread');
const { dbPath } = workerData as SnapshotWorkerData;
const db = new Database(dbPath, { fileMustExist: true });
// A WAL reader waits only in rare cases (e.g. while another connection recovers the WAL index).
db.pragma('busy_timeout = 5000');

port.on('message', (request: SnapshotCopyRequest) => {
  let reply: SnapshotCopyReply;
  try {
    reply = { id: request.id, ok: true, index: copyStateMachineAsOfNow(db, request.temporary).index };
  } catch (err) {
    reply = { id: request.id, ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
