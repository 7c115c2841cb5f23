/**
 * Shape check of a Raft message decoded from a peer, before the core sees it. The core trusts the
 * types of what it is given (a well-typed message never makes it throw); a field of the wrong type
 * would not crash it but could make it misbehave quietly — a snapshot chunk whose `data` is not
 * bytes once made a leader and a follower trade the same chunk forever. The peer is authenticated
 * (mTLS), so a malformed message means a bug or a version mismatch: it is dropped and counted.
 */
import type { Message } from '../raft/types.js';

type Fields = Record<string, unknown>;

/** A field check: the problem with `value`, or null. */
type Check = (value: unknown) => string | null;

const index: Check = (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? null : 'is not a non-negative integer');
const text: Check = (v) => (typeof v === 'string' ? null : 'is not a string');
const flag: Check = (v) => (typeof v === 'boolean' ? null : 'is not a boolean');
const bytes: Check = (v) => (v instanceof Uint8Array ? null : 'is not binary');
const ids: Check = (v) => (Array.isArray(v) && v.every((id) => typeof id === 'string') ? null : 'is not a list of node ids');

const entries: Check = (v) => {
  if (!Array.isArray(v)) return 'is not a list';
  for (let i = 0; i < v.length; i++) {
    const e = v[i] as Fields | null;
    if (e === null || typeof e !== 'object') return `[${i}] is not an entry`;
    if (index(e.index) !== null || index(e.term) !== null || typeof e.data !== 'string' || (e.type !== 'normal' && e.type !== 'conf-change')) {
      return `[${i}] is not an entry {index, term, type, data}`;
    }
  }
  return null;
};

const snapshotMeta: Check = (v) => {
  const meta = v as Fields | null;
  if (meta === null || typeof meta !== 'object') return 'is not snapshot metadata';
  const conf = meta.conf as Fields | null;
  if (index(meta.index) !== null || index(meta.term) !== null || conf === null || typeof conf !== 'object' || ids(conf.voters) !== null || ids(conf.learners) !== null) {
    return 'is not snapshot metadata {index, term, conf: {voters, learners}}';
  }
  return null;
};

/** The fields each message type carries beyond `type`, `from`, `to` and `term`. */
const FIELDS: Record<Message['type'], Record<string, Check>> = {
  append: { index, logTerm: index, entries, commit: index },
  'append-resp': { index, reject: flag, rejectHint: index, logTerm: index },
  vote: { lastLogIndex: index, lastLogTerm: index, transfer: flag },
  'pre-vote': { lastLogIndex: index, lastLogTerm: index, transfer: flag },
  'vote-resp': { reject: flag },
  'pre-vote-resp': { reject: flag },
  heartbeat: { commit: index, readSeq: index },
  'heartbeat-resp': { readSeq: index },
  snapshot: { meta: snapshotMeta, offset: index, totalBytes: index, data: bytes, done: flag },
  'snapshot-resp': { index, offset: index, forOffset: index },
  'timeout-now': {},
  'read-index': { ctx: text },
  'read-index-resp': { ctx: text, index },
};

/** Describes the value of a bad field briefly (a chunk of a snapshot must not end up in a log line). */
function brief(value: unknown): string {
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value !== null && typeof value === 'object') return `an object with keys ${Object.keys(value).slice(0, 4).join(', ')}`;
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 40 ? `${json.slice(0, 40)}…` : json;
}

/** Null when `value` is a well-formed `Message`, else what is wrong with it (the field and its value). */
export function raftMessageProblem(value: unknown): string | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const m = value as Fields;
  const checks = typeof m.type === 'string' && Object.hasOwn(FIELDS, m.type) ? FIELDS[m.type as Message['type']] : undefined;
  if (checks === undefined) return `unknown type ${brief(m.type)}`;
  const common: Record<string, Check> = { from: text, to: text, term: index };
  for (const group of [common, checks]) {
    for (const field in group) {
      const problem = (group[field] as Check)(m[field]);
      if (problem !== null) return `${m.type}.${field} ${problem} (${brief(m[field])})`;
    }
  }
  return null;
}
