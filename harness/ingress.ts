// The ingress proxy process (`flotilla ingress`) for tests: HTTP (and
// optionally HTTPS) on free loopback ports, /healthz and /metrics on another.
import { join } from 'node:path';
import { request } from 'undici';
import { type Proc, answersReadyz, freePort, startFlotilla, startListening, tempDir } from './procs.ts';

export interface IngressProcessOptions {
  servers: readonly string[];
  nats: string;
  tls?: boolean;
  args?: string[];
  dir?: string;
}

export class IngressProcess {
  proc!: Proc;
  http = '';
  https = '';
  metricsAddress = '';

  private constructor(readonly o: IngressProcessOptions, readonly logFile: string) {}

  static async start(o: IngressProcessOptions): Promise<IngressProcess> {
    const p = new IngressProcess(o, join(o.dir ?? tempDir('flotilla-ingress-'), 'ingress.log'));
    let ports = [await freePort(), await freePort(), await freePort()];
    await startListening({
      listeners: () => [{
        what: 'ingress',
        start: () => {
          p.http = `127.0.0.1:${ports[0]}`;
          p.https = o.tls ? `127.0.0.1:${ports[1]}` : '';
          p.metricsAddress = `127.0.0.1:${ports[2]}`;
          p.proc = startFlotilla(['ingress', '--server', o.servers.join(','), '--nats', o.nats, '--listen', p.http,
            '--listen-tls', p.https || 'none', '--metrics-address', p.metricsAddress, ...(o.args ?? [])], { logFile: p.logFile });
          return p.proc;
        },
        ready: () => answersReadyz(p.metricsAddress),
      }],
      replan: async () => { ports = [await freePort(), await freePort(), await freePort()]; },
    });
    return p;
  }

  async metrics(): Promise<string> {
    const r = await request(`http://${this.metricsAddress}/metrics`);
    return r.body.text();
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.kill(signal);
  }
}
