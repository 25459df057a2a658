// Real `nats-server -js` processes on loopback (one, or a 3-server cluster
// with JetStream), for tests, chaos runs and benchmarks.
import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { type Proc, freePorts, startProcess, tempDir, waitFor } from './procs.ts';

export interface NatsMember {
  name: string;
  port: number;
  clusterPort: number;
  dir: string;
  conf: string;
  proc?: Proc;
}

export class NatsServers {
  members: NatsMember[] = [];
  private constructor(readonly dir: string) {}

  static async start(n = 1): Promise<NatsServers> {
    const s = new NatsServers(tempDir('nats'));
    const ports = await freePorts(n * 2);
    for (let i = 0; i < n; i++) {
      const m: NatsMember = { name: `n${i + 1}`, port: ports[i * 2], clusterPort: ports[i * 2 + 1], dir: join(s.dir, `n${i + 1}`), conf: join(s.dir, `n${i + 1}.conf`) };
      s.members.push(m);
    }
    for (const m of s.members) {
      const routes = s.members.filter((x) => x !== m).map((x) => `nats-route://127.0.0.1:${x.clusterPort}`);
      writeFileSync(m.conf, [
        `server_name: ${m.name}`,
        `listen: 127.0.0.1:${m.port}`,
        `jetstream { store_dir: "${m.dir}" }`,
        ...(n > 1 ? [`cluster { name: flotilla, listen: 127.0.0.1:${m.clusterPort}, routes: [${routes.join(', ')}] }`] : []),
        '',
      ].join('\n'));
    }
    for (const m of s.members) s.startMember(m.name);
    await s.waitUp();
    return s;
  }

  get urls(): string[] {
    return this.members.map((m) => `nats://127.0.0.1:${m.port}`);
  }

  get url(): string {
    return this.urls.join(',');
  }

  startMember(name: string): void {
    const m = this.members.find((x) => x.name === name)!;
    m.proc = startProcess('nats-server', ['-c', m.conf], { logFile: join(this.dir, `${name}.log`) });
  }

  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.members.find((x) => x.name === name)?.proc?.kill(signal);
  }

  async waitUp(names = this.members.map((m) => m.name)): Promise<void> {
    for (const name of names) {
      const m = this.members.find((x) => x.name === name)!;
      await waitFor(`nats-server ${name}`, () => new Promise<boolean>((res) => {
        const s = createConnection({ host: '127.0.0.1', port: m.port }, () => {
          s.destroy();
          res(true);
        });
        s.on('error', () => res(false));
      }), 20_000);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
