/**
 * Decision cost stays flat as rules grow (DESIGN §8): in a 40 000-rule group every rule is held by
 * an index, and 10 000 decisions finish far inside the time a per-decision scan of the rules
 * would take (4·10⁸ rule checks). The bound is loose on purpose: it separates "indexed" from
 * "linear" on a busy shared machine; `npm run bench` measures the real figures.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePolicy } from '../../src/policy/compiler.js';
import { decideConnection, decideDns } from '../../src/policy/evaluate.js';
import type { PolicyDocument, PolicyRule } from '../../src/policy/types.js';

const RULES = 40_000;
const DECISIONS = 10_000;
const BUDGET_MS = 1_500;

function largePolicy(): PolicyDocument {
  const rules: PolicyRule[] = [];
  for (let i = 0; i < RULES; i++) {
    const a = Math.floor(i / 256) % 256;
    const b = i % 256;
    switch (i % 4) {
      case 0:
        rules.push({ id: `exact-${i}`, action: 'allow', match: { dns_hostname: { exact: [`svc${i}.example.com`] }, dst_ports: [443] } });
        break;
      case 1:
        rules.push({ id: `suffix-${i}`, action: 'allow', match: { dns_hostname: { suffix: [`tenant${i}.saas.net`] } } });
        break;
      case 2:
        rules.push({ id: `regex-${i}`, action: 'deny', match: { dns_hostname: `^(.*\\.)?api${i}\\.example\\.io$` } });
        break;
      default:
        rules.push({ id: `cidr-${i}`, action: 'allow', match: { dst_cidrs: [`100.${a}.${b}.0/24`], dst_ports: ['8000-8100'] } });
    }
  }
  return { default_policy: 'deny', source_groups: [{ id: 'everyone', sources: { cidrs: ['0.0.0.0/0'] }, default_action: 'deny', rules }] };
}

test('every rule of a large hostname/CIDR policy is indexed and decisions do not scan the rules', () => {
  const policy = compilePolicy(largePolicy());
  assert.equal(policy.stats.rules, RULES);
  assert.equal(policy.stats.dnsUnindexedRules, 0);
  assert.equal(policy.stats.connectionUnindexedRules, 0);

  let allowed = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < DECISIONS; i++) {
    const n = (i * 7919) % RULES;
    const qname = n % 4 === 1 ? `x.tenant${n}.saas.net` : n % 4 === 2 ? `eu.api${n}.example.io` : `svc${n}.example.com`;
    if (decideDns(policy, { srcIp: '10.0.0.1', qname }).action === 'allow') allowed++;
    const dstIp = `100.${Math.floor(n / 256) % 256}.${n % 256}.9`;
    if (decideConnection(policy, { srcIp: '10.0.0.1', dstIp, dstPort: 8080, proto: 'tcp' }).action === 'allow') allowed++;
  }
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  assert.ok(allowed > DECISIONS / 2, `only ${allowed} allows: the workload misses its rules`);
  assert.ok(elapsedMs < BUDGET_MS, `${2 * DECISIONS} decisions took ${elapsedMs.toFixed(0)} ms`);
});
