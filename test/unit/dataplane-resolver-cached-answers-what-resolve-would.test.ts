/**
 * `UpstreamResolver.cached` (the forward proxy's synchronous path) answers exactly what `resolve`
 * would answer from its cache: nothing before a lookup, the addresses (or the empty negative
 * answer) while fresh, and null again once the TTL passed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Clock } from '../../src/platform/clock.js';
import type { DnsUpstreamClient, ExchangeOutcome } from '../../src/dataplane/dns-upstream.js';
import { RCODE } from '../../src/dataplane/dns-messages.js';
import { UpstreamResolver } from '../../src/dataplane/resolver.js';

class ManualClock implements Clock {
  now = 1_000;
  monotonicMs(): number {
    return this.now;
  }
  wallMs(): number {
    return this.now;
  }
}

/** Answers A queries for `known` with 127.0.0.1 (TTL 30 s), AAAA with no data, anything else NXDOMAIN. */
function stubUpstream(known: string, asked: string[]): DnsUpstreamClient {
  const exchange = (query: Buffer): Promise<ExchangeOutcome> => {
    const decoded = dnsPacket.decode(query);
    const question = decoded.questions?.[0] as dnsPacket.Question;
    asked.push(`${question.type} ${question.name}`);
    const exists = question.name === known;
    const answers: dnsPacket.Answer[] = exists && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, class: 'IN', data: '127.0.0.1' }] : [];
    const reply = dnsPacket.encode({ type: 'response', id: decoded.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (exists ? 0 : RCODE.NXDOMAIN), questions: [question], answers });
    return Promise.resolve({ ok: true, reply, rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN, truncated: false, upstream: 'stub' });
  };
  return { exchange } as unknown as DnsUpstreamClient;
}

describe('UpstreamResolver.cached', () => {
  it('answers from the cache only, while the answer is fresh', async () => {
    const clock = new ManualClock();
    const asked: string[] = [];
    const resolver = new UpstreamResolver(stubUpstream('known.test', asked), { clock });
    assert.equal(resolver.cached('known.test'), null, 'nothing before a lookup');
    assert.deepEqual(await resolver.resolve('known.test'), { ok: true, addresses: ['127.0.0.1'] });
    assert.deepEqual(resolver.cached('known.test'), ['127.0.0.1']);
    assert.deepEqual(resolver.cached('KNOWN.test.'), ['127.0.0.1'], 'the name is normalised as by resolve');
    assert.deepEqual(await resolver.resolve('nothing.test'), { ok: true, addresses: [] });
    assert.deepEqual(resolver.cached('nothing.test'), [], 'a negative answer is cached as no address');
    const lookups = asked.length;
    clock.now += 5_000; // the negative TTL (5 s) has passed; the positive one (30 s) has not
    assert.equal(resolver.cached('nothing.test'), null);
    assert.deepEqual(resolver.cached('known.test'), ['127.0.0.1']);
    clock.now += 25_000;
    assert.equal(resolver.cached('known.test'), null, 'the TTL has passed');
    assert.equal(asked.length, lookups, 'cached() never asks the upstream');
  });
});
