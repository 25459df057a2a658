// The process runtime: a container is an OS process in its own session and
// process group (so a signal reaches everything it started), with its
// stdout/stderr appended to a log file and a record on disk (pid + the
// kernel's start time of the process, which guards against pid reuse) so
// that an agent restarted after a crash finds and adopts it instead of
// starting it again.
//
// An adopted process is no longer the agent's child: its exit is noticed by
// polling, and its exit code cannot be known (reported as such).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
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
  /** The FIFO that is the container's stdin (spec `stdin: true`), for attach. */
  stdinFifo?: string;
}

/**
 * A container with `stdin: true` reads a FIFO. Without `stdinOnce` the
 * container itself holds it open for writing too, so it never sees EOF (as
 * Kubernetes says) and keeps it across agent restarts; with `stdinOnce` the
 * agent holds the writing end until the first attach session ends, then
 * closes it and the container reads EOF (an agent restart before that closes
 * it early: nothing else can keep it open).
 */
export interface StdinSpec {
  fifo: string;
  once: boolean;
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
  stdin?: StdinSpec;
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
  /** stdinOnce: the agent's writing end of the stdin FIFO, closed after the first attach session. */
  private stdinHolder?: number;

  private constructor(readonly record: ProcessRecord, readonly recordFile: string, child?: ChildProcess, stdinHolder?: number) {
    this.child = child;
    this.stdinHolder = stdinHolder;
    this.exited = new Promise<ExitInfo>((resolve) => {
      const done = (info: ExitInfo) => {
        if (this.exit) return;
        this.exit = info;
        clearInterval(this.poll);
        this.closeStdin();
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
    let stdinFd: number | undefined;
    let holder: number | undefined;
    try {
      if (s.stdin) {
        rmSync(s.stdin.fifo, { force: true });
        const made = spawnSync('mkfifo', ['-m', '600', s.stdin.fifo], { encoding: 'utf8' });
        if (made.status !== 0) throw new Error(`cannot make the stdin FIFO: ${made.stderr || made.error?.message}`);
        // Read-write opens of a FIFO never block; a read-only one does not either once a writer exists.
        if (s.stdin.once) {
          holder = openSync(s.stdin.fifo, 'r+');
          stdinFd = openSync(s.stdin.fifo, 'r');
        } else {
          stdinFd = openSync(s.stdin.fifo, 'r+');
        }
      }
      child = spawn(s.argv[0], s.argv.slice(1), { cwd: s.cwd, env: s.env, detached: true, stdio: [stdinFd ?? 'ignore', fd, fd] });
    } catch (e) {
      if (holder !== undefined) closeSync(holder);
      throw e;
    } finally {
      closeSync(fd);
      if (stdinFd !== undefined) closeSync(stdinFd);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (e) {
      if (holder !== undefined) closeSync(holder);
      throw e;
    }
    child.unref();
    const pid = child.pid!;
    const record: ProcessRecord = {
      pid, startTicks: processStartTicks(pid) ?? -1, startedAt: new Date().toISOString(), restartCount: s.restartCount,
      podUid: s.podUid, container: s.container, logFile: s.logFile, ...(s.stdin ? { stdinFifo: s.stdin.fifo } : {}),
    };
    const tmp = `${s.recordFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(record));
    renameSync(tmp, s.recordFile);
    return new ContainerProcess(record, s.recordFile, child, holder);
  }

  /**
   * A writer into the container's stdin (attach -i); undefined when it has
   * none or nobody reads it any more.
   */
  openStdin(): Socket | undefined {
    if (!this.record.stdinFifo || this.exit) return undefined;
    try {
      // Non-blocking, so a container that does not read cannot stall the agent: the socket queues.
      const fd = openSync(this.record.stdinFifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
      const sock = new Socket({ fd, readable: false, writable: true });
      sock.on('error', () => sock.destroy());
      return sock;
    } catch {
      return undefined;
    }
  }

  /** stdinOnce: the first attach session is over, the container reads EOF (once no writer is left). */
  closeStdin(): void {
    if (this.stdinHolder === undefined) return;
    try {
      closeSync(this.stdinHolder);
    } catch {
      /* already closed */
    }
    this.stdinHolder = undefined;
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
