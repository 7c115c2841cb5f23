import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { loadConfigFile, resolveNodeConfig, validateConfig } from '../../src/config/load.js';
import { NeuwerkError } from '../../src/errors.js';

const FILE = '/etc/neuwerk/config.yaml';

function errorOf(fn: () => unknown): NeuwerkError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof NeuwerkError, `expected a NeuwerkError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an error');
}

describe('config validation names the file, the path and the value', () => {
  const cases: { name: string; yaml: string; expected: RegExp[] }[] = [
    { name: 'empty document', yaml: '', expected: [/the file is empty/] },
    { name: 'missing version', yaml: 'node: {}\n', expected: [/\(top level\): missing required key "version"/] },
    { name: 'unsupported version', yaml: 'version: 2\n', expected: [/version: 2 is not supported \(expected 1\)/] },
    { name: 'unknown top-level key', yaml: 'version: 1\nclsuter: {}\n', expected: [/clsuter: unknown key \(allowed: version, node, cluster, http, metrics, dns, proxy, policy, log\)/] },
    { name: 'unknown nested key', yaml: 'version: 1\nhttp:\n  bnd: x\n', expected: [/http\.bnd: unknown key \(allowed: bind, advertise, tls_dir, cert_path, key_path\)/] },
    { name: 'bad address', yaml: 'version: 1\nhttp:\n  bind: "127.0.0.1"\n', expected: [/http\.bind: "127\.0\.0\.1" is not a valid address \(expected host:port\)/] },
    { name: 'PROXY protocol range that is not a CIDR', yaml: 'version: 1\nproxy:\n  proxy_protocol_from: [10.0.0.0/8, 10.0.0.5]\n', expected: [/proxy\.proxy_protocol_from\[1\]: "10\.0\.0\.5" is not a valid CIDR \(expected address\/prefix-length/] },
    { name: 'PROXY protocol range with host bits', yaml: 'version: 1\nproxy:\n  proxy_protocol_from: ["10.0.0.5/8"]\n', expected: [/proxy\.proxy_protocol_from\[0\]: "10\.0\.0\.5\/8" has host bits set \(did you mean 10\.0\.0\.0\/8\?\)/] },
    { name: 'PROXY protocol ranges not a list', yaml: 'version: 1\nproxy:\n  proxy_protocol_from: 10.0.0.0/8\n', expected: [/proxy\.proxy_protocol_from: "10\.0\.0\.0\/8" is not of type array/] },
    { name: 'tunnel grace beyond the stop budget', yaml: 'version: 1\nproxy:\n  tunnel_grace_ms: 9000\n', expected: [/proxy\.tunnel_grace_ms: 9000/, /5000/] },
    { name: 'port out of range', yaml: 'version: 1\nmetrics:\n  bind: "0.0.0.0:70000"\n', expected: [/metrics\.bind: "0\.0\.0\.0:70000" is not a valid address \(port 70000 is above 65535\)/] },
    { name: 'numeric host that is no IPv4 address', yaml: 'version: 1\nmetrics:\n  bind: "300.1.1.1:80"\n', expected: [/metrics\.bind: "300\.1\.1\.1:80" is not a valid address \("300\.1\.1\.1" is not a valid IPv4 address\)/] },
    { name: 'bad IPv6 form', yaml: 'version: 1\nhttp:\n  bind: "::1:8443"\n', expected: [/IPv6 addresses must be written as \[addr\]:port/] },
    { name: 'bad array item', yaml: 'version: 1\ndns:\n  upstreams: ["1.1.1.1:53", "nope"]\n', expected: [/dns\.upstreams\[1\]: "nope" is not a valid address/] },
    { name: 'bad enum', yaml: 'version: 1\npolicy:\n  default: maybe\n', expected: [/policy\.default: "maybe" is not one of allow, deny/] },
    { name: 'wrong type', yaml: 'version: 1\nnode:\n  data_dir: 5\n', expected: [/node\.data_dir: 5 is not of type string/] },
    { name: 'cert without key', yaml: 'version: 1\nhttp:\n  cert_path: /x.crt\n', expected: [/http: cert_path needs key_path too/] },
    { name: 'several errors at once', yaml: 'version: 1\nlog:\n  level: loud\n  format: xml\n', expected: [/log\.level: "loud"/, /log\.format: "xml"/] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const error = errorOf(() => validateConfig(parseDocument(c.yaml).toJS(), FILE));
      assert.equal(error.code, 'NW_ERR_CONFIG_INVALID');
      assert.equal(error.exitCode, 2);
      assert.ok(error.message.startsWith(`config ${FILE}: `), error.message);
      for (const pattern of c.expected) assert.match(error.message, pattern);
    });
  }

  it('accepts a complete valid document', () => {
    const doc = parseDocument(
      'version: 1\nnode:\n  data_dir: /d\nhttp:\n  bind: "[::1]:8443"\nmetrics:\n  bind: 127.0.0.1:8080\npolicy:\n  default: allow\nlog:\n  level: debug\n  format: pretty\n',
    ).toJS();
    assert.deepEqual(validateConfig(doc, FILE).http, { bind: '[::1]:8443' });
  });
});

describe('config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a YAML syntax error names the line', () => {
    const file = join(dir, 'syntax.yaml');
    writeFileSync(file, 'version: 1\nhttp:\n  bind: [\n');
    const error = errorOf(() => loadConfigFile(file));
    assert.equal(error.exitCode, 2);
    assert.match(error.message, new RegExp(`config ${file}: not valid YAML at line \\d+, column \\d+: `));
    assert.equal(error.message.match(/at line/g)?.length, 1, `the position once: ${error.message}`);
    assert.ok(!error.message.endsWith(':'), error.message);
  });

  it('a duplicate key is an error, not a silent override', () => {
    const file = join(dir, 'dup.yaml');
    writeFileSync(file, 'version: 1\nlog:\n  level: info\n  level: debug\n');
    assert.match(errorOf(() => loadConfigFile(file)).message, /not valid YAML/);
  });

  it('a missing file names the path', () => {
    const error = errorOf(() => loadConfigFile(join(dir, 'absent.yaml')));
    assert.equal(error.code, 'NW_ERR_CONFIG_UNREADABLE');
    assert.equal(error.exitCode, 2);
    assert.match(error.message, /absent\.yaml: cannot read the file: no such file/);
  });
});

describe('resolving flags over the file over defaults', () => {
  it('fills defaults under the data dir', () => {
    const config = resolveNodeConfig(null, null, { 'data-dir': '/srv/nw' });
    assert.equal(config.dataDir, '/srv/nw');
    assert.equal(config.nodeIdPath, '/srv/nw/node_id');
    assert.equal(config.clusterDataDir, '/srv/nw/cluster');
    assert.equal(config.http.tlsDir, '/srv/nw/http-tls');
    assert.deepEqual(config.http.bind, { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(config.metrics.bind, { host: '127.0.0.1', port: 8080 });
    assert.equal(config.policy.defaultPolicy, 'deny');
    assert.equal(config.log.format, 'json');
    assert.equal(config.cluster, null);
  });

  it('a flag wins over the file', () => {
    const file = validateConfig({ version: 1, http: { bind: '10.0.0.1:443' }, log: { level: 'warn', format: 'pretty' } }, FILE);
    const config = resolveNodeConfig(file, FILE, { 'http-bind': '127.0.0.1:9443', 'log-level': 'debug' });
    assert.deepEqual(config.http.bind, { host: '127.0.0.1', port: 9443 });
    assert.deepEqual(config.http.advertise, { host: '127.0.0.1', port: 9443 });
    assert.equal(config.log.level, 'debug');
    assert.equal(config.log.format, 'pretty');
    // A listen error names where the address came from: the flag, the file's key, or the flag of a default.
    assert.equal(config.bindSettings.http, '--http-bind');
    assert.equal(resolveNodeConfig(file, FILE, {}).bindSettings.http, `http.bind (config ${FILE})`);
    assert.equal(resolveNodeConfig(file, FILE, {}).bindSettings.metrics, '--metrics-bind');
  });

  it('a bad flag value names the flag', () => {
    const error = errorOf(() => resolveNodeConfig(null, null, { 'http-advertise': 'host' }));
    assert.equal(error.exitCode, 2);
    assert.equal(error.message, '--http-advertise: "host" is not a valid address (expected host:port)');
  });

  it('DNS and proxy settings resolve from flags or the file; upstreams default to the system resolvers', () => {
    const fromFlags = resolveNodeConfig(null, null, { 'dns-bind': '127.0.0.1:5353', 'dns-upstream': ['10.0.0.2:53', '[::1]:53'], 'proxy-bind': '127.0.0.1:3128' });
    assert.deepEqual(fromFlags.dns, { bind: { host: '127.0.0.1', port: 5353 }, upstreams: [{ host: '10.0.0.2', port: 53 }, { host: '::1', port: 53 }] });
    assert.deepEqual(fromFlags.proxy, { bind: { host: '127.0.0.1', port: 3128 }, tunnelGraceMs: 3000, proxyProtocolFrom: [] });
    const graceful = validateConfig({ version: 1, proxy: { bind: '127.0.0.1:3128', tunnel_grace_ms: 0 } }, FILE);
    assert.equal(resolveNodeConfig(graceful, FILE, {}).proxy?.tunnelGraceMs, 0);
    const file = validateConfig({ version: 1, dns: { bind: '127.0.0.1:53' } }, FILE);
    assert.deepEqual(resolveNodeConfig(file, FILE, {}).dns, { bind: { host: '127.0.0.1', port: 53 }, upstreams: [] });
    const error = errorOf(() => resolveNodeConfig(null, null, { 'dns-upstream': ['1.1.1.1:53'] }));
    assert.equal(error.exitCode, 2);
    assert.match(error.message, /--dns-upstream needs --dns-bind/);
    assert.match(errorOf(() => resolveNodeConfig(null, null, { 'dns-bind': '127.0.0.1:53', 'dns-upstream': ['nope'] })).message, /^--dns-upstream: "nope" is not a valid address/);
  });

  it('PROXY protocol ranges: off by default, from the file or the repeatable flag (a flag wins), canonical, and only with a proxy', () => {
    const file = validateConfig({ version: 1, proxy: { bind: '127.0.0.1:3128', proxy_protocol_from: ['10.0.0.0/8', '2001:DB8:0::/32'] } }, FILE);
    assert.deepEqual(resolveNodeConfig(file, FILE, {}).proxy?.proxyProtocolFrom, ['10.0.0.0/8', '2001:db8::/32']);
    assert.deepEqual(resolveNodeConfig(file, FILE, { 'proxy-protocol-from': ['127.0.0.1/32', '192.168.0.0/16'] }).proxy?.proxyProtocolFrom, ['127.0.0.1/32', '192.168.0.0/16']);
    assert.deepEqual(resolveNodeConfig(validateConfig({ version: 1, proxy: { bind: '127.0.0.1:3128', proxy_protocol_from: [] } }, FILE), FILE, {}).proxy?.proxyProtocolFrom, []);
    assert.deepEqual(resolveNodeConfig(null, null, { 'proxy-bind': '127.0.0.1:3128' }).proxy?.proxyProtocolFrom, []);
    const notCidr = errorOf(() => resolveNodeConfig(null, null, { 'proxy-bind': '127.0.0.1:3128', 'proxy-protocol-from': ['10.0.0.0/8', 'balancer'] }));
    assert.equal(notCidr.exitCode, 2);
    assert.match(notCidr.message, /^--proxy-protocol-from: "balancer" is not a valid CIDR/);
    assert.match(errorOf(() => resolveNodeConfig(null, null, { 'proxy-bind': '127.0.0.1:3128', 'proxy-protocol-from': ['10.1.2.3/16'] })).message, /^--proxy-protocol-from: "10\.1\.2\.3\/16" has host bits set \(did you mean 10\.1\.0\.0\/16\?\)/);
    assert.match(errorOf(() => resolveNodeConfig(null, null, { 'proxy-protocol-from': ['127.0.0.1/32'] })).message, /--proxy-protocol-from \(proxy\.proxy_protocol_from\) needs --proxy-bind/);
    const withoutBind = validateConfig({ version: 1, proxy: { proxy_protocol_from: ['127.0.0.1/32'] } }, FILE);
    const fromFile = errorOf(() => resolveNodeConfig(withoutBind, FILE, {}));
    assert.equal(fromFile.message, `config ${FILE}: proxy.proxy_protocol_from needs proxy.bind (or --proxy-bind) too`);
    assert.equal(fromFile.exitCode, 2);
    const upstreamsOnly = errorOf(() => resolveNodeConfig(validateConfig({ version: 1, dns: { upstreams: ['1.1.1.1:53'] } }, FILE), FILE, {}));
    assert.equal(upstreamsOnly.message, `config ${FILE}: dns.upstreams needs dns.bind (or --dns-bind) too`);
    // Repeated flags have the file's bounds.
    const nineUpstreams = Array.from({ length: 9 }, (_, i) => `127.0.0.${i + 1}:53`);
    const tooManyUpstreams = errorOf(() => resolveNodeConfig(null, null, { 'dns-bind': '127.0.0.1:5353', 'dns-upstream': nineUpstreams }));
    assert.deepEqual([tooManyUpstreams.message, tooManyUpstreams.exitCode], ['--dns-upstream: at most 8 upstreams (got 9)', 2]);
    assert.equal(resolveNodeConfig(null, null, { 'dns-bind': '127.0.0.1:5353', 'dns-upstream': nineUpstreams.slice(0, 8) }).dns?.upstreams.length, 8);
    const manyBalancers = Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`);
    assert.equal(errorOf(() => resolveNodeConfig(null, null, { 'proxy-bind': '127.0.0.1:3128', 'proxy-protocol-from': manyBalancers })).message, '--proxy-protocol-from: at most 64 CIDRs (got 65)');
    // Timer ticks that cross: refused with the file, both keys and both values, before any state exists.
    const ticks = errorOf(() => resolveNodeConfig(validateConfig({ version: 1, cluster: { heartbeat_ticks: 20, election_timeout_ticks: 10 } }, FILE), FILE, {}));
    assert.equal(ticks.message, `config ${FILE}: cluster.heartbeat_ticks (20) must be below cluster.election_timeout_ticks (10)`);
    assert.equal(ticks.exitCode, 2);
    const tooMany = Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`);
    assert.match(errorOf(() => validateConfig({ version: 1, proxy: { bind: '127.0.0.1:3128', proxy_protocol_from: tooMany } }, FILE)).message, /proxy\.proxy_protocol_from: .* must NOT have more than 64 items/);
  });

  it('--cluster-bind or --join enables cluster mode with the documented defaults', () => {
    const seed = resolveNodeConfig(null, null, { 'data-dir': '/d', 'cluster-bind': '10.0.0.1:9600' });
    assert.deepEqual(seed.cluster, {
      bind: { host: '10.0.0.1', port: 9600 },
      joinBind: { host: '10.0.0.1', port: 9601 },
      advertise: { host: '10.0.0.1', port: 9600 },
      join: null,
      bootstrapTokenPath: '/d/bootstrap-token',
    });
    const joiner = resolveNodeConfig(null, null, { 'data-dir': '/d', join: '10.0.0.1:9601' });
    assert.deepEqual(joiner.cluster?.bind, { host: '127.0.0.1', port: 9600 });
    assert.deepEqual(joiner.cluster?.join, { host: '10.0.0.1', port: 9601 });
  });

  it('cluster-only flags without cluster mode are a usage error', () => {
    assert.match(errorOf(() => resolveNodeConfig(null, null, { 'cluster-advertise': '127.0.0.1:9600' })).message, /--cluster-advertise only applies in cluster mode/);
  });
});
