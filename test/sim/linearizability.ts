/**
 * Linearizability checker for histories of a key-value store in which every key is an
 * independent single-value register (initial value `null`).
 *
 * Approach:
 * - P-compositionality: a history of a map of independent registers is linearizable iff each
 *   per-key sub-history is, so the history is partitioned by key and every key checked alone.
 * - Each partition is checked with the Wing & Gong depth-first search over the time-ordered list
 *   of call/return events: at a call event, try to linearize that operation now (it must agree
 *   with the register state), remove ("lift") its call and return events from a doubly linked
 *   list and restart from the head; reaching a return event of an operation not yet linearized
 *   means the current prefix cannot be extended, so backtrack (undo the last lift, "unlift").
 * - Lowe's memoization: a configuration is the pair (set of linearized operations, register
 *   value); a configuration already explored is never explored again. The set is a bitset over
 *   operations numbered in call order, stored canonically as (index of first word that is not
 *   all ones, words up to the last non-zero word), so memo entries stay small even for long
 *   histories; lookups go through an open-addressing table keyed by an incrementally maintained
 *   Zobrist hash and compare entries exactly (no false sharing from hash collisions).
 * - Pending operations (unknown outcome) are given return time +infinity and may be left out.
 *   Exact reductions keep them cheap: pending gets and pending writes whose value is never read
 *   are dropped, a pending put whose value only it writes is due by the last read of that value,
 *   and interchangeable pending writes are only ever linearized in call order (see checkPartition).
 *
 * Written for the deterministic Raft simulation in this directory; it has no dependencies.
 */

/** An operation issued by a client against one key. */
export type KvOp = { kind: 'put'; key: string; value: string } | { kind: 'get'; key: string } | { kind: 'delete'; key: string };

/** What the store answered. `put` and `delete` carry no data; `get` carries the value read (`null`: absent). */
export type KvResult = { kind: 'put' | 'delete' } | { kind: 'get'; value: string | null };

/**
 * One operation of a history, with its real-time interval.
 *
 * - `call`: time the client issued the operation; `ret`: time the client received the answer.
 * - `ret === null`: the outcome is unknown (the client gave up). The operation may have taken
 *   effect at any time after `call`, or never; `result` is ignored.
 * - For a completed operation `call < ret` must hold, and `result` must be of the operation's
 *   kind. A completed `get` must carry its result; for a completed `put`/`delete`, `result` may
 *   be `null` (it carries no information).
 */
export interface HistoryOp {
  clientId: number;
  op: KvOp;
  call: number;
  ret: number | null /* null: outcome unknown (the client timed out; the op may or may not have taken effect, at any time after call) */;
  result: KvResult | null;
}

/** Options for {@link checkKvLinearizable}. */
export interface CheckOptions {
  /**
   * Upper bound on the number of distinct search configurations explored *per key*; when a key's
   * search exceeds it, that key's verdict is `unknown`. Default {@link DEFAULT_MAX_STATES}.
   */
  maxStates?: number;
}

/** Verdict of {@link checkKvLinearizable}. */
export type CheckResult = { ok: true } | { ok: false; key: string; reason: string } | { ok: 'unknown'; reason: string };

/** Default per-key exploration bound of {@link checkKvLinearizable}. */
export const DEFAULT_MAX_STATES = 2_000_000;

/**
 * Checks that `history` is linearizable with respect to a map of independent registers
 * (`put` sets a key's value, `delete` sets it to `null`, `get` returns it; every key starts `null`).
 *
 * Real-time order: operation A precedes B iff `A.ret <= B.call`. In other words, at equal
 * timestamps a return happens before a call (a client that receives an answer at tick t and
 * issues its next operation at tick t has issued them sequentially). Operations with
 * `ret === null` are treated as returning at +infinity and may also be left out entirely (a
 * write that never took effect is indistinguishable from one that took effect last).
 *
 * Returns
 * - `{ ok: true }` when a linearization exists for every key;
 * - `{ ok: false, key, reason }` for the first key (in sorted key order) that has none; `reason`
 *   names the key, the longest linearizable prefix found and the operations that could not follow;
 * - `{ ok: 'unknown', reason }` when no key failed but at least one key's search exceeded
 *   `opts.maxStates` explored configurations.
 *
 * Throws `RangeError`/`TypeError` for malformed histories (non-finite times, `ret <= call`,
 * a result whose kind does not match the operation, a completed `get` without a result).
 */
export function checkKvLinearizable(history: HistoryOp[], opts?: CheckOptions): CheckResult {
  const maxStates = opts?.maxStates ?? DEFAULT_MAX_STATES;
  if (!(maxStates >= 0)) throw new RangeError(`maxStates must be a non-negative number, got ${maxStates}`);

  const byKey = new Map<string, number[]>();
  history.forEach((h, i) => {
    validate(h, i);
    let list = byKey.get(h.op.key);
    if (list === undefined) byKey.set(h.op.key, (list = []));
    list.push(i);
  });

  const keys = [...byKey.keys()].sort();
  const unknown: string[] = [];
  for (const key of keys) {
    const res = checkPartition(key, history, byKey.get(key) ?? [], maxStates);
    if (res.ok === false) return res;
    if (res.ok === 'unknown') unknown.push(res.reason);
  }
  if (unknown.length > 0) return { ok: 'unknown', reason: unknown.join('; ') };
  return { ok: true };
}

function validate(h: HistoryOp, i: number): void {
  const where = `history[${i}] (client ${h.clientId}, ${h.op.kind} ${JSON.stringify(h.op.key)})`;
  if (!Number.isFinite(h.call)) throw new RangeError(`${where}: call time must be finite, got ${h.call}`);
  if (h.ret === null) return;
  if (!Number.isFinite(h.ret)) throw new RangeError(`${where}: ret must be finite or null, got ${h.ret}`);
  if (!(h.ret > h.call)) throw new RangeError(`${where}: ret (${h.ret}) must be greater than call (${h.call})`);
  if (h.result === null) {
    if (h.op.kind === 'get') throw new TypeError(`${where}: a completed get must carry its result`);
    return;
  }
  if (h.result.kind !== h.op.kind) throw new TypeError(`${where}: result kind ${h.result.kind} does not match the operation`);
}

// ---------------------------------------------------------------------------------------------
// Per-key search

const PUT = 0;
const GET = 1;
const DEL = 2;
/** Value id of `null` (absent key). Non-null values are interned per key as 1, 2, ... */
const NULL_ID = 0;

type PartitionResult = { ok: true } | { ok: false; key: string; reason: string } | { ok: 'unknown'; reason: string };

interface PreparedOp {
  src: HistoryOp;
  kind: number;
  /** put: value written; get: value read; delete: NULL_ID. */
  value: number;
  call: number;
  /** +Infinity for pending operations. */
  ret: number;
  completed: boolean;
}

function checkPartition(key: string, history: HistoryOp[], indices: number[], maxStates: number): PartitionResult {
  // Intern values; null is NULL_ID.
  const ids = new Map<string, number>();
  const names: (string | null)[] = [null];
  const intern = (v: string | null): number => {
    if (v === null) return NULL_ID;
    let id = ids.get(v);
    if (id === undefined) {
      id = names.length;
      ids.set(v, id);
      names.push(v);
    }
    return id;
  };

  const all: PreparedOp[] = [];
  for (const i of indices) {
    const h = history[i] as HistoryOp;
    const completed = h.ret !== null;
    let kind: number;
    let value: number;
    if (h.op.kind === 'put') {
      kind = PUT;
      value = intern(h.op.value);
    } else if (h.op.kind === 'delete') {
      kind = DEL;
      value = NULL_ID;
    } else {
      kind = GET;
      value = completed && h.result !== null && h.result.kind === 'get' ? intern(h.result.value) : NULL_ID;
    }
    all.push({ src: h, kind, value, call: h.call, ret: h.ret ?? Infinity, completed });
  }

  // Reductions for pending operations. Each keeps the verdict exact and only shrinks the search.
  // 1. A pending get constrains nothing (it can always be left out): dropped.
  // 2. A pending put/delete whose resulting value no completed get returns can be moved to the very
  //    end of any linearization (or left out) without invalidating any read: dropped.
  // 3. A pending put of a value v that no other put of this key writes, and that some completed get
  //    returns, is in every linearization, before the first read of v; that read precedes (in real
  //    time) everything called after R = the latest return of a read of v. So the put is treated as
  //    a completed op returning at R. (Unless R <= its call: then the search reports the violation.)
  // 4. The remaining pending ops with the same effect are interchangeable, and an earlier call is
  //    never a disadvantage, so the ones linearized are WLOG the earliest-called, in call order
  //    (enforced in the search via pendingPred).
  const putsOf = new Map<number, number>();
  const lastRead = new Map<number, number>();
  for (const o of all) {
    if (o.kind === PUT) putsOf.set(o.value, (putsOf.get(o.value) ?? 0) + 1);
    if (o.completed && o.kind === GET) lastRead.set(o.value, Math.max(lastRead.get(o.value) ?? -Infinity, o.ret));
  }
  const ops: PreparedOp[] = [];
  for (const o of all) {
    if (o.completed) {
      ops.push(o);
      continue;
    }
    if (o.kind === GET) continue;
    const readUntil = lastRead.get(o.value);
    if (readUntil === undefined) continue;
    if (o.kind === PUT && putsOf.get(o.value) === 1 && readUntil > o.call) ops.push({ ...o, completed: true, ret: readUntil });
    else ops.push(o);
  }
  const completedCount = ops.reduce((n, o) => n + (o.completed ? 1 : 0), 0);
  if (completedCount === 0) return { ok: true };

  // Number operations in call order (ties: history order; Array.prototype.sort is stable).
  ops.sort((a, b) => a.call - b.call);
  const n = ops.length;
  const opKind = new Uint8Array(n);
  const opValue = new Int32Array(n);
  const opCompleted = new Uint8Array(n);
  const zobrist = new Int32Array(n);
  // For a pending op: the previous pending op (in call order) with the same effect, else -1.
  // Effect class = o.value, since deletes carry NULL_ID and puts carry ids >= 1.
  const pendingPred = new Int32Array(n).fill(-1);
  const lastOfClass = new Map<number, number>();
  let seed = 0x9e3779b9 | 0;
  for (let i = 0; i < n; i++) {
    const o = ops[i] as PreparedOp;
    opKind[i] = o.kind;
    opValue[i] = o.value;
    opCompleted[i] = o.completed ? 1 : 0;
    if (!o.completed) {
      pendingPred[i] = lastOfClass.get(o.value) ?? -1;
      lastOfClass.set(o.value, i);
    }
    // xorshift32: deterministic, well spread, never 0.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    zobrist[i] = seed;
  }

  // Events: 2*i is the call of op i, 2*i+1 its return. Ordered by time; at equal time returns
  // come before calls (the documented tie rule), then by op number.
  const E = 2 * n;
  const evTime = (e: number): number => {
    const o = ops[e >> 1] as PreparedOp;
    return (e & 1) === 0 ? o.call : o.ret;
  };
  const sorted = Array.from({ length: E }, (_, e) => e).sort((a, b) => {
    const ta = evTime(a);
    const tb = evTime(b);
    if (ta < tb) return -1;
    if (ta > tb) return 1;
    const ra = (a & 1) === 1 ? 0 : 1;
    const rb = (b & 1) === 1 ? 0 : 1;
    if (ra !== rb) return ra - rb;
    return (a >> 1) - (b >> 1);
  });
  // Doubly linked list over events; node E is the head sentinel, -1 terminates.
  const HEAD = E;
  const next = new Int32Array(E + 1).fill(-1);
  const prev = new Int32Array(E + 1).fill(-1);
  let last = HEAD;
  for (const e of sorted) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }

  const lift = (op: number): void => {
    const c = 2 * op;
    const r = c + 1;
    next[prev[c] as number] = next[c] as number;
    prev[next[c] as number] = prev[c] as number; // next[c] exists: r follows c
    next[prev[r] as number] = next[r] as number;
    if (next[r] !== -1) prev[next[r] as number] = prev[r] as number;
  };
  const unlift = (op: number): void => {
    const c = 2 * op;
    const r = c + 1;
    if (next[r] !== -1) prev[next[r] as number] = r;
    next[prev[r] as number] = r;
    prev[next[c] as number] = c;
    next[prev[c] as number] = c;
  };

  // Linearized-set bitset with its canonical window [lo, hi): words below lo are all ones,
  // words from hi on are zero.
  const W = (n + 31) >>> 5;
  const words = new Uint32Array(W);
  let lo = 0;
  let hi = 0;
  let zhash = 0;
  const setBit = (op: number): void => {
    const w = op >>> 5;
    words[w] = (words[w] as number) | (1 << (op & 31));
    if (w === lo) while (lo < W && words[lo] === 0xffffffff) lo++;
    if (w >= hi) hi = w + 1;
    zhash ^= zobrist[op] as number;
  };
  const clearBit = (op: number): void => {
    const w = op >>> 5;
    words[w] = (words[w] as number) & ~(1 << (op & 31));
    if (w < lo) lo = w;
    if (w === hi - 1) while (hi > 0 && words[hi - 1] === 0) hi--;
    zhash ^= zobrist[op] as number;
  };

  const memo = new ConfigMemo(W);
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  let sp = 0;
  let state = NULL_ID;
  let completedLeft = completedCount;
  let explored = 0;
  // Deepest prefix seen (for the failure message). best[0, dirtyFrom) still equals the stack.
  const best = new Int32Array(n);
  let bestLen = 0;
  let dirtyFrom = 0;

  let entry = next[HEAD] as number;
  for (;;) {
    if (completedLeft === 0) return { ok: true };
    if (entry === -1) break; // unreachable: an unlinearized completed op's return is still listed
    if ((entry & 1) === 0) {
      // Call event: try to linearize this op now.
      const op = entry >> 1;
      const pred = pendingPred[op] as number;
      if (pred >= 0 && ((words[pred >>> 5] as number) & (1 << (pred & 31))) === 0) {
        entry = next[entry] as number;
        continue;
      }
      const kind = opKind[op] as number;
      let newState: number;
      if (kind === GET) {
        if (state !== opValue[op]) {
          entry = next[entry] as number;
          continue;
        }
        newState = state;
      } else {
        newState = opValue[op] as number; // put: the value; delete: NULL_ID
      }
      setBit(op);
      if (memo.insert(mix(zhash, newState), newState, words, lo, hi)) {
        if (++explored > maxStates) {
          return {
            ok: 'unknown',
            reason:
              `key ${JSON.stringify(key)}: search gave up after exploring more than maxStates=${maxStates} ` +
              `configurations (${n} operations, ${completedCount} completed; deepest linearizable prefix ${bestLen})`,
          };
        }
        stackOp[sp] = op;
        stackState[sp] = state;
        sp++;
        state = newState;
        lift(op);
        if (opCompleted[op] === 1) completedLeft--;
        if (sp > bestLen) {
          best.set(stackOp.subarray(dirtyFrom, sp), dirtyFrom);
          bestLen = sp;
          dirtyFrom = sp;
        }
        entry = next[HEAD] as number;
      } else {
        clearBit(op);
        entry = next[entry] as number;
      }
    } else {
      // Return event of an op not linearized yet: the current prefix is a dead end.
      if (sp === 0) break;
      sp--;
      if (sp < dirtyFrom) dirtyFrom = sp;
      const op = stackOp[sp] as number;
      state = stackState[sp] as number;
      clearBit(op);
      unlift(op);
      if (opCompleted[op] === 1) completedLeft++;
      entry = next[2 * op] as number;
    }
  }

  return { ok: false, key, reason: explainFailure(key, ops, best.subarray(0, bestLen), names) };
}

/** Final mix of the Zobrist set hash with the register state (murmur3 finalizer). */
function mix(h: number, state: number): number {
  let x = (h ^ Math.imul(state + 0x632be5ab, 0x9e3779b1)) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) | 0;
}

/**
 * Set of explored configurations (bitset window + state), exact. Open addressing over Int32Array
 * slots; window words live in one growable Uint32Array pool.
 */
class ConfigMemo {
  private slots: Int32Array = new Int32Array(1 << 10); // entry index + 1; 0 = empty
  private mask = (1 << 10) - 1;
  private count = 0;
  private hashes: Int32Array = new Int32Array(256);
  private states: Int32Array = new Int32Array(256);
  private los: Int32Array = new Int32Array(256);
  private lens: Int32Array = new Int32Array(256);
  private offs: Int32Array = new Int32Array(256);
  private pool: Uint32Array;
  private poolUsed = 0;

  constructor(words: number) {
    this.pool = new Uint32Array(Math.max(64, Math.min(words, 64) * 256));
  }

  /** Adds the configuration; returns false if it was already present. */
  insert(hash: number, state: number, words: Uint32Array, lo: number, hi: number): boolean {
    const len = hi - lo;
    const slots = this.slots;
    let i = hash & this.mask;
    for (;;) {
      const s = slots[i] as number;
      if (s === 0) break;
      const e = s - 1;
      if (this.hashes[e] === hash && this.states[e] === state && this.los[e] === lo && this.lens[e] === len) {
        const off = this.offs[e] as number;
        let same = true;
        for (let k = 0; k < len; k++) {
          if (this.pool[off + k] !== words[lo + k]) {
            same = false;
            break;
          }
        }
        if (same) return false;
      }
      i = (i + 1) & this.mask;
    }

    const e = this.count;
    if (e === this.hashes.length) this.growEntries();
    if (this.poolUsed + len > this.pool.length) {
      const bigger = new Uint32Array(Math.max(this.pool.length * 2, this.poolUsed + len));
      bigger.set(this.pool.subarray(0, this.poolUsed));
      this.pool = bigger;
    }
    this.pool.set(words.subarray(lo, hi), this.poolUsed);
    this.hashes[e] = hash;
    this.states[e] = state;
    this.los[e] = lo;
    this.lens[e] = len;
    this.offs[e] = this.poolUsed;
    this.poolUsed += len;
    slots[i] = e + 1;
    this.count++;
    if (this.count * 2 > slots.length) this.rehash();
    return true;
  }

  private growEntries(): void {
    const grow = (a: Int32Array): Int32Array => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.hashes = grow(this.hashes);
    this.states = grow(this.states);
    this.los = grow(this.los);
    this.lens = grow(this.lens);
    this.offs = grow(this.offs);
  }

  private rehash(): void {
    const size = this.slots.length * 2;
    const slots = new Int32Array(size);
    const mask = size - 1;
    for (let e = 0; e < this.count; e++) {
      let i = (this.hashes[e] as number) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = e + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

// ---------------------------------------------------------------------------------------------
// Failure explanation

function describe(o: PreparedOp, names: (string | null)[]): string {
  const v = (id: number): string => JSON.stringify(names[id] ?? null);
  const what = o.kind === PUT ? `put ${v(o.value)}` : o.kind === DEL ? 'delete' : `get -> ${v(o.value)}`;
  const span = `[${o.call}, ${o.src.ret ?? 'pending'}]`;
  return `${what} (client ${o.src.clientId}, ${span})`;
}

function explainFailure(key: string, ops: PreparedOp[], prefix: Int32Array, names: (string | null)[]): string {
  const MAX_LIST = 4;
  const done = new Uint8Array(ops.length);
  let state = NULL_ID;
  for (const i of prefix) {
    done[i] = 1;
    const o = ops[i] as PreparedOp;
    if (o.kind !== GET) state = o.value;
  }
  // Among the ops left, the one that must return first, and the ops that could come next in
  // real-time order (called before that return).
  let minRet = Infinity;
  let blocking: PreparedOp | undefined;
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i] as PreparedOp;
    if (done[i] === 0 && o.completed && o.ret < minRet) {
      minRet = o.ret;
      blocking = o;
    }
  }
  const candidates: string[] = [];
  let more = 0;
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i] as PreparedOp;
    if (done[i] === 1 || !(o.call < minRet)) continue;
    if (candidates.length < MAX_LIST) candidates.push(describe(o, names));
    else more++;
  }
  const completedTotal = ops.filter((o) => o.completed).length;
  const completedDone = Array.from(prefix).filter((i) => (ops[i] as PreparedOp).completed).length;
  const tail = Array.from(prefix.subarray(Math.max(0, prefix.length - 3))).map((i) => describe(ops[i] as PreparedOp, names));

  let reason =
    `key ${JSON.stringify(key)}: not linearizable; the longest linearizable prefix covers ` +
    `${completedDone} of ${completedTotal} operations that must take effect`;
  reason += prefix.length > 0 ? ` (ending ${prefix.length > 3 ? '..., ' : ''}${tail.join(', ')})` : '';
  reason += `, leaving the value ${JSON.stringify(names[state] ?? null)}`;
  if (blocking !== undefined) reason += `; no order lets ${describe(blocking, names)} take effect before it returned`;
  if (candidates.length > 0) reason += `; operations that could come next: ${candidates.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  return reason;
}
