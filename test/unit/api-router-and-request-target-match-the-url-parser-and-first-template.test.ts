import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NeuwerkError } from '../../src/errors.js';
import { Router, type Method, type Route } from '../../src/api/router.js';
import { splitRequestTarget } from '../../src/api/server.js';

/** A small deterministic PRNG so a failure names a reproducible case. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const TEMPLATES: [Method, string][] = [
  ['GET', '/api/v1/keyval/:zone'],
  ['GET', '/api/v1/keyval/:zone/:key'],
  ['PUT', '/api/v1/keyval/:zone/:key'],
  ['DELETE', '/api/v1/keyval/:zone/:key'],
  ['GET', '/api/v1/keyval/special/:key'],
  ['POST', '/api/v1/auth/token-login'],
  ['GET', '/api/v1/:thing/status'],
  ['GET', '/health'],
];

/** The matching rule as DESIGN §6 states it, written the plain way: first template in table order. */
function naiveMatch(method: string, pathname: string): { path: string; params: Record<string, string> } | 'method' | 'none' {
  const parts = pathname.split('/').slice(1);
  let pathMatched = false;
  for (const [templateMethod, path] of TEMPLATES) {
    const segments = path.split('/').slice(1);
    if (segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i += 1) {
      const expected = segments[i] as string;
      const actual = parts[i] as string;
      if (!expected.startsWith(':')) ok = expected === actual;
      else if (actual === '') ok = false;
      else {
        try {
          params[expected.slice(1)] = decodeURIComponent(actual);
        } catch {
          ok = false;
        }
      }
    }
    if (!ok) continue;
    pathMatched = true;
    if (templateMethod === method) return { path, params };
  }
  return pathMatched ? 'method' : 'none';
}

describe('request targets and routes', () => {
  it('splits a target into the same path and query as the URL parser, plain or not', () => {
    const fixed = [
      '/', '/api/v1/keyval/z/k', '/api/v1/keyval/z/k?stale=true', '/api/v1/keyval/z?prefix=a%20b&limit=2', '/a/./b', '/a/../b', '/a/%2e%2E/b',
      '/a/.%2e/b', '/a/b/..', '/a/.', '//host/path', '/a b', '/a%zz/b', '/a/b?x=1#frag', '/a\\b', '/a/b?q=\'x\'', '/a?b?c=d', '/ä/ö?ü=1',
      '/a/%2F/b', '/a?x=%', '/a?x=+y', '/api/v1/keyval/z/k.with.dots', '/a/..b/c', '/a/b.?x', '/a/...', '/a/`b`', '/a/{b}', '/a|b', '/a^b',
    ];
    const random = prng(7);
    const alphabet = ['a', 'Z', '0', '/', '.', '%', '2', 'e', 'E', '?', '#', '&', '=', '+', ' ', '\\', '\'', '"', '~', '-', '_', ':', '@', 'ä', '[', '|', '\t'];
    const generated = Array.from({ length: 3000 }, () => `/${Array.from({ length: Math.floor(random() * 12) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')}`);
    for (const target of [...fixed, ...generated]) {
      let url: URL;
      try {
        url = new URL(target, 'https://neuwerk.invalid');
      } catch {
        // e.g. `//host` with a host the parser refuses: a 400 naming the target.
        assert.throws(() => splitRequestTarget(target), (err) => err instanceof NeuwerkError && err.code === 'NW_ERR_HTTP_BAD_REQUEST' && err.httpStatus === 400, JSON.stringify(target));
        continue;
      }
      const split = splitRequestTarget(target);
      assert.equal(split.pathname, url.pathname, `path of ${JSON.stringify(target)}`);
      assert.deepEqual([...split.query], [...url.searchParams], `query of ${JSON.stringify(target)}`);
    }
  });

  it('matches like the plain first-template rule: params decoded, 405 for a known path, 404 otherwise', () => {
    const router = new Router();
    for (const [method, path] of TEMPLATES) router.add({ method, path, access: 'read', summary: path, handler: () => ({ status: 200 }) } satisfies Route);
    const random = prng(11);
    const pieces = ['api', 'v1', 'keyval', 'special', 'auth', 'token-login', 'status', 'health', 'z', 'k%20x', '%zz', '', 'a%2Fb', 'x'];
    const methods: Method[] = ['GET', 'PUT', 'POST', 'DELETE'];
    const paths = ['/api/v1/keyval/special/k', '/api/v1/keyval//k', '/api/v1/keyval/%zz', '/api/v1/keyval/z/%zz', '/health', '/api/v1/auth/token-login'];
    for (let i = 0; i < 4000; i += 1) paths.push(`/${Array.from({ length: 1 + Math.floor(random() * 5) }, () => pieces[Math.floor(random() * pieces.length)]).join('/')}`);
    for (const path of paths) {
      for (const method of methods) {
        const expected = naiveMatch(method, path);
        const got = router.match(method, path);
        if (expected === 'none' || expected === 'method') {
          assert.ok(got instanceof NeuwerkError, `${method} ${path}`);
          assert.equal(got.code, expected === 'none' ? 'NW_ERR_HTTP_NOT_FOUND' : 'NW_ERR_HTTP_METHOD', `${method} ${path}`);
        } else {
          assert.ok(!(got instanceof NeuwerkError), `${method} ${path}: ${String(got)}`);
          assert.equal(got.route.path, expected.path, `${method} ${path}`);
          assert.deepEqual(got.params, expected.params, `${method} ${path}`);
        }
      }
    }
  });
});
