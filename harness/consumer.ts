// A consumer process (`flotilla dns|ingress|proxy …`) for tests and chaos
// runs: connected to the servers and NATS, its own ports planned on free
// loopback ports (planned again if one is taken meanwhile), /healthz and
// /metrics on another; started once it answers /readyz.
import { join } from 'node:path';
import { request } from 'undici';
import { type Proc, answersReadyz, freePort, startFlotilla, startListening, tempDir } from './procs.ts';

export interface ConsumerProcessOptions {
  /** The subcommand: dns, ingress, proxy… */
  command: string;
  servers: readonly string[];
  nats: string;
  /** How many free ports its own flags need. */
  ports?: number;
  /** Its flags, given the planned ports. */
  args?: (ports: number[]) => string[];
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

export class ConsumerProcess {
  proc!: Proc;
  metricsAddress = '';
  /** The ports of the current start. */
  ports: number[] = [];

  private constructor(readonly o: ConsumerProcessOptions, readonly logFile: string) {}

  static async start(o: ConsumerProcessOptions): Promise<ConsumerProcess> {
    const p = new ConsumerProcess(o, join(o.dir ?? tempDir(`flotilla-${o.command}-`), `${o.command}.log`));
    await p.restart();
    return p;
  }

  /** (Re)starts the process on fresh ports. */
  async restart(): Promise<void> {
    const plan = async () => {
      this.ports = [];
      for (let i = 0; i < (this.o.ports ?? 0); i++) this.ports.push(await freePort());
      this.metricsAddress = `127.0.0.1:${await freePort()}`;
    };
    await plan();
    await startListening({
      listeners: () => [{
        what: this.o.command,
        start: () => {
          this.proc = startFlotilla([this.o.command, '--server', this.o.servers.join(','), '--nats', this.o.nats,
            '--metrics-address', this.metricsAddress, ...(this.o.args?.(this.ports) ?? [])], { logFile: this.logFile, env: this.o.env });
          return this.proc;
        },
        ready: () => answersReadyz(this.metricsAddress),
      }],
      replan: plan,
    });
  }

  async metrics(): Promise<string> {
    const r = await request(`http://${this.metricsAddress}/metrics`);
    return r.body.text();
  }

  async health(): Promise<Record<string, unknown> | undefined> {
    try {
      const r = await request(`http://${this.metricsAddress}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
      return (await r.body.json()) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.kill(signal);
  }
}
