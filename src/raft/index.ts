/**
 * The pure Raft core (DESIGN §4): no sockets, timers, clocks, randomness or disk. The host drives
 * a `RaftNode` with ticks, messages and proposals and performs the I/O that `Ready` asks for.
 */
export * from './types.js';
export { RaftNode, DEFAULT_MAX_COMMITTED_ENTRIES_PER_READY, MAX_PENDING_READ_REQUESTS } from './node.js';
export { ENTRY_OVERHEAD_BYTES, entrySizeBytes } from './log.js';
export { applyConfChange, decodeConfChange, encodeConfChange, isLearner, isVoter } from './confchange.js';
export { committedIndex, quorumSize, voteResult, hasQuorum } from './quorum.js';
export type { VoteResult } from './quorum.js';
