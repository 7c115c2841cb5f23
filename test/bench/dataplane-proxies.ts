/**
 * Starts neuwerk's DNS proxy or forward proxy standalone (no store, no API) with the policy the
 * shared peer kit (`shared/bench/`) expects, so its load generators can measure it side by side
 * with dnsmasq and Squid. Also usable in-process via the exported functions.
 *
 * ```
 * npm run build
 * # DNS (peer: dnsmasq): NSD upstream from `dns/serve.sh start all`, the kit's 10,000-name deny list
 * node dist/test/bench/dataplane-proxies.js dns --bind 127.0.0.1:5400 --upstream 127.0.0.1:5300 \
 *   --denylist "$BENCH_DIR/dns/gen/denylist.txt" &
 * dns/run.sh dnsmasq-nocache dnsmasq-nocache-deny neuwerk=127.0.0.1:5400@$!
 *
 * # Forward proxy (peer: Squid): origins and dnsmasq from `proxy/proxyctl.sh start all`
 * node dist/test/bench/dataplane-proxies.js proxy --bind 127.0.0.1:13130 --upstream 127.0.0.1:15353 \
 *   [--deny-file "$BENCH_DIR/proxy/deny-10k.txt"] &
 * proxy/bench.mjs --proxy 127.0.0.1:13130 --mode connect-rate --concurrency 16 --duration 5 --pids proxy=$!
 * ```
 *
 * Each process prints one JSON line (`{"pid":…, "dns":…, "proxy":…}`) once it listens, and stops
 * cleanly on SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/config/address.js';
import { Dataplane, type DataplaneAddresses } from '../../src/dataplane/dataplane.js';
import { compilePolicy, parsePolicy, type CompiledPolicy, type PolicyDocument, type PolicyRule } from '../../src/policy/index.js';

/** Every client address: the bench kit's load generators run on 127.0.0.1. */
const EVERY_SOURCE = { cidrs: ['0.0.0.0/0', '::/0'] };
/** Ports of the kit's origin (HTTP, echo, byte source), as in its squid.conf. */
export const PROXY_KIT_PORTS = '18080-18082';
/** Names the kit's Squid allows. */
export const PROXY_KIT_ALLOWED_HOSTS = ['origin-a.bench.test', 'origin-b.bench.test', 'origin-c.bench.test'];

/** A standalone dataplane and how to stop it. */
export interface RunningBenchProxy {
  readonly dataplane: Dataplane;
  readonly addresses: DataplaneAddresses;
  stop(): Promise<void>;
}

/**
 * The DNS kit's policy: deny each listed name and its subdomains (NXDOMAIN), allow every other
 * name, for every client. One deny rule holds the whole list in the suffix table.
 */
export function dnsKitPolicy(denylist: readonly string[]): CompiledPolicy {
  const rules: PolicyRule[] = [];
  if (denylist.length > 0) rules.push({ id: 'denylist', action: 'deny', match: { dns_hostname: { suffix: [...denylist] } } });
  rules.push({ id: 'allow-rest', action: 'allow', match: { dns_hostname: { regex: '.*' } } });
  return compilePolicy(parsePolicy({ default_policy: 'deny', source_groups: [{ id: 'bench', sources: EVERY_SOURCE, rules }] }));
}

/**
 * The proxy kit's policy document, equal to its squid.conf: allow the origin names on the origin
 * ports, 403 for everything else; with `denyEntries` (Squid `dstdomain` syntax: `.example.com` is
 * the domain and its subdomains, `example.com` only that name) checked first. The rule also names
 * 127.0.0.0/8, because the origins are on loopback, which the proxy's SSRF guard dials only for a
 * rule that names the address.
 */
export function proxyKitPolicyDocument(denyEntries: readonly string[] = []): PolicyDocument {
  const exact: string[] = [];
  const suffix: string[] = [];
  for (const entry of denyEntries) {
    const name = entry.trim().toLowerCase();
    if (name === '' || name.startsWith('#')) continue;
    if (name.startsWith('.')) suffix.push(name.slice(1));
    else exact.push(name);
  }
  const rules: PolicyRule[] = [];
  if (exact.length + suffix.length > 0) {
    rules.push({ id: 'deny-list', action: 'deny', match: { dns_hostname: { ...(exact.length > 0 ? { exact } : {}), ...(suffix.length > 0 ? { suffix } : {}) } } });
  }
  rules.push({ id: 'origins', action: 'allow', match: { dns_hostname: { exact: PROXY_KIT_ALLOWED_HOSTS }, dst_cidrs: ['127.0.0.0/8'], dst_ports: [PROXY_KIT_PORTS] } });
  return { default_policy: 'deny', source_groups: [{ id: 'bench', sources: EVERY_SOURCE, rules }] } as PolicyDocument;
}

/** `proxyKitPolicyDocument`, compiled. */
export function proxyKitPolicy(denyEntries: readonly string[] = []): CompiledPolicy {
  return compilePolicy(parsePolicy(proxyKitPolicyDocument(denyEntries)));
}

/** Starts the DNS proxy alone on `bind`, forwarding to `upstreams`, enforcing `policy`. */
export async function startBenchDnsProxy(options: { bind: HostPort; upstreams: readonly HostPort[]; policy: CompiledPolicy }): Promise<RunningBenchProxy> {
  const dataplane = new Dataplane({
    enforcement: { active: options.policy },
    logger: pino({ level: 'warn' }),
    dns: { bind: options.bind, upstreams: options.upstreams },
    proxy: null,
    ownAddresses: [],
  });
  const addresses = await dataplane.start();
  return { dataplane, addresses, stop: () => dataplane.stop() };
}

/** Starts the forward proxy alone on `bind`, resolving through `upstreams`, enforcing `policy`. */
export async function startBenchForwardProxy(options: { bind: HostPort; upstreams: readonly HostPort[]; policy: CompiledPolicy }): Promise<RunningBenchProxy> {
  const dataplane = new Dataplane({
    enforcement: { active: options.policy },
    logger: pino({ level: 'warn' }),
    dns: null,
    proxy: { bind: options.bind },
    resolverUpstreams: options.upstreams,
    ownAddresses: [],
  });
  const addresses = await dataplane.start();
  return { dataplane, addresses, stop: () => dataplane.stop() };
}

function readList(path: string | undefined): string[] {
  if (path === undefined) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? argv[at + 1] : undefined;
}

function address(text: string | undefined, what: string): HostPort {
  const parsed = text === undefined ? { error: 'missing' } : parseHostPort(text);
  if ('error' in parsed) {
    console.error(`--${what}: ${parsed.error}\nusage: dataplane-proxies.js dns|proxy --bind host:port --upstream host:port [--denylist file | --deny-file file]`);
    process.exit(2);
  }
  return parsed;
}

async function main(argv: readonly string[]): Promise<void> {
  const mode = argv[0];
  const bind = address(flag(argv, 'bind'), 'bind');
  const upstream = address(flag(argv, 'upstream'), 'upstream');
  let running: RunningBenchProxy;
  if (mode === 'dns') {
    running = await startBenchDnsProxy({ bind, upstreams: [upstream], policy: dnsKitPolicy(readList(flag(argv, 'denylist'))) });
  } else if (mode === 'proxy') {
    running = await startBenchForwardProxy({ bind, upstreams: [upstream], policy: proxyKitPolicy(readList(flag(argv, 'deny-file'))) });
  } else {
    console.error('usage: dataplane-proxies.js dns|proxy --bind host:port --upstream host:port [--denylist file | --deny-file file]');
    process.exit(2);
  }
  const { dns, proxy } = running.addresses;
  console.log(JSON.stringify({ pid: process.pid, dns: dns === null ? null : formatHostPort(dns.udp), proxy: proxy === null ? null : formatHostPort(proxy) }));
  const stop = (): void => {
    void running.stop().then(() => {
      console.error(JSON.stringify(running.dataplane.statsView()));
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
