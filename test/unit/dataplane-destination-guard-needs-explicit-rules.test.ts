import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DestinationGuard, expandOwnAddresses, ruleNamesDestination } from '../../src/dataplane/destination-guard.js';
import { parseConnectAuthority, sanitizeReason } from '../../src/dataplane/forward-proxy.js';
import { compilePolicy, decideConnection, parsePolicy } from '../../src/policy/index.js';

describe('forward proxy destination guard', () => {
  const guard = new DestinationGuard(['192.0.2.10', 'not-an-address']);

  it('flags loopback, link-local (metadata), unspecified, multicast and own addresses in every spelling', () => {
    for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', '[::1]', '0.0.0.0', '0.1.2.3', '::', '169.254.169.254', 'fe80::1%eth0', 'febf::1', '224.0.0.1', '255.255.255.255', 'ff02::1', 'fd00:ec2::254', '192.0.2.10', '::127.0.0.1']) {
      assert.notEqual(guard.specialReason(ip), null, ip);
    }
    for (const ip of ['192.0.2.11', '10.0.0.1', '140.82.121.4', '2001:db8::1', 'fec0::1', '128.0.0.1', '169.255.0.1']) {
      assert.equal(guard.specialReason(ip), null, ip);
    }
    assert.equal(guard.specialReason('example.test'), 'not an IP address');
    assert.match(guard.specialReason('169.254.169.254') ?? '', /metadata/);
  });

  it('an unspecified bind host stands for every interface address', () => {
    const own = expandOwnAddresses(['0.0.0.0']);
    assert.ok(own.has('127.0.0.1'));
    assert.ok(!own.has('0.0.0.0'));
    assert.equal(new DestinationGuard(['::']).specialReason('127.0.0.1'), 'a loopback address');
  });

  it('ruleNamesDestination: only rules with dst_ips or dst_cidrs name a destination; defaults never do', () => {
    const policy = compilePolicy(
      parsePolicy({
        default_policy: 'allow',
        source_groups: [
          {
            id: 'lab',
            sources: { cidrs: ['10.0.0.0/8'] },
            rules: [
              { id: 'named', action: 'allow', match: { dst_cidrs: ['127.0.0.0/8'], dst_ports: [80] } },
              { id: 'by-name', action: 'allow', match: { dns_hostname: { exact: ['local.test'] }, dst_ports: [81] } },
            ],
          },
        ],
      }),
    );
    const flow = (port: number, hostname?: string) => decideConnection(policy, { srcIp: '10.1.1.1', dstIp: '127.0.0.1', dstPort: port, proto: 'tcp', ...(hostname ? { hostname } : {}) });
    assert.equal(ruleNamesDestination(policy, flow(80)), true);
    assert.equal(ruleNamesDestination(policy, flow(81, 'local.test')), false);
    assert.equal(ruleNamesDestination(policy, flow(82)), false, 'default_policy allow');
  });

  it('parses CONNECT authorities strictly', () => {
    assert.deepEqual(parseConnectAuthority('Example.TEST:443'), { hostname: 'example.test', literalIp: null, port: 443 });
    assert.deepEqual(parseConnectAuthority('[::1]:8443'), { hostname: null, literalIp: '::1', port: 8443 });
    assert.deepEqual(parseConnectAuthority('192.0.2.1:22'), { hostname: null, literalIp: '192.0.2.1', port: 22 });
    for (const bad of ['example.test', 'example.test:0', 'example.test:65536', ':443', '::1:443', 'exa mple.test:443', '2130706433:443', '0x7f.1:80', '127.1:80', 'a..b:80', '[example.test]:80']) {
      assert.equal(parseConnectAuthority(bad), null, bad);
    }
  });

  it('reasons are one printable line of bounded length', () => {
    assert.equal(sanitizeReason('denied\r\nX-Injected: yes'), 'denied??X-Injected: yes');
    assert.equal(sanitizeReason('x'.repeat(500)).length, 200);
  });
});
