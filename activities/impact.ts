/**
 * Impact notices, sent by a run that just landed (strategy merge): every other open run of the project
 * whose work touches what landed is signalled (impactNotice), naming the landed commit and what the two
 * share. An open run's work is its host-side snapshot (refs/cadenza/<key>/work): this host's mirror has
 * the snapshots of runs it holds, and every host publishes them to the git remote under the same ref,
 * so runs on other hosts are read from there. Its touched files are those changed between the merge
 * base with the target as it was before the landing and the snapshot (so a branch that merged the
 * target in is not credited with the target's changes); the landed change's files are those of the
 * landing merge against its first parent. For JavaScript and TypeScript, static module links between
 * the two sides' touched files count too (lib/impact.ts). A run with no snapshot yet (its first round
 * is still working) is not told: it starts from the target as it is now anyway.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ContractSettings } from '../lib/contract/index.ts';
import { git, type RepoMirror } from '../lib/git.ts';
import { impactOf, MODULE_FILE, type ChangeSide } from '../lib/impact.ts';
import { scopedRunKey } from '../lib/sandbox/names.ts';
import { HISTORY_CAPS, impactNoticeSignal, issueWorkflowId, legacyIssueWorkflowId, type ImpactNotice } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import { workSnapshotRef } from './sandbox.ts';

export interface ImpactInput {
  /** The run that landed. */
  workflowId: string;
  contract: ContractSettings;
  identifier: string;
  title: string;
  /** The landing merge on the target branch. */
  landedCommit: string;
}

export interface ImpactResult {
  /** Runs told, with the files they share with the landed change and how many module links. */
  told: Array<{ identifier: string; workflowId: string; files: string[]; symbols: number }>;
  /** Open runs of the project looked at (the landed one not counted). */
  checked: number;
  /** Open runs without a snapshot yet (first round still working): not told. */
  withoutSnapshot: string[];
}

/** Module files read per side, and the largest read (bigger ones are left out of the symbol links). */
const MAX_SOURCES = 200;
const MAX_SOURCE_BYTES = 256 * 1024;

export function createImpactActivities(deps: ActivityDeps) {
  /** Paths changed from `base` to `head` (both paths of a rename), by Cadenza's own git. */
  async function touched(mirror: RepoMirror, base: string, head: string): Promise<string[]> {
    const out = await git(mirror.dir, ['diff', '--no-ext-diff', '--no-textconv', '--no-renames', '--name-only', '-z', base, head], { hermetic: true });
    return [...new Set(out.split('\0').filter(Boolean))];
  }

  /** The text of the module files among `files` at `commit` (those that exist there and are small enough). */
  async function sources(mirror: RepoMirror, commit: string, files: string[]): Promise<Map<string, string>> {
    const wanted = files.filter((file) => MODULE_FILE.test(file)).slice(0, MAX_SOURCES);
    const texts = new Map<string, string>();
    if (!wanted.length) return texts;
    // Sizes in one call: `<mode> blob <sha> <size>\t<path>`.
    const listing = await git(mirror.dir, ['ls-tree', '-l', '-z', commit, '--', ...wanted], { hermetic: true });
    for (const entry of listing.split('\0').filter(Boolean)) {
      const match = /^\d+ blob [0-9a-f]+ +(\d+)\t(.*)$/s.exec(entry);
      if (!match || Number(match[1]) > MAX_SOURCE_BYTES) continue;
      const text = await mirror.show(commit, match[2]!);
      if (text !== null) texts.set(match[2]!, text);
    }
    return texts;
  }

  /**
   * The snapshot of an open run: the remote's copy (published by whichever host holds the run), or
   * this host's when the remote has none or this one is ahead of it (a publish the remote refused).
   */
  async function snapshotOf(mirror: RepoMirror, keys: string[], remote: Map<string, string>): Promise<string | undefined> {
    for (const key of keys) {
      const ref = workSnapshotRef(key);
      const [local, published] = [await mirror.resolve(ref), remote.get(ref)];
      if (published && local && local !== published && (await mirror.isAncestor(published, local))) return local;
      if (published) return published;
      if (local) return local;
    }
    return undefined;
  }

  async function noticeImpact(input: ImpactInput): Promise<ImpactResult> {
    const { contract, workflowId, landedCommit } = input;
    const { repo, landing, tracker } = contract.config;
    if (!deps.temporal) throw ApplicationFailure.nonRetryable('this worker has no Temporal client to tell other runs', 'ConfigError');
    const client: Client = await deps.temporal();
    const { namespace } = Context.current().info;
    const mirror = deps.mirrors.get(repo.url);
    if (!(await mirror.resolve(landedCommit))) await mirror.refresh();
    const before = await mirror.resolve(`${landedCommit}^1`);
    if (!before) throw ApplicationFailure.nonRetryable(`the landed commit ${landedCommit} is not in the host mirror of ${repo.url}`, 'WorkLost');
    const landedFiles = await touched(mirror, before, landedCommit);
    const result: ImpactResult = { told: [], checked: 0, withoutSnapshot: [] };
    if (!landedFiles.length) return result;
    let landedSide: ChangeSide | undefined;

    // The project's open runs (and runs from before project ids), as the poller lists them.
    const prefixes = [...new Set([issueWorkflowId(contract.config, ''), legacyIssueWorkflowId(tracker.kind, '')])];
    const open: Array<{ workflowId: string; identifier: string; keys: string[] }> = [];
    for await (const run of client.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running' AND CadenzaRepo = '${repo.url.replace(/'/g, "\\'")}'` })) {
      const prefix = prefixes.find((candidate) => run.workflowId.startsWith(candidate));
      if (prefix === undefined || run.workflowId === workflowId || open.some((known) => known.workflowId === run.workflowId)) continue;
      // Runs of a contract with a project id are keyed by namespace and id; runs from before by id alone.
      open.push({ workflowId: run.workflowId, identifier: run.workflowId.slice(prefix.length), keys: [scopedRunKey(namespace, run.workflowId), run.workflowId] });
    }
    result.checked = open.length;
    if (!open.length) return result;

    // Which of their snapshots the remote has, in one round trip; then their objects, in one fetch.
    const wanted = open.flatMap((run) => run.keys.map(workSnapshotRef));
    const remote = new Map<string, string>();
    const listing = await git(mirror.dir, ['ls-remote', 'origin', ...wanted]).catch((error: Error) => {
      deps.log?.(`impact: cannot list the runs' snapshots on ${repo.url}; using this host's only: ${error.message.split('\n')[0]}`);
      return '';
    });
    for (const line of listing.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (sha && ref && wanted.includes(ref)) remote.set(ref, sha);
    }
    const missing = [...remote.values()].filter((sha, i, all) => all.indexOf(sha) === i);
    const absent: string[] = [];
    for (const sha of missing) if (!(await mirror.resolve(sha))) absent.push(sha);
    if (absent.length) {
      // Into a scratch namespace: this host's own snapshot refs are never overwritten from the remote.
      const refspecs = [...remote].filter(([, sha]) => absent.includes(sha)).map(([ref]) => `+${ref}:${ref.replace(/^refs\/cadenza\//, 'refs/cadenza-impact/')}`);
      await git(mirror.dir, ['fetch', '--quiet', '--no-write-fetch-head', 'origin', ...refspecs]);
    }

    for (const run of open) {
      Context.current().heartbeat(run.identifier);
      const snapshot = await snapshotOf(mirror, run.keys, remote);
      if (!snapshot) {
        result.withoutSnapshot.push(run.identifier);
        continue;
      }
      const base = await git(mirror.dir, ['merge-base', before, snapshot], { allowFail: true });
      if (!base) continue;
      const files = await touched(mirror, base, snapshot);
      if (!files.length) continue;
      landedSide ??= { files: landedFiles, sources: await sources(mirror, landedCommit, landedFiles) };
      const impact = impactOf(landedSide, { files, sources: await sources(mirror, snapshot, files) });
      if (!impact.files.length && !impact.symbols.length) continue;
      const notice: ImpactNotice = {
        issue: input.identifier,
        title: input.title,
        workflowId,
        commit: landedCommit,
        targetBranch: landing.targetBranch,
        files: impact.files.slice(0, HISTORY_CAPS.noticeFiles),
        filesTotal: impact.files.length,
        ...(impact.symbols.length ? {
          symbols: impact.symbols.slice(0, HISTORY_CAPS.noticeSymbols).map((link) => ({ ...link, names: link.names.slice(0, HISTORY_CAPS.noticeNames) })),
          symbolsTotal: impact.symbols.length,
        } : {}),
      };
      try {
        await client.workflow.getHandle(run.workflowId).signal(impactNoticeSignal, notice);
      } catch (error) {
        // It ended meanwhile: nothing to tell.
        if (error instanceof WorkflowNotFoundError) continue;
        throw error;
      }
      result.told.push({ identifier: run.identifier, workflowId: run.workflowId, files: notice.files, symbols: impact.symbols.length });
      deps.log?.(`impact: told ${run.workflowId} that ${input.identifier} (${landedCommit.slice(0, 12)}) touches its work: ${[...impact.files, ...impact.symbols.map((link) => `${link.file} -> ${link.from}`)].join(', ')}`);
    }
    // The scratch copies are not needed any more (the objects stay until git's own gc).
    for (const ref of remote.keys()) await mirror.deleteRef(ref.replace(/^refs\/cadenza\//, 'refs/cadenza-impact/'));
    return result;
  }

  return { noticeImpact };
}
