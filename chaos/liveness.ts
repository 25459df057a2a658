// Watches the controller managers and schedulers of a chaos run for a hang:
// a process that is alive (not exited, not stopped by a signal) but has not
// answered /healthz for `silentMs` is unresponsive — its event loop no
// longer turns. Such a leader holds nothing up by itself (its Lease expires
// and a standby takes over), but everything it leads stops, which the
// convergence check would only report as "not converged". Here it is an
// anomaly of its own, with what /proc says about the process: its state and
// the CPU it burns (a synchronous loop: state R, most of a core; blocked in
// the kernel: S/D with a wchan and no CPU).
//
// With FLOTILLA_CHAOS_DIAG=1 the components start with
// --inspect-port=127.0.0.1:0 and the monitor also takes the JavaScript stack
// of a hung process: SIGUSR1 opens Node's inspector (served by its own
// thread, so it answers while the main thread spins), Debugger.pause
// interrupts the running JavaScript and reports its call frames. Node's
// --report-on-signal does not help here: its signal handler runs on the
// event loop, which is exactly what no longer turns.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'undici';
import type { ControllerManager } from '../harness/controllers.ts';
import { hasExited, logTail } from '../harness/procs.ts';

export const DIAG_ENV = 'FLOTILLA_CHAOS_DIAG';

/** Extra environment for the watched components: an inspector port of their own (0: any free one) when diagnosing. */
export function diagEnv(): NodeJS.ProcessEnv {
  if (process.env[DIAG_ENV] !== '1') return {};
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect-port=127.0.0.1:0`.trim() };
}

export interface Unresponsive {
  component: string;
  pid: number;
  /** Wall-clock time (ms) of its last answer, and how long it had been silent when reported. */
  lastAnswer: number;
  silentMs: number;
  /**
   * /proc/PID/stat state (R, S, D, …) and wchan at one instant: a spinning
   * main thread may be caught waiting for the GC's helper threads (S in a
   * futex), so the CPU it used over a second says more.
   */
  state: string;
  wchan: string;
  /** CPU time (ms) the process used over the second after it was found silent: ~1000 for a loop on the CPU, ~0 when blocked. */
  cpuMsPerSecond: number;
  /** With FLOTILLA_CHAOS_DIAG=1: the JavaScript stack, innermost first. */
  stack?: string[];
}

interface Watched {
  name: string;
  replica: () => ControllerManager;
}

/** /proc/PID/stat's state letter, the kernel function it waits in ('' when unknown) and its CPU time so far (ms). */
export function procState(pid: number): { state: string; wchan: string; cpuMs: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15 of stat, 12 and 13 after the command), in clock ticks of 10 ms.
    const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
    let wchan = '';
    try {
      wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8').trim();
    } catch {
      /* not readable here */
    }
    return { state: fields[0] ?? '', wchan: wchan === '0' ? '' : wchan, cpuMs };
  } catch {
    return { state: '', wchan: '', cpuMs: 0 };
  }
}

export class LivenessMonitor {
  readonly found: Unresponsive[] = [];
  private readonly lastAnswer = new Map<number, number>();
  private readonly reported = new Set<number>();
  private timer?: NodeJS.Timeout;
  private busy = false;

  constructor(private readonly watched: Watched[], private readonly o: { everyMs?: number; silentMs?: number; log?: (line: string) => void } = {}) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.o.everyMs ?? 2000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round: ask every live component; report the ones silent for too long. */
  async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = Date.now();
      await Promise.all(this.watched.map(async (w) => {
        const r = w.replica();
        const pid = r.proc?.pid;
        if (!pid || hasExited(r.proc)) return;
        const since = this.lastAnswer.get(pid) ?? now;
        if (!this.lastAnswer.has(pid)) this.lastAnswer.set(pid, now);
        if ((await r.health()) !== undefined) {
          this.lastAnswer.set(pid, Date.now());
          return;
        }
        const silent = Date.now() - since;
        if (silent < (this.o.silentMs ?? 15_000) || this.reported.has(pid) || hasExited(r.proc)) return;
        const { state, wchan, cpuMs } = procState(pid);
        // Stopped on purpose (SIGSTOP) or already gone: not a hang.
        if (state === '' || state === 'T' || state === 't' || state === 'Z') return;
        this.reported.add(pid);
        await new Promise((res) => setTimeout(res, 1000));
        const cpuMsPerSecond = Math.max(0, procState(pid).cpuMs - cpuMs);
        const u: Unresponsive = { component: w.name, pid, lastAnswer: since, silentMs: silent, state, wchan, cpuMsPerSecond };
        if (process.env[DIAG_ENV] === '1') u.stack = await jsStack(r).catch((e) => [`(no stack: ${(e as Error).message})`]);
        this.found.push(u);
        this.o.log?.(`  unresponsive: ${describe(u)}`);
      }));
    } finally {
      this.busy = false;
    }
  }

  /** The check's outcome, as the other orchestrator checks report it. */
  outcome(): { anomalies: number; details: string[] } {
    return { anomalies: this.found.length, details: this.found.map(describe) };
  }
}

export function describe(u: Unresponsive): string {
  const where = u.stack?.length ? `; stack: ${u.stack.slice(0, 12).join(' < ')}` : '';
  return `${u.component} (pid ${u.pid}) alive but silent on /healthz for ${Math.round(u.silentMs / 1000)} s since ${new Date(u.lastAnswer).toISOString()}, state ${u.state}${u.wchan ? ` in ${u.wchan}` : ''}, ${u.cpuMsPerSecond} ms of CPU in the next second${where}`;
}

/** The JavaScript stack of a process started with --inspect-port: SIGUSR1, then Debugger.pause over the inspector. */
async function jsStack(r: ControllerManager): Promise<string[]> {
  const proc = r.proc;
  process.kill(proc.pid, 'SIGUSR1');
  let url: string | undefined;
  for (let i = 0; i < 50 && !url; i++) {
    await new Promise((res) => setTimeout(res, 100));
    const urls = [...logTail(proc.logFile, 400, proc.logOffset, 256 * 1024).matchAll(/Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/g)];
    url = urls.at(-1)?.[1];
  }
  if (!url) throw new Error('the inspector did not start (was the process started with FLOTILLA_CHAOS_DIAG=1?)');
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    // Frames name their script by id; Debugger.enable announces every script's URL first.
    const scripts = new Map<string, string>();
    const paused = new Promise<{ callFrames: { functionName: string; url: string; location: { scriptId: string; lineNumber: number; columnNumber: number } }[] }>((resolve) => {
      ws.addEventListener('message', (m) => {
        const j = JSON.parse(String(m.data)) as { method?: string; params?: { scriptId?: string; url?: string } };
        if (j.method === 'Debugger.scriptParsed' && j.params?.scriptId) scripts.set(j.params.scriptId, j.params.url ?? '');
        if (j.method === 'Debugger.paused') resolve(j.params as never);
      });
    });
    ws.send(JSON.stringify({ id: 1, method: 'Debugger.enable' }));
    ws.send(JSON.stringify({ id: 2, method: 'Debugger.pause' }));
    const p = await Promise.race([paused, new Promise<undefined>((res) => setTimeout(() => res(undefined), 10_000))]);
    if (!p) throw new Error('the process did not pause within 10 s');
    // Let it run on: the run goes on, the hang is what it is.
    ws.send(JSON.stringify({ id: 3, method: 'Debugger.resume' }));
    return p.callFrames.map((f) => {
      const file = (f.url || scripts.get(f.location.scriptId) || '?').replace(/^.*\/(agents|api|bin|harness|chaos|node_modules)\//, '$1/');
      return `${f.functionName || '<anonymous>'} (${file}:${f.location.lineNumber + 1}:${f.location.columnNumber + 1})`;
    });
  } finally {
    ws.close();
  }
}
