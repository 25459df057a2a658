// Starting and stopping real processes for integration tests, chaos runs and
// benchmarks. Only processes started here are ever signalled, and every one
// of them is killed when the parent exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const FLOTILLA_BIN = join(ROOT, 'bin', 'flotilla.js');

const started = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const p of started) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** A free TCP port on 127.0.0.1 (bound then released; good enough on loopback). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `flotilla-${prefix}-`));
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns `command args`, output appended to logFile; the process dies with its parent. */
export function startProcess(command: string, args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): Proc {
  installExitHook();
  const out = createWriteStream(opts.logFile, { flags: 'a' });
  const child = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  started.add(child);
  const exited = new Promise<number | null>((res) => {
    child.on('exit', (code) => {
      started.delete(child);
      res(code);
    });
  });
  return {
    child,
    pid: child.pid!,
    logFile: opts.logFile,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Runs the flotilla CLI as a child process. */
export function startFlotilla(args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv }): Proc {
  return startProcess(process.execPath, [FLOTILLA_BIN, ...args], opts);
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}
