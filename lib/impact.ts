/**
 * What a landed change has to do with an open run's work: the files both touched, and, for JavaScript
 * and TypeScript, the names a file of one side imports from a file the other side changed. Pure: the
 * caller reads the files (activities/impact.ts, from the host mirror).
 *
 * The symbol side is deliberately conservative and cheap: only static module links are read (`import
 * ... from`, `export ... from`, side-effect `import '...'`, `import('...')`, `require('...')`) with a
 * relative specifier, from the touched files' own text (comments skipped). A link counts when the file
 * it points at was changed by the other side, whatever lines changed there; the names are what the
 * importer takes from it (`*` for a namespace, a side-effect import or require). Bare specifiers
 * (packages, tsconfig paths) are not followed.
 */
import path from 'node:path';

/** Files whose module links are read. */
export const MODULE_FILE = /\.(?:[cm]?[jt]s|[jt]sx)$/;

/** One static module link in a file: the specifier and the names taken from it (`*`: all of it). */
export interface ModuleLink {
  specifier: string;
  names: string[];
}

/** A file of one side that imports names from a file the other side changed. */
export interface SymbolLink {
  /** The importing file. */
  file: string;
  /** The file it imports from, changed by the other side. */
  from: string;
  names: string[];
  /** Which side changed `from`: the landed change (so `file` is the run's), or the run. */
  changedBy: 'landed' | 'run';
}

export interface ChangeSide {
  /** Paths the side touched (added, changed, deleted; both paths of a rename). */
  files: string[];
  /** The text of the side's touched module files, where read (a file left out is not linked). */
  sources: Map<string, string>;
}

export interface Impact {
  /** Files both sides touched, sorted. */
  files: string[];
  /** Module links from one side's touched files into the other side's changed files (not already in `files`). */
  symbols: SymbolLink[];
}

/**
 * `source` without its comments; strings, template literals and regular expressions are kept as they
 * are (a specifier is a string), so a `//` inside a string does not cut the line.
 */
export function stripComments(source: string): string {
  let out = '';
  let i = 0;
  // The last significant character written: tells a regular expression from a division.
  let last = '';
  const n = source.length;
  while (i < n) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < n && source[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      // Keep the line count, so nothing joins across a removed block.
      out += source.slice(i, stop).includes('\n') ? '\n' : ' ';
      i = stop;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < n && source[j] !== c) {
        if (source[j] === '\\') j++;
        else if (c !== '`' && source[j] === '\n') break;
        j++;
      }
      out += source.slice(i, j + 1);
      last = c;
      i = j + 1;
      continue;
    }
    if (c === '/' && (last === '' || '(,=:[!&|?{};+-*%<>~^'.includes(last) || /\b(?:return|typeof|case|do|else|in|of|void|yield|await)$/.test(out.slice(-16).trimEnd()))) {
      // A regular expression literal: up to the closing slash outside a character class.
      let j = i + 1;
      let inClass = false;
      while (j < n && source[j] !== '\n') {
        const d = source[j];
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      out += source.slice(i, j + 1);
      last = '/';
      i = j + 1;
      continue;
    }
    out += c;
    if (!/\s/.test(c)) last = c;
    i++;
  }
  return out;
}

const IDENT = '[A-Za-z_$][\\w$]*';
const SPEC = `(['"])([^'"\\n]+)\\`;

/** The names inside `{ a, b as c, type D }`: the exported names taken (a, b, D). */
function braceNames(body: string): string[] {
  return body
    .split(',')
    .map((part) => part.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]!.trim())
    .filter((name) => name.length > 0)
    .map((name) => name.replace(/^['"]|['"]$/g, ''));
}

/** The static module links of a JavaScript or TypeScript source (see the module comment). */
export function moduleLinks(source: string): ModuleLink[] {
  const code = stripComments(source);
  const links: ModuleLink[] = [];
  const add = (specifier: string, names: string[]) => {
    const known = links.find((link) => link.specifier === specifier);
    if (known) known.names = [...new Set([...known.names, ...names])];
    else links.push({ specifier, names: [...new Set(names)] });
  };
  // import x, { a, b as c } from '...'; import * as ns from '...'; import type { T } from '...'
  const importFrom = new RegExp(`\\bimport\\s+(?:type\\s+)?(?:(${IDENT})\\s*,?\\s*)?(\\{[^}]*\\}|\\*\\s*as\\s+${IDENT})?\\s*from\\s*${SPEC}3`, 'g');
  for (const match of code.matchAll(importFrom)) {
    const [, fallback, clause, , specifier] = match;
    const names: string[] = [];
    if (fallback && fallback !== 'type') names.push('default');
    if (clause?.startsWith('{')) names.push(...braceNames(clause.slice(1, -1)));
    else if (clause) names.push('*');
    add(specifier!, names.length ? names : ['*']);
  }
  // export { a, b as c } from '...'; export * from '...'; export * as ns from '...'
  const exportFrom = new RegExp(`\\bexport\\s+(?:type\\s+)?(\\{[^}]*\\}|\\*(?:\\s*as\\s+${IDENT})?)\\s*from\\s*${SPEC}2`, 'g');
  for (const match of code.matchAll(exportFrom)) {
    const [, clause, , specifier] = match;
    add(specifier!, clause!.startsWith('{') ? braceNames(clause!.slice(1, -1)) : ['*']);
  }
  // import '...' (side effects), import('...'), require('...')
  const whole = new RegExp(`(?:\\bimport\\s*(?=['"])|\\b(?:import|require)\\s*\\(\\s*)${SPEC}1`, 'g');
  for (const match of code.matchAll(whole)) add(match[2]!, ['*']);
  return links;
}

const EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'];
const JS_TO_TS: Record<string, string[]> = { '.js': ['.ts', '.tsx'], '.jsx': ['.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'] };

/**
 * The repository paths a relative specifier in `fromFile` may name (Node's and TypeScript's ways:
 * the path as written, with an extension, as a folder's index, `.js` written for a `.ts` file).
 * Empty for a bare specifier or one leaving the repository.
 */
export function resolveCandidates(fromFile: string, specifier: string): string[] {
  if (!specifier.startsWith('./') && !specifier.startsWith('../') && specifier !== '.' && specifier !== '..') return [];
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), specifier.split(/[?#]/)[0]!));
  if (target.startsWith('../') || target === '..' || target === '.') return [];
  const ext = path.posix.extname(target);
  const stem = target.slice(0, target.length - ext.length);
  return [...new Set([
    target,
    ...(JS_TO_TS[ext] ?? []).map((swap) => stem + swap),
    ...EXTENSIONS.map((extension) => target + extension),
    ...EXTENSIONS.map((extension) => `${target}/index${extension}`),
  ])];
}

/** Links from `importer`'s touched module files into files `changed` touched (and not `shared`). */
function linksInto(importer: ChangeSide, changed: Set<string>, shared: Set<string>, changedBy: SymbolLink['changedBy']): SymbolLink[] {
  const found: SymbolLink[] = [];
  for (const [file, source] of importer.sources) {
    for (const link of moduleLinks(source)) {
      const from = resolveCandidates(file, link.specifier).find((candidate) => changed.has(candidate));
      if (!from || from === file || shared.has(from)) continue;
      const known = found.find((entry) => entry.file === file && entry.from === from);
      if (known) known.names = [...new Set([...known.names, ...link.names])];
      else found.push({ file, from, names: link.names, changedBy });
    }
  }
  return found;
}

/** What the landed change and an open run's work have to do with each other (empty: nothing found). */
export function impactOf(landed: ChangeSide, run: ChangeSide): Impact {
  const landedFiles = new Set(landed.files);
  const runFiles = new Set(run.files);
  const files = [...runFiles].filter((file) => landedFiles.has(file)).sort();
  const shared = new Set(files);
  const symbols = [
    // The run's files use something the landed change changed ...
    ...linksInto(run, landedFiles, shared, 'landed'),
    // ... or the landed files use something the run is changing.
    ...linksInto(landed, runFiles, shared, 'run'),
  ];
  return { files, symbols };
}
