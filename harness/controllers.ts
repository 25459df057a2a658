// Controller-manager processes (`flotilla controllers`) for tests, chaos runs
// and benchmarks: each on a free loopback port for /healthz and /metrics,
// output in its own log. `leading()` asks a replica whether it runs the
// controllers (its /healthz says so).
import { request } from 'undici';
import { type Proc, freePort, startFlotilla, startListening, tempDir } from './procs.ts';
import { join } from 'node:path';

export interface ControllerManagerOptions {
  /** API server URLs. */
  servers: readonly string[];
  nats: string;
  /** Replica name (--id) and log name. */
  id: string;
  /** The flotilla subcommand (default 'controllers'; harness/scheduler.ts runs 'scheduler'). */
  command?: 'controllers' | 'scheduler';
  /** Extra flags (--controllers, --leader-elect-lease-duration, …). */
  args?: string[];
  /** Directory for the log (default: a temp dir). */
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

export class ControllerManager {
  proc!: Proc;
  metricsAddress = '';
  private constructor(readonly o: ControllerManagerOptions, readonly logFile: string) {}

  /** Starts a replica and returns once it answers /healthz. */
  static async start(o: ControllerManagerOptions): Promise<ControllerManager> {
    const cm = new ControllerManager(o, join(o.dir ?? tempDir('flotilla-cm-'), `${o.id}.log`));
    await cm.restart();
    return cm;
  }

  /** (Re)starts the process on a fresh port. */
  async restart(): Promise<void> {
    let port = await freePort();
    await startListening({
      listeners: () => [{
        what: `${this.o.command ?? 'controllers'} ${this.o.id}`,
        start: () => {
          this.metricsAddress = `127.0.0.1:${port}`;
          this.proc = startFlotilla([this.o.command ?? 'controllers', '--server', this.o.servers.join(','), '--nats', this.o.nats, '--id', this.o.id,
            '--metrics-address', this.metricsAddress, ...(this.o.args ?? [])], { logFile: this.logFile, env: { FLOTILLA_LOG_LEVEL: 'info', ...this.o.env } });
          return this.proc;
        },
        ready: async () => (await this.health()) !== undefined,
      }],
      replan: async () => { port = await freePort(); },
    });
  }

  /** The replica's /healthz body, or undefined when it does not answer. */
  async health(): Promise<{ status: string; leading: boolean; synced: boolean } | undefined> {
    try {
      const r = await request(`http://${this.metricsAddress}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
      return (await r.body.json()) as { status: string; leading: boolean; synced: boolean };
    } catch {
      return undefined;
    }
  }

  async leading(): Promise<boolean> {
    return (await this.health())?.leading === true;
  }

  async metrics(): Promise<string> {
    const r = await request(`http://${this.metricsAddress}/metrics`, { headersTimeout: 2000 });
    return r.body.text();
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.kill(signal);
  }
}
