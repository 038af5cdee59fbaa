/**
 * The reviewer's side of the proof: its read-only tools (over Cadenza's own mirror, at the exact
 * commit under review; nothing of the agent's sandbox), the checks on its answer, and how its verdict
 * and comments read in the walkthrough, the proof summary and the agent's next round.
 */
import type OpenAI from 'openai';
import { git, type RepoMirror } from './git.ts';
import type { ReviewComment, ReviewResult } from '../workflows/definitions.ts';

type FunctionTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

const OUTPUT_LIMIT = 32 * 1024;
const LIST_LIMIT = 500;
const SEARCH_LIMIT = 200;
/** Kept in history per review; the walkthrough has them all. */
export const COMMENTS_IN_HISTORY = 50;
const COMMENT_CHARS = 1000;
const SUMMARY_CHARS = 2000;

const tool = (name: string, description: string, properties: Record<string, unknown>, required: string[]): FunctionTool => ({
  type: 'function',
  function: { name, description, parameters: { type: 'object', properties, required, additionalProperties: false } },
});

export const REVIEW_TOOLS: FunctionTool[] = [
  tool('read_file', 'Read a file of the commit under review, with line numbers (the numbers line comments refer to).', {
    path: { type: 'string' },
    start_line: { type: 'integer' },
    end_line: { type: 'integer' },
  }, ['path']),
  tool('list_files', 'List the files of the commit under review, under a folder (default: all).', { path: { type: 'string' } }, []),
  tool('search_files', 'Search the files of the commit under review for a regular expression; returns file:line:text.', {
    pattern: { type: 'string' },
    path: { type: 'string' },
  }, ['pattern']),
  tool('submit_review', 'Give your verdict, once: "approve" or "request_changes", a summary, and line comments on the new version of the files.', {
    verdict: { type: 'string', enum: ['approve', 'request_changes'] },
    summary: { type: 'string' },
    comments: {
      type: 'array',
      items: {
        type: 'object',
        properties: { file: { type: 'string' }, line: { type: 'integer' }, text: { type: 'string' } },
        required: ['file', 'line', 'text'],
        additionalProperties: false,
      },
    },
  }, ['verdict', 'summary']),
];

/** A tool argument or answer the reviewer must fix: told to it, never a failure of the session. */
export class ReviewToolError extends Error {}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A repository path: relative, no `..`, nothing git would read as an option. */
function repoPath(value: unknown, key: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') throw new ReviewToolError(`argument "${key}" must be a string`);
  const clean = value.trim().replace(/^\.\/+/, '').replace(/\/+$/, '');
  if (clean.startsWith('/') || clean.startsWith('-') || clean.split('/').includes('..')) throw new ReviewToolError(`${key} must be a path inside the repository, got ${JSON.stringify(value)}`);
  return clean === '.' ? '' : clean;
}

function cap(text: string): string {
  return text.length > OUTPUT_LIMIT ? `${text.slice(0, OUTPUT_LIMIT)}\n...(cut: ${text.length - OUTPUT_LIMIT} more characters)` : text;
}

export function parseArguments(name: string, raw: string): Record<string, unknown> {
  try {
    const args: unknown = raw.trim() ? JSON.parse(raw) : {};
    if (isObject(args)) return args;
  } catch {
    // answered below
  }
  throw new ReviewToolError(`the arguments of ${name} must be a JSON object; got ${JSON.stringify(raw.slice(0, 200))}`);
}

/** The commit's files, read by Cadenza's git with no configuration from the repository. */
export async function runReviewTool(mirror: RepoMirror, commit: string, name: string, args: Record<string, unknown>): Promise<string> {
  if (name === 'read_file') {
    const file = repoPath(args.path, 'path');
    const text = await mirror.show(commit, file);
    if (text === null) throw new ReviewToolError(`${file} is not a file of commit ${commit.slice(0, 12)}`);
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const start = Math.max(1, typeof args.start_line === 'number' ? Math.floor(args.start_line) : 1);
    const end = Math.min(lines.length, typeof args.end_line === 'number' ? Math.floor(args.end_line) : lines.length);
    return cap(lines.slice(start - 1, end).map((line, i) => `${start + i}: ${line}`).join('\n') || `(${file} has no lines there; it has ${lines.length})`);
  }
  if (name === 'list_files') {
    const folder = repoPath(args.path, 'path', '');
    const out = await git(mirror.dir, ['ls-tree', '-r', '--name-only', '--full-tree', commit, '--', ...(folder ? [folder] : [])], { hermetic: true });
    const files = out.split('\n').filter(Boolean);
    return files.length ? `${files.slice(0, LIST_LIMIT).join('\n')}${files.length > LIST_LIMIT ? `\n...(${files.length - LIST_LIMIT} more)` : ''}` : `(no files under ${folder || 'the root'})`;
  }
  if (name === 'search_files') {
    if (typeof args.pattern !== 'string' || !args.pattern) throw new ReviewToolError('argument "pattern" must be a non-empty string');
    const folder = repoPath(args.path, 'path', '');
    const out = await git(mirror.dir, ['grep', '-n', '-I', '-E', '--no-color', '-e', args.pattern, commit, '--', ...(folder ? [folder] : [])], { hermetic: true, allowFail: true });
    // git grep on a commit prefixes each line with "<commit>:".
    const lines = out.split('\n').filter(Boolean).map((line) => (line.startsWith(`${commit}:`) ? line.slice(commit.length + 1) : line));
    return lines.length ? cap(`${lines.slice(0, SEARCH_LIMIT).join('\n')}${lines.length > SEARCH_LIMIT ? `\n...(${lines.length - SEARCH_LIMIT} more)` : ''}`) : 'no matches';
  }
  throw new ReviewToolError(`unknown tool ${name}; the reviewer's tools are ${REVIEW_TOOLS.map((t) => t.function.name).join(', ')} (read-only)`);
}

export interface SubmittedReview {
  verdict: 'approve' | 'request_changes';
  summary: string;
  comments: ReviewComment[];
}

/** Checks a submit_review answer: each comment names a file of the commit and a line it has. */
export async function parseSubmission(mirror: RepoMirror, commit: string, args: Record<string, unknown>): Promise<SubmittedReview> {
  const { verdict, summary } = args;
  if (verdict !== 'approve' && verdict !== 'request_changes') throw new ReviewToolError(`"verdict" must be "approve" or "request_changes", got ${JSON.stringify(verdict)}`);
  if (typeof summary !== 'string') throw new ReviewToolError('"summary" must be a string');
  const raw = args.comments ?? [];
  if (!Array.isArray(raw)) throw new ReviewToolError('"comments" must be a list of { file, line, text }');
  const lineCounts = new Map<string, number | null>();
  const comments: ReviewComment[] = [];
  for (const [i, item] of raw.entries()) {
    const at = `comments[${i}]`;
    if (!isObject(item)) throw new ReviewToolError(`${at} must be an object { file, line, text }`);
    const file = repoPath(item.file, `${at}.file`);
    if (typeof item.line !== 'number' || !Number.isInteger(item.line) || item.line < 1) throw new ReviewToolError(`${at}.line must be a line number (an integer >= 1)`);
    if (typeof item.text !== 'string' || !item.text.trim()) throw new ReviewToolError(`${at}.text must be a non-empty string`);
    if (!lineCounts.has(file)) {
      const text = await mirror.show(commit, file);
      lineCounts.set(file, text === null ? null : text.split('\n').length - (text.endsWith('\n') ? 1 : 0));
    }
    const count = lineCounts.get(file);
    if (count === null || count === undefined) throw new ReviewToolError(`${at}.file: ${file} is not a file of commit ${commit.slice(0, 12)} (comment on the new version of a file)`);
    if (item.line > Math.max(count, 1)) throw new ReviewToolError(`${at}.line: ${file} has ${count} lines at commit ${commit.slice(0, 12)}, not ${item.line}`);
    comments.push({ file, line: item.line, text: item.text.trim() });
  }
  return { verdict, summary: summary.trim(), comments };
}

const capText = (text: string, chars: number) => (text.length > chars ? `${text.slice(0, chars)} [... cut]` : text);

/** What history keeps of a review: the summary and the first comments, capped. */
export function forHistory(submitted: SubmittedReview): Pick<ReviewResult, 'summary' | 'comments' | 'commentsTotal'> {
  return {
    summary: capText(submitted.summary, SUMMARY_CHARS),
    comments: submitted.comments.slice(0, COMMENTS_IN_HISTORY).map((c) => ({ ...c, text: capText(c.text, COMMENT_CHARS) })),
    ...(submitted.comments.length > COMMENTS_IN_HISTORY ? { commentsTotal: submitted.comments.length } : {}),
  };
}

export const verdictText = (verdict: ReviewResult['verdict']) =>
  verdict === 'approve' ? 'approved' : verdict === 'request_changes' ? 'changes requested' : 'no verdict';

const commentLine = (c: ReviewComment) => `- \`${c.file}:${c.line}\`: ${c.text.replace(/\n+/g, ' ')}`;

/** The walkthrough's review section (every comment). */
export function walkthroughSection(review: Omit<ReviewResult, 'comments'>, comments: ReviewComment[], commit: string): string {
  return [
    `## Review: ${verdictText(review.verdict)}${review.required ? ' (required)' : ''}`,
    `A separate, read-only reviewer session (${review.model}, ${review.turns} turn${review.turns === 1 ? '' : 's'}, ${review.tokens.total} tokens) read the issue, Cadenza's diff and this evidence, and the files of commit \`${commit}\` in Cadenza's mirror.`,
    '',
    review.summary || '(no summary)',
    '',
    ...(comments.length ? ['Line comments:', ...comments.map(commentLine)] : ['No line comments.']),
    ...(review.required && review.verdict === 'request_changes' ? ['', 'The reviewer is required (review.required): this round goes back to the agent with the comments.'] : []),
    '',
  ].join('\n');
}

/** The proof summary's review lines (the workpad shows them). */
export function summarySection(review: Omit<ReviewResult, 'comments'>, comments: ReviewComment[]): string {
  const shown = comments.slice(0, 20);
  return [
    `**Reviewer: ${verdictText(review.verdict)}**${review.required ? ' (required)' : ''}: ${review.summary.replace(/\s+/g, ' ') || '(no summary)'}`,
    ...shown.map(commentLine),
    ...(comments.length > shown.length ? [`- ... and ${comments.length - shown.length} more (see the walkthrough)`] : []),
  ].join('\n');
}
