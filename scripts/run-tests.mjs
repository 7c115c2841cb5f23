#!/usr/bin/env node
// Runs the compiled test files with node:test. Usage: run-tests.mjs [unit|e2e|sim ...]
// Without arguments runs every suite. Node 20's runner takes explicit file lists, so we collect them.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = process.argv.slice(2);
const roots = (suites.length > 0 ? suites : ['unit', 'sim', 'e2e']).map((s) => join('dist', 'test', s));

function collect(dir) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = roots.flatMap(collect);
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')} (did the build run?)`);
  process.exit(1);
}
const concurrency = process.env.NEUWERK_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
