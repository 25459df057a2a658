// The process runtime: a container is an OS process in its own session and
// process group (so a signal reaches everything it started), with its
// stdout/stderr appended to a log file and a record on disk (pid + the
// kernel's start time of the process, which guards against pid reuse) so
// that an agent restarted after a crash finds and adopts it instead of
// starting it again.
//
// An adopted process is no longer the agent's child: its exit is noticed by
// polling, and its exit code cannot be known (reported as such).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants } from 'node:os';

export interface ExitInfo {
  /** The exit code (128 + signal number when killed by a signal); undefined when unknown (adopted). */
  code?: number;
  signal?: string;
  finishedAt: Date;
}

export interface ProcessRecord {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot): the same pid with another start time is another process. */
  startTicks: number;
  startedAt: string;
  restartCount: number;
  /** Who the process belongs to, to find the pod after a restart. */
  podUid: string;
  container: string;
  logFile: string;
}

export interface SpawnSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  recordFile: string;
  podUid: string;
  container: string;
  restartCount: number;
}

/** /proc/<pid>/stat's starttime, or undefined when the process is gone. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    if (state === 'Z' || state === 'X') return undefined; // a zombie has exited
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

export class ContainerProcess {
  readonly exited: Promise<ExitInfo>;
  exit?: ExitInfo;
  private child?: ChildProcess;
  private poll?: NodeJS.Timeout;

  private constructor(readonly record: ProcessRecord, readonly recordFile: string, child?: ChildProcess) {
    this.child = child;
    this.exited = new Promise<ExitInfo>((resolve) => {
      const done = (info: ExitInfo) => {
        if (this.exit) return;
        this.exit = info;
        clearInterval(this.poll);
        // As when a container's main process ends: whatever it left running in its group ends too.
        try {
          process.kill(-record.pid, 'SIGKILL');
        } catch {
          /* the group is empty */
        }
        rmSync(this.recordFile, { force: true });
        resolve(info);
      };
      if (child) {
        child.once('exit', (code, signal) => {
          const num = signal ? (constants.signals as Record<string, number>)[signal] ?? 0 : 0;
          done({ code: code ?? 128 + num, signal: signal ?? undefined, finishedAt: new Date() });
        });
      } else {
        this.poll = setInterval(() => {
          if (processStartTicks(record.pid) !== record.startTicks) done({ finishedAt: new Date() });
        }, 500);
        this.poll.unref();
      }
    });
  }

  get pid(): number {
    return this.record.pid;
  }

  get running(): boolean {
    return !this.exit;
  }

  /** Starts a container process; throws when it cannot be started (no such program, …). */
  static async start(s: SpawnSpec): Promise<ContainerProcess> {
    mkdirSync(dirname(s.logFile), { recursive: true });
    mkdirSync(dirname(s.recordFile), { recursive: true });
    mkdirSync(s.cwd, { recursive: true });
    const fd = openSync(s.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(s.argv[0], s.argv.slice(1), { cwd: s.cwd, env: s.env, detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    const pid = child.pid!;
    const record: ProcessRecord = {
      pid, startTicks: processStartTicks(pid) ?? -1, startedAt: new Date().toISOString(), restartCount: s.restartCount,
      podUid: s.podUid, container: s.container, logFile: s.logFile,
    };
    const tmp = `${s.recordFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(record));
    renameSync(tmp, s.recordFile);
    return new ContainerProcess(record, s.recordFile, child);
  }

  /** Adopts the process a record names, if it still runs (same pid and start time); otherwise removes the record. */
  static adopt(recordFile: string): ContainerProcess | undefined {
    let record: ProcessRecord;
    try {
      record = JSON.parse(readFileSync(recordFile, 'utf8')) as ProcessRecord;
    } catch {
      rmSync(recordFile, { force: true });
      return undefined;
    }
    if (processStartTicks(record.pid) !== record.startTicks) {
      rmSync(recordFile, { force: true });
      return undefined;
    }
    return new ContainerProcess(record, recordFile);
  }

  /** Signals the whole process group. */
  signal(sig: NodeJS.Signals): void {
    if (this.exit) return;
    try {
      process.kill(-this.record.pid, sig);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL of the group after graceMs; resolves once the process exited. */
  async stop(graceMs: number): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), Math.max(0, graceMs));
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      // Whatever the leader left behind in its group goes too.
      try {
        process.kill(-this.record.pid, 'SIGKILL');
      } catch {
        /* the group is empty */
      }
    }
  }
}

export function recordExists(file: string): boolean {
  return existsSync(file);
}
