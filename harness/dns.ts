// The cluster DNS process (`flotilla dns`) for tests and chaos runs: on a
// free loopback port (UDP and TCP), /healthz and /metrics on another.
import { join } from 'node:path';
import { request } from 'undici';
import { type Proc, answersReadyz, freePort, startFlotilla, startListening, tempDir } from './procs.ts';

export interface DnsProcessOptions {
  servers: readonly string[];
  nats: string;
  /** Address to serve on (default 127.0.0.1 and a free port). */
  host?: string;
  /** --upstream (default none: names outside the zone are REFUSED). */
  upstream?: string;
  args?: string[];
  dir?: string;
}

export class DnsProcess {
  proc!: Proc;
  address = '';
  metricsAddress = '';

  private constructor(readonly o: DnsProcessOptions, readonly logFile: string) {}

  static async start(o: DnsProcessOptions): Promise<DnsProcess> {
    const d = new DnsProcess(o, join(o.dir ?? tempDir('flotilla-dns-'), 'dns.log'));
    let [port, metrics] = [await freePort(), await freePort()];
    await startListening({
      listeners: () => [{
        what: 'dns',
        start: () => {
          d.address = `${o.host ?? '127.0.0.1'}:${port}`;
          d.metricsAddress = `127.0.0.1:${metrics}`;
          d.proc = startFlotilla(['dns', '--server', o.servers.join(','), '--nats', o.nats, '--listen', d.address,
            '--upstream', o.upstream ?? 'none', '--metrics-address', d.metricsAddress, ...(o.args ?? [])], { logFile: d.logFile });
          return d.proc;
        },
        ready: () => answersReadyz(d.metricsAddress),
      }],
      replan: async () => { [port, metrics] = [await freePort(), await freePort()]; },
    });
    return d;
  }

  async metrics(): Promise<string> {
    const r = await request(`http://${this.metricsAddress}/metrics`);
    return r.body.text();
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.kill(signal);
  }
}
