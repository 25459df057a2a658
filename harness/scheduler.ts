// `flotilla scheduler` processes for tests and benchmarks: the same
// supervision as the controller manager's (harness/controllers.ts) — a free
// loopback port for /healthz and /metrics, its own log, restart, kill,
// `leading()` — plus the scheduler's counters from /healthz.
import { ControllerManager, type ControllerManagerOptions } from './controllers.ts';
import { hasExited } from './procs.ts';

export interface SchedulerHealth {
  status: string;
  leading: boolean;
  synced: boolean;
  scheduled: number;
  unschedulable: number;
  errors: number;
  bindFailures: number;
  /** Bindings answered 504 (outcome unknown): kept assumed until their event. */
  bindUnknown: number;
  preemptions: number;
  pending: { active: number; backoff: number; unschedulable: number };
}

export class SchedulerProcess {
  private constructor(readonly replica: ControllerManager) {}

  static async start(o: Omit<ControllerManagerOptions, 'command'>): Promise<SchedulerProcess> {
    return new SchedulerProcess(await ControllerManager.start({ ...o, command: 'scheduler' }));
  }

  get id(): string {
    return this.replica.o.id;
  }

  get logFile(): string {
    return this.replica.logFile;
  }

  /** Whether the process has exited (a leader that lost its Lease exits on purpose). */
  exited(): boolean {
    return hasExited(this.replica.proc);
  }

  /**
   * Restarts the replica whenever it exits, as `flotilla up` supervises it,
   * until the returned function is called.
   */
  supervise(everyMs = 500): () => void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || !this.exited()) return;
      busy = true;
      void this.restart().catch(() => {}).finally(() => { busy = false; });
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  async health(): Promise<SchedulerHealth | undefined> {
    return (await this.replica.health()) as SchedulerHealth | undefined;
  }

  leading(): Promise<boolean> {
    return this.replica.leading();
  }

  metrics(): Promise<string> {
    return this.replica.metrics();
  }

  restart(): Promise<void> {
    return this.replica.restart();
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.replica.stop(signal);
  }
}
