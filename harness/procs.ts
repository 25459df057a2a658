// Starting and stopping real processes for integration tests, chaos runs and
// benchmarks. Only processes started here are ever signalled, and every one
// of them is killed when the parent exits.
import { request } from 'undici';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, createWriteStream, fstatSync, mkdtempSync, openSync, readSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
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

// Ports for test processes come from below the kernel's ephemeral range
// (32768-60999 on Linux): a port picked by binding port 0 is an ephemeral one,
// and between its release and the child's bind any outgoing connection on the
// machine may take it. Outside that range only another explicit bind can, and
// this process never hands out a port twice. A child that still loses the
// race is caught by startListening() below, and restarted on new ports.
const PORT_LO = 20_000;
const PORT_HI = 32_768;
const handedOut = new Set<number>();

function canBind(port: number): Promise<number | undefined> {
  return new Promise((res) => {
    const s = createServer();
    s.unref();
    s.once('error', () => res(undefined));
    s.listen(port, '127.0.0.1', () => {
      const { port: p } = s.address() as { port: number };
      s.close(() => res(p));
    });
  });
}

const planted: number[] = [];

/**
 * For the harness's own tests: the next freePort() calls return these ports,
 * unchecked (to plant a port that is taken).
 */
export function plantPorts(ports: number[]): void {
  planted.push(...ports);
}

/** A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  const p = planted.shift();
  if (p !== undefined) return p;
  for (let i = 0; i < 200; i++) {
    const port = PORT_LO + Math.floor(Math.random() * (PORT_HI - PORT_LO));
    if (handedOut.has(port)) continue;
    if ((await canBind(port)) !== undefined) {
      handedOut.add(port);
      return port;
    }
  }
  // The range is crowded: let the kernel pick.
  for (;;) {
    const port = await canBind(0);
    if (port !== undefined && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) out.push(await freePort());
  return out;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `flotilla-${prefix}-`));
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Where this process's output starts in logFile (the file is appended to across restarts). */
  logOffset: number;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns `command args`, output appended to logFile; the process dies with its parent. */
export function startProcess(command: string, args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): Proc {
  installExitHook();
  let logOffset = 0;
  try {
    logOffset = statSync(opts.logFile).size;
  } catch {
    /* a new log */
  }
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
    logOffset,
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

/** Runs a flotilla command in `cwd` to its end without blocking the event loop; resolves with its exit code and output (never rejects). */
export function runFlotilla(cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
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

/** The last `lines` lines of a log file, from byte `from` on ('' when it cannot be read). */
export function logTail(file: string, lines = 25, from = 0, maxBytes = 16_384): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.max(0, Math.min(size - from, maxBytes));
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8').split('\n').slice(-lines - 1).join('\n').trimEnd();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

const ADDR_IN_USE = /EADDRINUSE|address already in use/i;

/** Whether this run of the process logged that it could not bind an address. */
function bindFailed(p: Proc): boolean {
  return ADDR_IN_USE.test(logTail(p.logFile, 50, p.logOffset));
}

/** A process that did not come up: why, and the end of its log. */
export class ProcessStartError extends Error {
  override name = 'ProcessStartError';
  constructor(
    readonly what: string,
    reason: string,
    readonly logFile: string,
    /** It could not bind one of its ports (someone else holds it): worth retrying on other ports. */
    readonly addrInUse: boolean,
    logOffset = 0,
  ) {
    const tail = logTail(logFile, 25, logOffset);
    super(`${what} ${reason} (log ${logFile})${tail ? `:\n${tail.replace(/^/gm, '  | ')}` : ': its log is empty'}`);
  }
}

/** Whether a process has exited (or been killed). */
export function hasExited(p: Proc): boolean {
  return p.child.exitCode !== null || p.child.signalCode !== null;
}

/**
 * The error for a request to a process that failed at the connection level:
 * when the process is gone (or never came up), its log tail says why, instead
 * of a bare ECONNREFUSED.
 */
export function explainConnectError(e: unknown, what: string, p: Proc | undefined): Error {
  const err = e as Error & { code?: string; cause?: { code?: string } };
  const code = err?.code ?? err?.cause?.code;
  if (!p || !code || !/^(ECONNREFUSED|ECONNRESET|EPIPE|UND_ERR_SOCKET)$/.test(code)) return err;
  const state = hasExited(p) ? `has exited (${p.child.exitCode ?? p.child.signalCode})` : 'is running but refused the connection';
  return new ProcessStartError(what, `${state}: ${err.message}`, p.logFile, bindFailed(p), p.logOffset);
}

/**
 * Resolves once `ready()` says the process answers (its ports are bound).
 * Rejects with ProcessStartError, carrying the log tail, as soon as the
 * process exits or its log says it could not bind an address, or when
 * `timeoutMs` passes.
 */
export async function waitListening(p: Proc, what: string, ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  for (;;) {
    if (hasExited(p)) {
      // Its output may still be on its way to the log.
      await sleep(100);
      const inUse = bindFailed(p);
      throw new ProcessStartError(what, `exited (${p.child.exitCode ?? p.child.signalCode}) before it was listening${inUse ? ': an address it needs is taken' : ''}`, p.logFile, inUse, p.logOffset);
    }
    try {
      if (await ready()) return;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (bindFailed(p)) throw new ProcessStartError(what, 'could not bind an address it needs', p.logFile, true, p.logOffset);
    if (Date.now() > deadline) throw new ProcessStartError(what, `is not listening after ${timeoutMs} ms${lastErr ? ` (${lastErr})` : ''}`, p.logFile, false, p.logOffset);
    await sleep(50);
  }
}

/** One process of a group that listens on ports: how to start it and how to tell it answers. */
export interface Listener {
  what: string;
  start(): Proc;
  ready(): Promise<boolean>;
}

/**
 * Starts a group of processes that listen on planned ports (cluster members
 * name each other's addresses, so ports are picked before anything starts)
 * and returns only once every one of them is listening. When one could not
 * bind a port (taken since it was picked), the whole group is killed,
 * `replan` picks new ports (and clears whatever the failed start left), and
 * the group starts again, up to `attempts` times. Any other failure throws
 * ProcessStartError with the member's log tail.
 */
export async function startListening(opts: {
  /** The group as currently planned (called again after each replan). */
  listeners(): Listener[];
  /** New ports for the whole group; absent: a bind failure is final. */
  replan?(): Promise<void>;
  attempts?: number;
  timeoutMs?: number;
}): Promise<void> {
  const attempts = opts.replan ? (opts.attempts ?? 4) : 1;
  for (let attempt = 1; ; attempt++) {
    const group = opts.listeners();
    const procs: Proc[] = [];
    try {
      for (const l of group) procs.push(l.start());
      await Promise.all(group.map((l, i) => waitListening(procs[i], l.what, () => l.ready(), opts.timeoutMs)));
      return;
    } catch (e) {
      await Promise.all(procs.map((p) => p.kill('SIGKILL')));
      if (!(e instanceof ProcessStartError) || !e.addrInUse || attempt >= attempts || !opts.replan) throw e;
      process.stderr.write(`# ${e.message.split('\n')[0]}; starting the group again on other ports (attempt ${attempt + 1} of ${attempts})\n`);
      await opts.replan();
    }
  }
}

/** Whether a consumer process answers 200 on http://ADDRESS/readyz (its /healthz and /metrics port). */
export async function answersReadyz(address: string): Promise<boolean> {
  try {
    const r = await request(`http://${address}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await r.body.dump();
    return r.statusCode === 200;
  } catch {
    return false;
  }
}
