import { spawn, type SpawnOptions } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing output. Never throws on a non-zero exit. */
export function run(command: string, args: string[], options: SpawnOptions & { onStderrLine?: (line: string) => void } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const { onStderrLine, ...spawnOptions } = options;
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout?.on('data', (chunk) => (stdout += chunk));
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
      if (!onStderrLine) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onStderrLine(line);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** True when `command` can be found on PATH. */
export async function onPath(command: string): Promise<string | undefined> {
  const result = await run('sh', ['-c', `command -v ${command}`]).catch(() => undefined);
  return result?.code === 0 ? result.stdout.trim() : undefined;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns true, `timeoutMs` passes, or `giveUp` says it never will. */
export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 250, giveUp: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !giveUp()) {
    if (await probe().catch(() => false)) return true;
    await sleep(intervalMs);
  }
  return false;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
