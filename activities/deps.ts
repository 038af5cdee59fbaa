import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type OpenAI from 'openai';
import type { ArtifactStore } from '../lib/artifacts.ts';
import type { CodeHost, CodeHostConfig } from '../lib/codehost/index.ts';
import type { TrackerConfig } from '../lib/contract/index.ts';
import type { MirrorCache } from '../lib/git.ts';
import type { TrackerAdapter } from '../lib/tracker/types.ts';

/** Everything the activities touch, handed in by the worker (or a test). */
export interface ActivityDeps {
  docker: Docker;
  artifacts: ArtifactStore;
  mirrors: MirrorCache;
  model: {
    client: OpenAI;
    /** 'scripted' when no OPENAI_API_KEY is set; said in logs, status and the tracker. */
    kind: 'scripted' | 'openai';
  };
  tracker: (config: TrackerConfig) => TrackerAdapter;
  /** Where pull requests are opened (`landing.strategy: pull_request`); lib/codehost's codeHostConfig says which. */
  codeHost: (config: CodeHostConfig) => CodeHost;
  log?: (line: string) => void;
  /** The worker's environment: where `$VAR` secrets are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Which host this is (workers/worker.ts hostIdFor): names its task queue. */
  hostId?: string;
  /** This worker's host: its id and the task queue its sandbox steps are sent to (set by createCadenzaWorker). */
  host?: { id: string; queue: string };
  /** A Temporal client, for the poller (starting, signalling and cancelling issue runs). */
  temporal?: () => Promise<Client>;
}
