/**
 * Core-only replication throughput: entries/s through a 3-node cluster of pure `RaftNode`s with a
 * synchronous in-memory message pump — no disk, no sockets, no serialization. It is the ceiling
 * the host can approach; everything else (SQLite, transport) only subtracts.
 *
 * Each round proposes `BATCH_ENTRIES` entries on the leader (one "event-loop turn" of proposals),
 * then pumps Ready batches and messages until every node has applied them. Logs are compacted as
 * the host would, so memory stays bounded.
 */
import { RaftNode } from '../../src/raft/index.js';
import type { Message, NodeId, RaftConfig } from '../../src/raft/index.js';
import { median, nowMs, round, type BenchTable } from './raft-bench-util.js';

/** Payload sizes measured, in bytes. */
export const CORE_PAYLOAD_BYTES = [64, 1024, 16 * 1024] as const;
/** Entries proposed per round (one turn of the event loop's worth of proposals). */
const BATCH_ENTRIES = 256;
/** Time budget of one measured run, in milliseconds. */
const RUN_BUDGET_MS = 600;
/** Measured runs per payload size (the median is reported). */
const RUNS = 5;
/** Compact a node's log once this many entries were applied since its last compaction. */
const COMPACT_EVERY_ENTRIES = 8_192;
/** Bound on pump iterations per round: a safety net against a livelock bug, never reached. */
const MAX_PUMP_ITERATIONS = 100_000;

const IDS: NodeId[] = ['n1', 'n2', 'n3'];
const EMPTY_IMAGE = new Uint8Array(0);

interface CoreNode {
  raft: RaftNode;
  applied: number;
  compactedAt: number;
}

function makeCluster(): Map<NodeId, CoreNode> {
  const nodes = new Map<NodeId, CoreNode>();
  IDS.forEach((id, ordinal) => {
    const config: RaftConfig = {
      id,
      electionTimeoutTicks: 10,
      heartbeatTicks: 1,
      // n1 times out first and wins; the others wait longer.
      random: () => ordinal * 3,
      preVote: true,
      checkQuorum: true,
      maxInflightMsgs: 256,
      maxBytesPerAppend: 1024 * 1024,
      maxSnapshotChunkBytes: 1024 * 1024,
    };
    const raft = new RaftNode(config, {
      hardState: { term: 0, vote: null, commit: 0 },
      snapshotMeta: { index: 0, term: 0, conf: { voters: [...IDS], learners: [] } },
      entries: [],
    });
    nodes.set(id, { raft, applied: 0, compactedAt: 0 });
  });
  return nodes;
}

/** Drives every node's Ready loop and delivers messages synchronously until quiescent. */
function pump(nodes: Map<NodeId, CoreNode>): void {
  let queue: Message[] = [];
  for (let i = 0; i < MAX_PUMP_ITERATIONS; i++) {
    let progressed = false;
    for (const node of nodes.values()) {
      if (!node.raft.hasReady()) continue;
      progressed = true;
      const rd = node.raft.ready();
      // "Persist" is a no-op in memory; early messages may go before it, the rest after; then apply.
      for (const m of rd.earlyMessages) queue.push(m);
      for (const m of rd.messages) queue.push(m);
      if (rd.committedEntries.length > 0) node.applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      node.raft.advance();
      if (node.applied - node.compactedAt >= COMPACT_EVERY_ENTRIES) {
        const meta = node.raft.snapshotMetaAt(node.applied);
        if (meta !== null) node.raft.compact({ meta, data: EMPTY_IMAGE }, node.applied + 1);
        node.compactedAt = node.applied;
      }
    }
    if (queue.length > 0) {
      progressed = true;
      const delivering = queue;
      queue = [];
      for (const m of delivering) nodes.get(m.to)!.raft.step(m);
    }
    if (!progressed) return;
  }
  throw new Error('pump did not quiesce');
}

function electN1(nodes: Map<NodeId, CoreNode>): RaftNode {
  const n1 = nodes.get('n1')!.raft;
  for (let tick = 0; tick < 100 && n1.status().role !== 'leader'; tick++) {
    for (const node of nodes.values()) node.raft.tick();
    pump(nodes);
  }
  if (n1.status().role !== 'leader') throw new Error('n1 did not become leader');
  return n1;
}

function runOnce(payloadBytes: number): number {
  const nodes = makeCluster();
  const leader = electN1(nodes);
  const payload = 'x'.repeat(payloadBytes);
  const started = nowMs();
  let entries = 0;
  while (nowMs() - started < RUN_BUDGET_MS) {
    for (let i = 0; i < BATCH_ENTRIES; i++) {
      const r = leader.propose(payload);
      if (!r.ok) throw new Error(`proposal refused: ${r.reason}`);
    }
    pump(nodes);
    entries += BATCH_ENTRIES;
  }
  const elapsedMs = nowMs() - started;
  const target = leader.status().commit;
  for (const [id, node] of nodes) if (node.applied !== target) throw new Error(`${id} applied ${node.applied}, leader committed ${target}`);
  return (entries / elapsedMs) * 1000;
}

/** Entries/s through three pure cores with an in-memory pump, per payload size (median of runs). */
export async function benchRaftCore(): Promise<BenchTable[]> {
  const rows: BenchTable['rows'] = [];
  runOnce(64); // warm-up: JIT
  for (const payloadBytes of CORE_PAYLOAD_BYTES) {
    const rates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      rates.push(runOnce(payloadBytes));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const rate = median(rates);
    rows.push({
      payloadBytes,
      entriesPerSecMedian: Math.round(rate),
      mibPerSecMedian: round((rate * payloadBytes) / (1024 * 1024), 1),
      entriesPerSecMin: Math.round(Math.min(...rates)),
      entriesPerSecMax: Math.round(Math.max(...rates)),
    });
  }
  return [
    {
      title: `Raft core only: 3 pure RaftNodes, synchronous in-memory pump, ${BATCH_ENTRIES} proposals per round (median of ${RUNS} runs of ${RUN_BUDGET_MS} ms)`,
      rows,
      notes: ['every entry is committed on the leader and applied on all three nodes; no disk, no serialization'],
    },
  ];
}
