import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countTests, DEFAULT_PROTECTED_PATHS, isProtected, packageJsonWithScriptsOf, protectedPattern } from '../../lib/proof/integrity.ts';

describe('protected paths', () => {
  const protectedByDefault: [string, string][] = [
    ['test/app.test.ts', 'test/'],
    ['packages/api/tests/fixtures/data.json', 'tests/'],
    ['src/__tests__/button.tsx', '__tests__/'],
    ['spec/models/user_spec.rb', 'spec/'],
    ['src/math.test.js', '*.test.*'],
    ['src/math.spec.ts', '*.spec.*'],
    ['pkg/test_parser.py', 'test_*.py'],
    ['pkg/parser_test.py', '*_test.py'],
    ['conftest.py', 'conftest.py'],
    ['internal/calc/calc_test.go', '*_test.go'],
    ['app/src/test/java/com/acme/AppTest.java', 'test/'],
    ['packages/web/package.json', 'package.json'],
    ['pyproject.toml', 'pyproject.toml'],
    ['Makefile', 'Makefile'],
    ['crates/core/Cargo.toml', 'Cargo.toml'],
    ['build.gradle.kts', 'build.gradle*'],
    ['jest.config.js', 'jest.config.*'],
    ['vitest.config.mts', 'vitest.config.*'],
    ['.mocharc.yml', '.mocharc*'],
    ['.github/workflows/ci.yml', '.github/workflows/**'],
    ['.gitlab-ci.yml', '.gitlab-ci.yml'],
    ['.circleci/config.yml', '.circleci/**'],
    ['WORKFLOW.md', 'WORKFLOW.md'],
    ['./tests/test_api.py', 'tests/'],
  ];

  it.each(protectedByDefault)('%s is protected by %s', (path, pattern) => {
    expect(protectedPattern(path, DEFAULT_PROTECTED_PATHS)).toBe(pattern);
    expect(isProtected(path, DEFAULT_PROTECTED_PATHS)).toBe(true);
  });

  it.each([
    'src/index.ts', 'src/testing.ts', 'lib/contest.py', 'src/latest/x.ts', 'README.md', 'package-lock.json',
    'docs/.github/workflows/x.yml', 'src/attest.go', 'src/specification.md',
  ])('%s is not protected by default', (path) => {
    expect(protectedPattern(path, DEFAULT_PROTECTED_PATHS)).toBeNull();
  });

  it('follows the glob rules', () => {
    const cases: [string, string, boolean][] = [
      ['src/golden/**', 'src/golden/a/b.txt', true],
      ['src/golden/**', 'lib/src/golden/a.txt', false],
      ['src/golden/**', 'src/golden', false],
      ['**/fixtures/*.json', 'a/b/fixtures/x.json', true],
      ['**/fixtures/*.json', 'fixtures/x.json', true],
      ['**/fixtures/*.json', 'fixtures/deep/x.json', false],
      ['docs/*.md', 'docs/a.md', true],
      ['docs/*.md', 'docs/sub/a.md', false],
      ['/LICENSE', 'LICENSE', true],
      ['/LICENSE', 'vendor/LICENSE', false],
      ['LICENSE', 'vendor/LICENSE', true],
      ['data?.csv', 'in/data1.csv', true],
      ['data?.csv', 'in/data10.csv', false],
      ['a.b', 'axb', false],
      ['snap/', 'x/snap/y/z.snap', true],
      ['snap/', 'x/snap', false],
      ['a/**/z.txt', 'a/z.txt', true],
      ['a/**/z.txt', 'a/b/c/z.txt', true],
    ];
    for (const [pattern, path, expected] of cases) {
      expect([pattern, path, isProtected(path, [pattern])]).toEqual([pattern, path, expected]);
    }
  });

  it('an empty list protects nothing', () => {
    expect(isProtected('test/a.test.ts', [])).toBe(false);
  });
});

describe('countTests: node --test', () => {
  let dir: string;
  const run = (reporter: string): string => {
    try {
      execFileSync(process.execPath, ['--test', `--test-reporter=${reporter}`], {
        cwd: dir, encoding: 'utf8', stdio: 'pipe', env: { ...process.env, FORCE_COLOR: '1', NODE_OPTIONS: '' },
      });
    } catch (err) {
      const { stdout, stderr } = err as { stdout: string; stderr: string };
      return stdout + stderr;
    }
    throw new Error('expected the failing test to fail');
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cadenza-node-test-'));
    writeFileSync(join(dir, 'math.test.mjs'), [
      "import test from 'node:test';",
      "import assert from 'node:assert';",
      "test('adds', () => assert.equal(1 + 1, 2));",
      "test('subtracts', () => assert.equal(2 - 1, 0));",
      "test('later', { skip: true }, () => {});",
      "test('group', async (t) => { await t.test('inner', () => {}); });",
    ].join('\n'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // 5 tests: adds, subtracts, later, group and group's subtest.
  it.each(['tap', 'spec'])('%s reporter', (reporter) => {
    const output = run(reporter);
    expect(output).toContain(reporter === 'tap' ? '# tests 5' : 'ℹ tests 5');
    expect(countTests(output)).toEqual({ framework: 'node', total: 5, failed: 1, passed: 3 });
  }, 30_000);
});

describe('countTests: other runners', () => {
  it('jest', () => {
    const output = `
 FAIL  src/math.test.js
  ● math › subtracts

    expect(received).toBe(expected) // Object.is equality

 PASS  src/string.test.js

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 1 skipped, 3 passed, 5 total
Snapshots:   0 total
Time:        0.512 s, estimated 1 s
Ran all test suites.`;
    expect(countTests(output)).toEqual({ framework: 'jest', total: 5, failed: 1, passed: 3 });
  });

  it('vitest, colours and all', () => {
    const output = [
      '\x1b[31m\x1b[2m⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯[1/1]⎯\x1b[22m\x1b[39m',
      '',
      '\x1b[2m Test Files \x1b[22m \x1b[1m\x1b[31m1 failed\x1b[39m\x1b[22m\x1b[90m (1)\x1b[39m',
      '\x1b[2m      Tests \x1b[22m \x1b[1m\x1b[31m1 failed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m\x1b[1m\x1b[32m2 passed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m\x1b[33m1 skipped\x1b[39m\x1b[90m (4)\x1b[39m',
      '\x1b[2m   Start at \x1b[22m 23:45:33',
      '\x1b[2m   Duration \x1b[22m 528ms\x1b[2m (transform 36ms, setup 0ms, import 52ms, tests 13ms, environment 0ms)\x1b[22m',
    ].join('\n');
    expect(countTests(output)).toEqual({ framework: 'vitest', total: 4, failed: 1, passed: 2 });
    expect(countTests(' Test Files  3 passed (3)\n      Tests  12 passed (12)\n')).toEqual({ framework: 'vitest', total: 12, failed: 0, passed: 12 });
  });

  it('uvu (its total leaves skipped tests out)', () => {
    // `npx uvu test` (0.5.6) with one passing, one failing and one skipped test.
    const output = '\n\n  Total:     2\x1b[31m\n  Passed:    1\x1b[39m\n  Skipped:   \x1b[33m1\x1b[39m\n  Duration:  1.59ms\n\n';
    expect(countTests(output)).toEqual({ framework: 'uvu', total: 3, failed: 1, passed: 1 });
  });

  it('mocha', () => {
    const output = `
  math
    ✔ adds
    1) subtracts
    - later


  1 passing (5ms)
  1 pending
  1 failing

  1) math
       subtracts:

      AssertionError [ERR_ASSERTION]: 1 == 0
`;
    expect(countTests(output)).toEqual({ framework: 'mocha', total: 3, failed: 1, passed: 1 });
    expect(countTests('\n  7 passing (1s)\n')).toEqual({ framework: 'mocha', total: 7, failed: 0, passed: 7 });
  });

  it('pytest, verbose and quiet', () => {
    const verbose = `
FAILED test_a.py::test_sub - assert (2 - 1) == 0
ERROR test_a.py::test_err - RuntimeError: x
========== 1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error in 0.05s ==========`;
    expect(countTests(verbose)).toEqual({ framework: 'pytest', total: 5, failed: 2, passed: 1 });
    expect(countTests('....                                                   [100%]\n4 passed, 2 warnings in 0.03s\n'))
      .toEqual({ framework: 'pytest', total: 4, failed: 0, passed: 4 });
    expect(countTests('============================ no tests ran in 0.01s =============================\n'))
      .toEqual({ framework: 'pytest', total: 0, failed: 0, passed: 0 });
  });

  it('go test counts leaf tests', () => {
    const output = `=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
    calc_test.go:4: 2-1 should be 0
--- FAIL: TestSub (0.00s)
=== RUN   TestSkip
    calc_test.go:5: later
--- SKIP: TestSkip (0.00s)
=== RUN   TestGroup
=== RUN   TestGroup/ok
=== RUN   TestGroup/bad
    calc_test.go:8: bad
--- FAIL: TestGroup (0.00s)
    --- PASS: TestGroup/ok (0.00s)
    --- FAIL: TestGroup/bad (0.00s)
FAIL
FAIL	example.com/calc	0.002s
FAIL`;
    expect(countTests(output)).toEqual({ framework: 'go', total: 5, failed: 2, passed: 2 });
  });

  it('cargo test sums the result of each test binary', () => {
    const output = `     Running unittests src/lib.rs (target/debug/deps/rs-0e4c0a5f3d6b2a1c)

running 3 tests
test tests::later ... ignored
test tests::adds ... ok
test tests::subtracts ... FAILED

failures:
    tests::subtracts

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.12s

error: test failed, to rerun pass \`--lib\`
     Running tests/it.rs (target/debug/deps/it-f79ac83c53990106)

running 1 test
test it_works ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests rs

running 1 test
test src/lib.rs - add (line 1) ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
`;
    expect(countTests(output)).toEqual({ framework: 'cargo', total: 5, failed: 1, passed: 3 });
  });

  it('adds up the summaries of several runs and frameworks', () => {
    const twoJest = 'Tests:       2 passed, 2 total\n...\nTests:       1 failed, 1 passed, 2 total\n';
    expect(countTests(twoJest)).toEqual({ framework: 'jest', total: 4, failed: 1, passed: 3 });
    expect(countTests(`${twoJest}\n=== 3 passed in 0.20s ===\r\n`)).toEqual({ framework: 'jest+pytest', total: 7, failed: 1, passed: 6 });
  });

  it('null when no summary is recognised', () => {
    expect(countTests('')).toBeNull();
    expect(countTests('npm ERR! missing script: test\n')).toBeNull();
    expect(countTests('ok  \texample.com/calc\t0.002s\n')).toBeNull();
  });
});

describe('packageJsonWithScriptsOf', () => {
  const base = JSON.stringify({ name: 'app', scripts: { test: 'vitest run' } }, null, 2);

  it('puts the base scripts in place of the head ones, keeping the rest and the layout', () => {
    const head = '{\n    "name": "app",\n    "scripts": { "test": "echo ok" },\n    "dependencies": { "left-pad": "1.0.0" }\n}\n';
    const merged = packageJsonWithScriptsOf(head, base)!;
    expect(JSON.parse(merged)).toEqual({ name: 'app', scripts: { test: 'vitest run' }, dependencies: { 'left-pad': '1.0.0' } });
    expect(Object.keys(JSON.parse(merged) as object)).toEqual(['name', 'scripts', 'dependencies']);
    expect(merged).toMatch(/^\{\n {4}"name"/);
    expect(merged.endsWith('}\n')).toBe(true);
  });

  it('adds the base scripts when the head removed them, and removes them when the base had none', () => {
    expect(JSON.parse(packageJsonWithScriptsOf('{"name":"app"}', base)!)).toEqual({ name: 'app', scripts: { test: 'vitest run' } });
    expect(JSON.parse(packageJsonWithScriptsOf(base, '{"name":"app"}')!)).toEqual({ name: 'app' });
  });

  it('returns the head unchanged when the scripts are the same', () => {
    const head = '{ "name": "app2", "scripts": { "test": "vitest run" } }';
    expect(packageJsonWithScriptsOf(head, base)).toBe(head);
  });

  it('keeps a "__proto__" key as data', () => {
    const merged = packageJsonWithScriptsOf('{"__proto__": {"x": 1}, "scripts": {}}', base)!;
    expect(merged).toContain('"__proto__"');
    expect(JSON.parse(merged)).toMatchObject({ scripts: { test: 'vitest run' } });
  });

  it.each([
    ['a truncated head', '{"name": "app",', base],
    ['a base that is not JSON', base, 'not json'],
    ['a head that is a list', '[1]', base],
    ['a base that is null', base, 'null'],
  ])('null for %s', (_, head, b) => {
    expect(packageJsonWithScriptsOf(head, b)).toBeNull();
  });
});
