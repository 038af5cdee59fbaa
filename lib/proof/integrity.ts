/**
 * Checks that keep proof of work honest: which changed files could weaken the tests (protected
 * paths), how many tests a runner reported, and a package.json that runs the base revision's scripts.
 * Pure: no I/O, so activities and tests can use it alike.
 */

/**
 * Gitignore-like globs: `**` spans folders, `*` and `?` stay within one path segment, a pattern
 * without `/` matches the base name at any depth, and a trailing `/` matches everything in that folder.
 */
export const DEFAULT_PROTECTED_PATHS: readonly string[] = [
  // Test folders (JS/TS, Python, Rust, Ruby; Java/Kotlin src/test/ is a test/ folder too).
  'test/', 'tests/', '__tests__/', 'spec/',
  // Test files.
  '*.test.*', '*.spec.*', 'test_*.py', '*_test.py', 'conftest.py', '*_test.go', '*_spec.rb',
  // Manifests whose scripts or test configuration decide what a test command runs.
  'package.json', 'pyproject.toml', 'setup.cfg', 'tox.ini', 'pytest.ini', 'Makefile', 'Cargo.toml', 'pom.xml',
  'build.gradle*', 'jest.config.*', 'vitest.config.*', '.mocharc*',
  // CI.
  '.github/workflows/**', '.gitlab-ci.yml', '.circleci/**',
  'WORKFLOW.md',
];

const compiled = new Map<string, RegExp>();

function globToRegExp(pattern: string): RegExp {
  let glob = pattern.startsWith('/') ? pattern.slice(1) : pattern;
  const folder = glob.endsWith('/');
  if (folder) glob = glob.slice(0, -1);
  const anchored = pattern.startsWith('/') || glob.includes('/');
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const slashAfter = glob[i + 2] === '/';
      const atSegmentStart = i === 0 || glob[i - 1] === '/';
      if (atSegmentStart && slashAfter) {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (c === '*') {
      source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else {
      source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${anchored ? '' : '(?:.*/)?'}${source}${folder ? '/.+' : ''}$`);
}

function matches(path: string, pattern: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = globToRegExp(pattern);
    compiled.set(pattern, re);
  }
  return re.test(path.replace(/^(?:\.\/)+/, ''));
}

/** The first pattern that matches `path` (relative to the repository root, `/`-separated), or null. */
export function protectedPattern(path: string, patterns: readonly string[]): string | null {
  return patterns.find((p) => matches(path, p)) ?? null;
}

export function isProtected(path: string, patterns: readonly string[]): boolean {
  return protectedPattern(path, patterns) !== null;
}

export interface TestCount {
  /** `+`-joined when the output held summaries of several frameworks. */
  framework: string;
  /** Every test the runner counted, skipped ones included. */
  total: number;
  /** Errors included. */
  failed: number;
  passed: number;
}

type Count = Omit<TestCount, 'framework'>;
type Parser = (lines: string[]) => Count | null;

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/** Adds `name count` pairs, such as `1 failed, 3 passed`, into a map. */
function tally(parts: string, separator: RegExp): Map<string, number> {
  const counts = new Map<string, number>();
  for (const part of parts.split(separator)) {
    const m = /^\s*(\d+) ([a-z][a-z ]*?)\s*$/i.exec(part);
    if (m) counts.set(m[2]!.toLowerCase(), (counts.get(m[2]!.toLowerCase()) ?? 0) + Number(m[1]));
  }
  return counts;
}

function sum(counts: Count[]): Count | null {
  if (counts.length === 0) return null;
  return counts.reduce((a, b) => ({ total: a.total + b.total, failed: a.failed + b.failed, passed: a.passed + b.passed }));
}

/** node --test, TAP (`# tests 4`) and spec (`ℹ tests 4`) reporters. */
const nodeTest: Parser = (lines) => {
  const fields = new Map<string, number>();
  for (const line of lines) {
    const m = /^(?:#|ℹ) (tests|pass|fail|cancelled) (\d+)$/.exec(line.trim());
    if (m) fields.set(m[1]!, (fields.get(m[1]!) ?? 0) + Number(m[2]));
  }
  if (!fields.has('tests')) return null;
  const n = (name: string): number => fields.get(name) ?? 0;
  return { total: n('tests'), failed: n('fail') + n('cancelled'), passed: n('pass') };
};

/** uvu: `Total:     2`, `Passed:    1`, `Skipped:   1` on consecutive lines; its total leaves the skipped out. */
const uvu: Parser = (lines) => sum(lines.flatMap((line, i) => {
  const total = /^\s*Total:\s+(\d+)\s*$/.exec(line);
  const passed = /^\s*Passed:\s+(\d+)\s*$/.exec(lines[i + 1] ?? '');
  const skipped = /^\s*Skipped:\s+(\d+)\s*$/.exec(lines[i + 2] ?? '');
  if (!total || !passed || !skipped) return [];
  return [{ total: Number(total[1]) + Number(skipped[1]), passed: Number(passed[1]), failed: Number(total[1]) - Number(passed[1]) }];
}));

/** `Tests:       1 failed, 1 skipped, 3 passed, 5 total` */
const jest: Parser = (lines) => sum(lines.flatMap((l) => {
  const m = /^\s*Tests:\s+(.*\d+ total)\s*$/.exec(l);
  if (!m) return [];
  const c = tally(m[1]!, /,/);
  return [{ total: c.get('total') ?? 0, failed: c.get('failed') ?? 0, passed: c.get('passed') ?? 0 }];
}));

/** `Tests  1 failed | 2 passed | 1 skipped (4)` */
const vitest: Parser = (lines) => sum(lines.flatMap((l) => {
  const m = /^\s*Tests\s+(\d+ [a-z]+(?: \| \d+ [a-z]+)*) \((\d+)\)\s*$/i.exec(l);
  if (!m) return [];
  const c = tally(m[1]!, /\|/);
  return [{ total: Number(m[2]), failed: c.get('failed') ?? 0, passed: c.get('passed') ?? 0 }];
}));

/** `3 passing (12ms)`, then `1 pending` and `1 failing` when there are any. */
const mocha: Parser = (lines) => {
  const counts: Count[] = [];
  for (const line of lines) {
    const m = /^\s*(\d+) (passing|pending|failing)(?: \(\d+(?:\.\d+)?(?:ms|s|m|h)\))?\s*$/.exec(line);
    if (!m) continue;
    const n = Number(m[1]);
    if (m[2] === 'passing') counts.push({ total: n, failed: 0, passed: n });
    else if (counts.length > 0) {
      const last = counts[counts.length - 1]!;
      last.total += n;
      if (m[2] === 'failing') last.failed += n;
    }
  }
  return sum(counts);
};

/** `=== 1 failed, 3 passed, 1 skipped, 1 error in 0.12s ===`, or the same without `=` under -q. */
const pytest: Parser = (lines) => sum(lines.flatMap((l) => {
  const m = /^=*\s*(no tests ran|\d+ [a-z]+(?:, \d+ [a-z]+)*) in \d+(?:\.\d+)?\s*s(?:econds)?\b.*?=*$/.exec(l.trim());
  if (!m) return [];
  const c = tally(m[1]!, /,/);
  const n = (...names: string[]): number => names.reduce((a, name) => a + (c.get(name) ?? 0), 0);
  const failed = n('failed', 'error', 'errors');
  const passed = n('passed', 'xpassed');
  return [{ total: failed + passed + n('skipped', 'xfailed'), failed, passed }];
}));

/** `--- PASS: TestX (0.00s)` per test; a test with subtests counts through its subtests only. */
const goTest: Parser = (lines) => {
  const results = lines.flatMap((l) => {
    const m = /^\s*--- (PASS|FAIL|SKIP): (\S+) \(/.exec(l);
    return m ? [{ outcome: m[1]!, name: m[2]! }] : [];
  });
  if (results.length === 0) return null;
  const parents = new Set<string>();
  for (const { name } of results) {
    for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) parents.add(name.slice(0, i));
  }
  const leaves = results.filter((r) => !parents.has(r.name));
  const count = (outcome: string): number => leaves.filter((r) => r.outcome === outcome).length;
  return { total: leaves.length, failed: count('FAIL'), passed: count('PASS') };
};

/** `test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; ...`, once per test binary. */
const cargo: Parser = (lines) => sum(lines.flatMap((l) => {
  const m = /^\s*test result: \w+\. (.*)$/.exec(l);
  if (!m) return [];
  const c = tally(m[1]!.split(/;\s*finished/)[0]!, /;/);
  const [passed, failed] = [c.get('passed') ?? 0, c.get('failed') ?? 0];
  return [{ total: passed + failed + (c.get('ignored') ?? 0), failed, passed }];
}));

const PARSERS: [string, Parser][] = [
  ['node', nodeTest], ['jest', jest], ['vitest', vitest], ['mocha', mocha], ['uvu', uvu], ['pytest', pytest], ['go', goTest], ['cargo', cargo],
];

/**
 * The test counts in a runner's summary (several summaries of a framework are added up), or null
 * when no known summary is found. `go test` without -v lists failed tests only.
 */
export function countTests(output: string): TestCount | null {
  const lines = output.replace(ANSI, '').split(/\r\n|\r|\n/);
  const found = PARSERS.flatMap(([framework, parse]) => {
    const count = parse(lines);
    return count ? [{ framework, ...count }] : [];
  });
  const total = sum(found);
  return total && { framework: found.map((f) => f.framework).join('+'), ...total };
}

function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

/**
 * The head package.json with the base's `scripts` (none when the base had none), so the base's test
 * commands run against the new code. Unchanged text when the scripts are equal; null when either is
 * not a JSON object.
 */
export function packageJsonWithScriptsOf(head: string, base: string): string | null {
  const headJson = jsonObject(head);
  const baseJson = jsonObject(base);
  if (!headJson || !baseJson) return null;
  if (JSON.stringify(headJson.scripts) === JSON.stringify(baseJson.scripts)) return head;
  const baseHasScripts = Object.hasOwn(baseJson, 'scripts');
  const merged = Object.fromEntries(Object.entries(headJson).filter(([key]) => key !== 'scripts' || baseHasScripts));
  if (baseHasScripts) merged.scripts = baseJson.scripts;
  const indent = /^\{\r?\n([ \t]+)"/.exec(head)?.[1] ?? 2;
  return JSON.stringify(merged, null, indent) + (/\n\s*$/.test(head) ? '\n' : '');
}
