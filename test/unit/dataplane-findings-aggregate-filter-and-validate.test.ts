import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FINDINGS_QUERY_LIMIT_DEFAULT, FindingsStore, parseFindingsQuery, type FindingEvent } from '../../src/dataplane/findings.js';
import { mergeFindings } from '../../src/dataplane/api-routes.js';
import { NeuwerkError } from '../../src/errors.js';
import { ManualTimers } from '../../src/platform/timers.js';

const EPOCH_MS = Date.parse('2026-11-23T10:00:00Z');

function event(overrides: Partial<FindingEvent> = {}): FindingEvent {
  return {
    type: 'connect',
    sourceGroup: 'office',
    hostname: 'evil.test',
    destination: '192.0.2.1',
    port: 443,
    finding: 'deny',
    ruleId: null,
    reason: 'denied by default_policy',
    clientIp: '10.0.0.1',
    ...overrides,
  };
}

function store(maxEntries?: number): { findings: FindingsStore; time: ManualTimers } {
  const time = new ManualTimers();
  time.advance(EPOCH_MS);
  return { findings: new FindingsStore({ clock: time, ...(maxEntries !== undefined ? { maxEntries } : {}) }), time };
}

function rejects(query: string, parameter: string): void {
  assert.throws(
    () => parseFindingsQuery(new URLSearchParams(query)),
    (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_VALIDATION' && err.httpStatus === 400 && err.message.startsWith(`${parameter}:`),
    `${query} should be refused naming ${parameter}`,
  );
}

describe('audit findings', () => {
  it('keep findings apart by type and source group when the hostname is the same, and evict across DNS and flow findings', () => {
    const { findings, time } = store(4);
    const dns = { type: 'dns', destination: null, port: null } as const;
    findings.record(event({ ...dns, hostname: 'x.test' }));
    findings.record(event({ ...dns, hostname: 'x.test', sourceGroup: 'lab' }));
    findings.record(event({ ...dns, hostname: 'x.test', sourceGroup: null }));
    findings.record(event({ hostname: 'x.test' }));
    time.advance(1_000);
    findings.record(event({ ...dns, hostname: 'x.test' }));
    assert.equal(findings.size, 4);
    const counts = findings.query({ limit: 100 }).findings.map((f) => `${f.type}/${f.source_group}/${f.destination}:${f.count}`);
    assert.deepEqual(counts, ['dns/office/null:2', 'connect/office/192.0.2.1:1', 'dns/null/null:1', 'dns/lab/null:1']);
    // Full: each new aggregate evicts the least recently seen, whichever map holds it.
    findings.record(event({ ...dns, hostname: 'y.test' }));
    findings.record(event({ hostname: 'y.test' }));
    assert.equal(findings.size, 4);
    assert.equal(findings.evictions, 2);
    const kept = findings.query({ limit: 100 }).findings.map((f) => `${f.type}/${f.source_group}/${f.hostname}/${f.destination}`);
    assert.deepEqual(kept, ['connect/office/y.test/192.0.2.1', 'dns/office/y.test/null', 'dns/office/x.test/null', 'connect/office/x.test/192.0.2.1']);
    // The evicted ones start over as new aggregates.
    findings.record(event({ ...dns, hostname: 'x.test', sourceGroup: 'lab' }));
    assert.equal(findings.query({ limit: 1 }).findings[0]?.count, 1);
    assert.equal(findings.recorded, 8);
  });

  it('aggregate by (type, source group, hostname, destination, port) with count and first/last seen', () => {
    const { findings, time } = store();
    findings.record(event());
    time.advance(5_000);
    findings.record(event({ finding: 'audit', ruleId: 'r1', reason: 'would be denied', clientIp: '10.0.0.2' }));
    findings.record(event({ port: 8443 }));
    findings.record(event({ type: 'dns', destination: null, port: null }));
    findings.record(event({ sourceGroup: null }));
    const all = findings.query({ limit: 100 });
    assert.equal(all.total, 4);
    const first = all.findings.find((f) => f.type === 'connect' && f.port === 443 && f.source_group === 'office');
    assert.deepEqual(first, {
      type: 'connect',
      source_group: 'office',
      hostname: 'evil.test',
      destination: '192.0.2.1',
      port: 443,
      count: 2,
      first_seen: new Date(EPOCH_MS).toISOString(),
      last_seen: new Date(EPOCH_MS + 5_000).toISOString(),
      finding: 'audit',
      rule_id: 'r1',
      reason: 'would be denied',
      last_client_ip: '10.0.0.2',
    });
    assert.equal(findings.recorded, 5);
  });

  it('filter by source_group, finding_type, since and until; newest first; limit truncates', () => {
    const { findings, time } = store();
    findings.record(event({ hostname: 'a.test' })); // t0
    time.advance(60_000);
    findings.record(event({ hostname: 'b.test', type: 'dns', destination: null, port: null })); // t0+60s
    time.advance(60_000);
    findings.record(event({ hostname: 'c.test', sourceGroup: 'lab' })); // t0+120s
    const names = (query: string): string[] => findings.view(new URLSearchParams(query)).findings.map((f) => f.hostname ?? '');
    assert.deepEqual(names(''), ['c.test', 'b.test', 'a.test']);
    assert.deepEqual(names('source_group=office'), ['b.test', 'a.test']);
    assert.deepEqual(names('finding_type=dns'), ['b.test']);
    assert.deepEqual(names('since=2026-11-23T10:01:00Z'), ['c.test', 'b.test']);
    assert.deepEqual(names('until=2026-11-23T11:01:00%2B01:00'), ['b.test', 'a.test']);
    const limited = findings.view(new URLSearchParams('limit=1'));
    assert.deepEqual([limited.findings.length, limited.total, limited.truncated], [1, 3, true]);
  });

  it('validates every parameter with a 400 naming it', () => {
    assert.equal(parseFindingsQuery(new URLSearchParams('')).limit, FINDINGS_QUERY_LIMIT_DEFAULT);
    assert.equal(parseFindingsQuery(new URLSearchParams('limit=10000')).limit, 10_000);
    rejects('limit=0', 'limit');
    rejects('limit=10001', 'limit');
    rejects('limit=1.5', 'limit');
    rejects('limit=abc', 'limit');
    rejects('limit=', 'limit');
    rejects('finding_type=tcp', 'finding_type');
    rejects('since=yesterday', 'since');
    rejects('since=2026-11-23', 'since');
    rejects('until=2026-11-23T10:00:00', 'until');
    rejects('since=2026-11-23T11:00:00Z&until=2026-11-23T10:00:00Z', 'since');
    rejects('source_group=', 'source_group');
    rejects('limit=5&limit=6', 'limit');
    rejects('colour=blue', 'colour');
  });

  it('is bounded: beyond the capacity the least recently seen aggregate is evicted', () => {
    const { findings } = store(3);
    for (const name of ['a', 'b', 'c']) findings.record(event({ hostname: `${name}.test` }));
    findings.record(event({ hostname: 'a.test' })); // a becomes the most recent
    findings.record(event({ hostname: 'd.test' }));
    assert.equal(findings.size, 3);
    assert.equal(findings.evictions, 1);
    assert.deepEqual(
      findings.query({ limit: 10 }).findings.map((f) => f.hostname),
      ['d.test', 'a.test', 'c.test'],
    );
  });

  it('mergeFindings adds counts across nodes and keeps the earliest first_seen and latest last_seen', () => {
    const { findings: one, time: t1 } = store();
    const { findings: two, time: t2 } = store();
    one.record(event());
    t2.advance(10_000);
    two.record(event({ finding: 'audit' }));
    two.record(event({ hostname: 'other.test' }));
    t1.advance(1_000);
    one.record(event());
    const merged = mergeFindings([one.query({ limit: 10 }), two.query({ limit: 10 })], 10);
    assert.equal(merged.total, 2);
    const evil = merged.findings.find((f) => f.hostname === 'evil.test');
    assert.equal(evil?.count, 3);
    assert.equal(evil?.first_seen, new Date(EPOCH_MS).toISOString());
    assert.equal(evil?.last_seen, new Date(EPOCH_MS + 10_000).toISOString());
    assert.equal(evil?.finding, 'audit');
  });

  it('mergeFindings cuts the merged list to the limit and counts everything merged as its total', () => {
    const { findings: one } = store();
    const { findings: two } = store();
    for (let i = 0; i < 5; i++) one.record(event({ hostname: `n${i}.test` }));
    for (let i = 3; i < 8; i++) two.record(event({ hostname: `n${i}.test` }));
    const merged = mergeFindings([one.query({ limit: 100 }), two.query({ limit: 100 })], 4);
    assert.equal(merged.findings.length, 4);
    assert.equal(merged.total, 8, 'n0..n7, n3 and n4 on both nodes');
    assert.equal(merged.truncated, true);
    const all = mergeFindings([one.query({ limit: 100 }), two.query({ limit: 100 })], 100);
    assert.deepEqual(all.findings.map((f) => `${f.hostname}:${f.count}`).sort(), ['n0.test:1', 'n1.test:1', 'n2.test:1', 'n3.test:2', 'n4.test:2', 'n5.test:1', 'n6.test:1', 'n7.test:1']);
    assert.equal(all.truncated, false);
  });

  it("mergeFindings' total is at least any node's own total when that node's list was truncated", () => {
    const { findings: one } = store();
    const { findings: two } = store();
    for (let i = 0; i < 30; i++) one.record(event({ hostname: `a${i}.test` }));
    two.record(event({ hostname: 'b.test' }));
    const single = mergeFindings([one.query({ limit: 10 })], 10);
    assert.deepEqual([single.findings.length, single.total, single.truncated], [10, 30, true]);
    const both = mergeFindings([one.query({ limit: 10 }), two.query({ limit: 10 })], 10);
    assert.deepEqual([both.findings.length, both.total, both.truncated], [10, 30, true]);
  });
});
