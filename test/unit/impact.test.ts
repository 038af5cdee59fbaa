/**
 * Impact notices, the pure parts: the module links read from JavaScript and TypeScript, how a relative
 * specifier names repository files, what a landed change and a run's work share, and how a notice is
 * checked and kept on the receiving side.
 */
import { describe, expect, it } from 'vitest';
import { impactOf, moduleLinks, resolveCandidates, stripComments } from '../../lib/impact.ts';
import { HISTORY_CAPS, type ImpactNotice } from '../../workflows/definitions.ts';
import { invalidImpactNotice, keepNotice, noticeEvent, noticeFeedback } from '../../workflows/impact.ts';

describe('module links', () => {
  it('reads named, default, namespace, type, re-export, side-effect, dynamic and require links', () => {
    const source = [
      "import def, { a, b as c, type T } from './one.js';",
      "import * as ns from '../two';",
      "import type { Shape } from './shapes.ts';",
      "export { x, y as z } from './three.js';",
      "export * from './four.js';",
      "import './polyfill.js';",
      "const lazy = await import('./five.js');",
      "const old = require('./six.cjs');",
      "import { readFile } from 'node:fs/promises';",
      'import {',
      '  multi,',
      '  line,',
      "} from './seven.js';",
    ].join('\n');
    const links = Object.fromEntries(moduleLinks(source).map((link) => [link.specifier, link.names.sort()]));
    expect(links).toEqual({
      './one.js': ['T', 'a', 'b', 'default'],
      '../two': ['*'],
      './shapes.ts': ['Shape'],
      './three.js': ['x', 'y'],
      './four.js': ['*'],
      './polyfill.js': ['*'],
      './five.js': ['*'],
      './six.cjs': ['*'],
      'node:fs/promises': ['readFile'],
      './seven.js': ['line', 'multi'],
    });
  });

  it('skips links inside comments, and keeps strings and regular expressions that look like comments', () => {
    const source = [
      "// import { gone } from './commented.js';",
      "/* import { block } from './block.js'; */",
      "const url = 'http://example.invalid/x'; import { kept } from './kept.js';",
      "const re = /\\/\\/ not a comment/; import { after } from './after.js';",
      'const ratio = total / count; // import { tail } from "./tail.js"',
    ].join('\n');
    expect(stripComments(source)).toContain("'http://example.invalid/x'");
    expect(moduleLinks(source).map((link) => link.specifier)).toEqual(['./kept.js', './after.js']);
  });
});

describe('resolving a specifier', () => {
  it('names the file as written, with extensions, as a folder index, and a .ts written as .js', () => {
    expect(resolveCandidates('src/cli/main.ts', '../util.js')).toEqual(expect.arrayContaining(['src/util.js', 'src/util.ts', 'src/util.tsx']));
    expect(resolveCandidates('src/a.js', './lib')).toEqual(expect.arrayContaining(['src/lib', 'src/lib.js', 'src/lib/index.js', 'src/lib/index.ts']));
  });

  it('follows no package name and nothing outside the repository', () => {
    expect(resolveCandidates('src/a.js', 'lodash')).toEqual([]);
    expect(resolveCandidates('src/a.js', 'node:path')).toEqual([]);
    expect(resolveCandidates('a.js', '../outside.js')).toEqual([]);
  });
});

describe('what a landed change and a run share', () => {
  const side = (files: Record<string, string>) => ({ files: Object.keys(files), sources: new Map(Object.entries(files).filter(([file]) => /\.[jt]s$/.test(file))) });

  it('shares the files both touched', () => {
    const impact = impactOf(side({ 'src/index.js': '', 'test/reverse.test.js': '' }), side({ 'src/index.js': '', 'README.md': '' }));
    expect(impact).toEqual({ files: ['src/index.js'], symbols: [] });
  });

  it("links a run's file that imports from a file the landed change changed, with the names it takes", () => {
    const landed = side({ 'src/index.js': 'export function capitalize() {}' });
    const run = side({ 'src/loud.js': "import { capitalize, wordCount } from './index.js';\nexport const loud = 1;", 'test/loud.test.js': "import { loud } from '../src/loud.js';" });
    expect(impactOf(landed, run)).toEqual({
      files: [],
      symbols: [{ file: 'src/loud.js', from: 'src/index.js', names: ['capitalize', 'wordCount'], changedBy: 'landed' }],
    });
  });

  it('links a landed file that imports from a file the run changes', () => {
    const landed = side({ 'src/report.ts': "import { total } from './sum.js';" });
    const run = side({ 'src/sum.ts': 'export const total = 2;' });
    expect(impactOf(landed, run).symbols).toEqual([{ file: 'src/report.ts', from: 'src/sum.ts', names: ['total'], changedBy: 'run' }]);
  });

  it('finds nothing between work on unrelated files', () => {
    const landed = side({ 'src/index.js': 'export const a = 1;' });
    const run = side({ 'docs/notes.md': '', 'src/other.js': "import { readFile } from 'node:fs';" });
    expect(impactOf(landed, run)).toEqual({ files: [], symbols: [] });
  });
});

describe('an impact notice on the receiving side', () => {
  const notice: ImpactNotice = {
    issue: 'T-first', title: 'Add reverse', workflowId: 'cadenza-p-T-first', commit: 'a'.repeat(40), targetBranch: 'main',
    files: ['src/index.js'], filesTotal: 1,
  };

  it('accepts a well-formed notice and refuses malformed ones with what is wrong', () => {
    expect(invalidImpactNotice(notice)).toBeNull();
    expect(invalidImpactNotice('landed')).toMatch(/^impactNotice expects/);
    expect(invalidImpactNotice({ ...notice, commit: 'HEAD' })).toMatch(/"commit" must be a commit id/);
    expect(invalidImpactNotice({ ...notice, files: 'src/index.js' })).toMatch(/"files" must be a list/);
    expect(invalidImpactNotice({ ...notice, symbols: [{ file: 'a.js' }] })).toMatch(/symbols\[0\] needs/);
    expect(invalidImpactNotice({ ...notice, files: [] })).toMatch(/names no file and no symbol/);
  });

  it('keeps a notice small, with its totals', () => {
    const files = Array.from({ length: 500 }, (_, i) => `src/f${i}.js`);
    const symbols = Array.from({ length: 100 }, (_, i) => ({ file: `a${i}.js`, from: 'b.js', names: Array.from({ length: 100 }, (_, j) => `n${j}`), changedBy: 'landed' as const }));
    const kept = keepNotice({ ...notice, files, symbols }, 3);
    expect(kept.files).toHaveLength(HISTORY_CAPS.noticeFiles);
    expect(kept.filesTotal).toBe(500);
    expect(kept.symbols).toHaveLength(HISTORY_CAPS.noticeSymbols);
    expect(kept.symbols![0]!.names).toHaveLength(HISTORY_CAPS.noticeNames);
    expect(kept.symbolsTotal).toBe(100);
    expect(kept.receivedInRound).toBe(3);
  });

  it("names the landed change and the files in the workpad's line and in the agent's feedback", () => {
    expect(noticeEvent(notice)).toContain('T-first landed as `aaaaaaaaaaaa` on `main`');
    expect(noticeEvent(notice)).toContain('src/index.js');
    const feedback = noticeFeedback([{ ...notice, symbols: [{ file: 'src/loud.js', from: 'src/index.js', names: ['capitalize'], changedBy: 'landed' }] }]);
    expect(feedback).toContain('T-first ("Add reverse"), commit aaaaaaaaaaaa: files you changed too: src/index.js');
    expect(feedback).toContain('src/loud.js (yours) imports capitalize from src/index.js, which it changed');
    expect(feedback).toContain('git merge origin/main');
  });
});
