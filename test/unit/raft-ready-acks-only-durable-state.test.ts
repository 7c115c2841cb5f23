/**
 * The Ready contract (etcd's Ready; Raft Figure 2: persistent state is "updated on stable storage
 * before responding to RPCs"): every append acknowledgement and vote grant in a Ready is backed by
 * entries and hard state that are durable once that Ready is persisted; the messages a host may
 * send before persisting are a leader's replication traffic in an already durable term.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TestCluster } from '../sim/cluster.js';

test('acks and vote grants only cover durable state, across random partitions, proposals and crashes', () => {
  let total = 0;
  fc.assert(
    fc.property(fc.array(fc.nat(99), { minLength: 20, maxLength: 80 }), fc.boolean(), (script, preVote) => {
      const ids = ['n1', 'n2', 'n3'];
      const c = new TestCluster({ voters: ids, maxBytesPerAppend: 64, preVote });
      let checked = 0;
      // The hard state each node had made durable before the Ready being checked.
      const durableBefore = new Map<string, { term: number; vote: string | null }>();
      c.onPersisted = (node, rd) => {
        const st = node.storage;
        const before = durableBefore.get(node.id) ?? { term: 0, vote: null };
        // Early messages (sent before this Ready was durable) are a leader's replication traffic
        // in a term and vote that were already durable.
        for (const m of rd.earlyMessages) {
          assert.ok(m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot', `${node.id} sent ${m.type} before persisting`);
          assert.equal(m.term, before.term, `${node.id} sent a ${m.type} of a term not yet durable`);
          assert.ok(rd.hardState === undefined || (rd.hardState.term === before.term && rd.hardState.vote === before.vote));
          checked++;
        }
        durableBefore.set(node.id, { term: st.hardState.term, vote: st.hardState.vote });
        for (const m of rd.messages) {
          if (m.type === 'append-resp' && !m.reject && m.term === st.hardState.term && m.index > 0) {
            const e = st.lastIndex() >= m.index ? st.entries.find((x) => x.index === m.index) : undefined;
            assert.ok(e !== undefined || st.snapshot.meta.index >= m.index, `${node.id} acked ${m.index}, durable up to ${st.lastIndex()}`);
            checked++;
          }
          if (m.type === 'vote-resp' && !m.reject) {
            assert.equal(st.hardState.term, m.term, `${node.id} granted a vote in a term not yet durable`);
            assert.equal(st.hardState.vote, m.to, `${node.id} granted a vote not yet durable`);
            checked++;
          }
        }
      };
      for (const step of script) {
        const id = ids[step % 3]!;
        if (step < 40) c.run(1);
        else if (step < 60) c.raft(c.leaders()[0] ?? id).propose(`v${step}`);
        else if (step < 70) c.isolate(id);
        else if (step < 85) c.heal();
        else if (step < 92) {
          if (!c.node(id).crashed) c.crash(id);
        } else if (c.node(id).crashed) c.restart(id);
      }
      total += checked;
    }),
    { numRuns: 120 },
  );
  assert.ok(total > 100, `only ${total} acknowledgements checked`);
});
