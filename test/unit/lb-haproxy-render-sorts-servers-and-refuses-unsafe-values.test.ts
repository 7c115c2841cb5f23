import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemberView } from '../../src/cli/cluster.js';
import { NeuwerkError } from '../../src/errors.js';
import { renderHaproxyConfig, type HaproxyOptions } from '../../src/lb/haproxy.js';
import { renderTemplate } from '../../src/lb/render.js';

const OPTIONS: HaproxyOptions = { proxyPort: 3128, proxyBind: '*:3128', apiBind: '*:8443', statsSocket: '/run/haproxy/admin.sock', sendProxy: false };

function member(nodeId: string, httpAddr: string, extra: Partial<MemberView> = {}): MemberView {
  return { node_id: nodeId, cluster_addr: null, http_addr: httpAddr, role: 'follower', voter: true, status: 'healthy', joined_at: '2024-01-01T00:00:00Z', ...extra };
}

/** The lines of the section that starts with `header`, up to the next blank line. */
function section(text: string, header: string): string {
  const start = text.indexOf(`\n${header}\n`);
  assert.ok(start >= 0, `no section ${header}`);
  const end = text.indexOf('\n\n', start + 1);
  return text.slice(start + 1, end < 0 ? undefined : end);
}

function serverLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim().startsWith('server '));
}

describe('the template renderer', () => {
  it('substitutes scalars and repeats blocks per record, block tags taking their own lines', () => {
    const out = renderTemplate('a {{x}}\n{{#items}}\n  - {{name}}:{{port}}\n{{/items}}\nend\n', { x: 'one', items: [{ name: 'p', port: 1 }, { name: 'q', port: 2 }] });
    assert.equal(out, 'a one\n  - p:1\n  - q:2\nend\n');
  });

  it('refuses values holding whitespace, newlines, quotes, comments or control characters', () => {
    for (const bad of ['a b', 'a\nb', 'a\tb', 'a\rb', 'a"b', "a'b", 'a#b', 'a\\b', 'a\u0000b', '']) {
      assert.throws(() => renderTemplate('v {{x}}\n', { x: bad }), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_USAGE', JSON.stringify(bad));
      assert.throws(() => renderTemplate('{{#s}}\n{{x}}\n{{/s}}\n', { s: [{ x: bad }] }), NeuwerkError, JSON.stringify(bad));
    }
  });

  it('refuses missing values, unknown tags and a list used as a value', () => {
    assert.throws(() => renderTemplate('{{missing}}', {}), /no value for \{\{missing\}\}/);
    assert.throws(() => renderTemplate('{{#s}}\n{{x}}\n', { s: [] }), /unsupported tag/);
    assert.throws(() => renderTemplate('{{s}}', { s: [] }), /is a list/);
    assert.throws(() => renderTemplate('{{#s}}\nx\n{{/s}}\n', { s: 'text' }), /needs a list/);
  });
});

describe('the HAProxy configuration', () => {
  const members = [member('node-c', '10.0.0.13:8443'), member('node-a', '10.0.0.11:8443', { role: 'leader' }), member('node-b', '10.0.0.12:9443', { role: 'learner', voter: false })];

  it('lists servers sorted by node id in both backends; a member without proxy_addr is assumed at its http host with --proxy-port', () => {
    const text = renderHaproxyConfig(members, { ...OPTIONS, proxyPort: 3129 });
    assert.deepEqual(serverLines(text).map((l) => l.trim()), [
      'server node-a 10.0.0.11:3129 check addr 10.0.0.11 port 8443 check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
      'server node-b 10.0.0.12:3129 check addr 10.0.0.12 port 9443 check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
      'server node-c 10.0.0.13:3129 check addr 10.0.0.13 port 8443 check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
      'server node-a 10.0.0.11:8443 check check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
      'server node-b 10.0.0.12:9443 check check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
      'server node-c 10.0.0.13:8443 check check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2',
    ]);
    for (const expected of ['stats socket /run/haproxy/admin.sock', 'timeout connect 5s', 'timeout client 1m', 'timeout server 1m', 'timeout tunnel 1h', 'option redispatch', 'retries 3',
      'bind *:3128', 'bind *:8443', 'balance source', 'hash-type consistent', 'option httpchk GET /ready', 'http-check expect status 200']) {
      assert.ok(text.includes(expected), expected);
    }
    assert.doesNotMatch(text, /\{\{|\}\}/);
  });

  it("uses each member's recorded proxy_addr, checked through its management API", () => {
    const recorded = [member('n1', '127.0.0.1:20001', { proxy_addr: '127.0.0.1:20011' }), member('n2', '10.0.0.2:8443', { proxy_addr: '192.0.2.7:3130' }), member('n3', '10.0.0.3:8443', { proxy_addr: null })];
    assert.deepEqual(serverLines(renderHaproxyConfig(recorded, OPTIONS)).slice(0, 3).map((l) => l.trim().split(' ').slice(0, 8).join(' ')), [
      'server n1 127.0.0.1:20011 check addr 127.0.0.1 port 20001',
      'server n2 192.0.2.7:3130 check addr 10.0.0.2 port 8443',
      'server n3 10.0.0.3:3128 check addr 10.0.0.3 port 8443',
    ]);
    assert.throws(() => renderHaproxyConfig([member('n1', '127.0.0.1:20001', { proxy_addr: 'nowhere' })], OPTIONS), /n1: proxy_addr "nowhere" is not host:port/);
  });

  it('--send-proxy: send-proxy-v2 for the forward-proxy servers only; checks still go to the management API without it', () => {
    const plain = renderHaproxyConfig(members, OPTIONS);
    assert.doesNotMatch(plain, /send-proxy/);
    const text = renderHaproxyConfig(members, { ...OPTIONS, sendProxy: true });
    const proxyBackend = section(text, 'backend neuwerk_proxy_nodes');
    const defaultServer = proxyBackend.indexOf('\n    default-server send-proxy-v2\n');
    assert.ok(defaultServer >= 0, proxyBackend);
    assert.ok(defaultServer < proxyBackend.indexOf('\n    server '), 'default-server comes before the servers it applies to');
    assert.doesNotMatch(section(text, 'backend neuwerk_api_nodes'), /send-proxy/);
    assert.doesNotMatch(section(text, 'frontend neuwerk_proxy'), /accept-proxy|send-proxy/);
    const directives = text.split('\n').filter((line) => !line.trim().startsWith('#')).join('\n');
    assert.doesNotMatch(directives, /check-send-proxy/, 'HAProxy would then add the header to the HTTPS checks of the management API');
    // HAProxy sends the PROXY protocol on checks only when the server line has neither "addr" nor "port" (or with check-send-proxy).
    for (const line of serverLines(proxyBackend)) assert.match(line, / check addr \S+ port \d+ check-ssl /);
    assert.deepEqual(serverLines(text), serverLines(plain), 'the server lines are the same');
    assert.equal(text.split('\n').filter((line) => !plain.split('\n').includes(line)).filter((line) => !line.trim().startsWith('#')).join('\n'), '    default-server send-proxy-v2');
  });

  it('is deterministic: the same membership in any order gives byte-identical text', () => {
    const once = renderHaproxyConfig(members, OPTIONS);
    assert.equal(renderHaproxyConfig([...members].reverse(), OPTIONS), once);
    assert.equal(renderHaproxyConfig([members[1], members[2], members[0]] as MemberView[], OPTIONS), once);
  });

  it('keeps only voters and learners, and brackets IPv6 hosts', () => {
    const text = renderHaproxyConfig([member('a', '[fd00::1]:8443'), member('gone', '10.0.0.9:8443', { role: 'candidate', voter: false })], OPTIONS);
    assert.deepEqual(serverLines(text).map((l) => l.trim().split(' ').slice(0, 3).join(' ')), ['server a [fd00::1]:3128', 'server a [fd00::1]:8443']);
  });

  it('refuses node ids and flag values that would break the configuration', () => {
    assert.throws(() => renderHaproxyConfig([member('evil\nserver x 1.2.3.4:1', '10.0.0.1:8443')], OPTIONS), NeuwerkError);
    assert.throws(() => renderHaproxyConfig([member('has space', '10.0.0.1:8443')], OPTIONS), NeuwerkError);
    assert.throws(() => renderHaproxyConfig([member('a', '10.0.0.1:8443')], { ...OPTIONS, statsSocket: '/run/my socket' }), /stats_socket/);
    assert.throws(() => renderHaproxyConfig([member('a', '10.0.0.1:8443')], { ...OPTIONS, proxyBind: 'x\nlisten *:3128' }), /proxy_bind/);
    assert.throws(() => renderHaproxyConfig([], OPTIONS), /no voter or learner/);
    assert.throws(() => renderHaproxyConfig([member('a', '10.0.0.1:8443')], { ...OPTIONS, apiBind: '127.0.0.1:0' }), /--api-bind/);
  });
});
