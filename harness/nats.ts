// Real `nats-server -js` processes on loopback (one, or a 3-server cluster
// with JetStream), for tests, chaos runs and benchmarks.
import { rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { type Proc, freePorts, logTail, startListening, startProcess, tempDir, waitListening } from './procs.ts';

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

  /**
   * Starts n servers and returns once each one accepts connections. One that
   * could not bind a port makes them all start again on other ports.
   */
  static async start(n = 1): Promise<NatsServers> {
    const s = new NatsServers(tempDir('nats'));
    await s.plan(n);
    await startListening({
      listeners: () => s.members.map((m) => ({ what: s.what(m.name), start: () => s.startMember(m.name), ready: () => s.accepts(m.name) })),
      replan: async () => {
        for (const m of s.members) rmSync(m.dir, { recursive: true, force: true });
        await s.plan(n);
      },
    });
    return s;
  }

  private async plan(n: number): Promise<void> {
    const ports = await freePorts(n * 2);
    this.members = [];
    for (let i = 0; i < n; i++) {
      const m: NatsMember = { name: `n${i + 1}`, port: ports[i * 2], clusterPort: ports[i * 2 + 1], dir: join(this.dir, `n${i + 1}`), conf: join(this.dir, `n${i + 1}.conf`) };
      this.members.push(m);
    }
    for (const m of this.members) {
      const routes = this.members.filter((x) => x !== m).map((x) => `nats-route://127.0.0.1:${x.clusterPort}`);
      writeFileSync(m.conf, [
        `server_name: ${m.name}`,
        `listen: 127.0.0.1:${m.port}`,
        `jetstream { store_dir: "${m.dir}" }`,
        ...(n > 1 ? [`cluster { name: flotilla, listen: 127.0.0.1:${m.clusterPort}, routes: [${routes.join(', ')}] }`] : []),
        '',
      ].join('\n'));
    }
  }

  private what(name: string): string {
    return `nats-server ${name} (${this.dir})`;
  }

  /**
   * Whether this server (not just anything on its port) is ready: its own
   * "Server is ready" log line (tagged with its pid), and its client port
   * accepts connections.
   */
  /** Processes seen saying "Server is ready": a long-running one's line has scrolled out of any log tail since. */
  private readonly seenReady = new WeakSet<Proc>();

  private async accepts(name: string): Promise<boolean> {
    const m = this.members.find((x) => x.name === name)!;
    const p = m.proc;
    if (!p) return false;
    if (!this.seenReady.has(p)) {
      if (!new RegExp(`^\\[${p.pid}\\] .*Server is ready`, 'm').test(logTail(p.logFile, 200, p.logOffset, 1 << 20))) return false;
      this.seenReady.add(p);
    }
    return new Promise<boolean>((res) => {
      const sock = createConnection({ host: '127.0.0.1', port: m.port }, () => {
        sock.destroy();
        res(true);
      });
      sock.on('error', () => res(false));
    });
  }

  get urls(): string[] {
    return this.members.map((m) => `nats://127.0.0.1:${m.port}`);
  }

  get url(): string {
    return this.urls.join(',');
  }

  startMember(name: string): Proc {
    const m = this.members.find((x) => x.name === name)!;
    m.proc = startProcess('nats-server', ['-c', m.conf], { logFile: join(this.dir, `${name}.log`) });
    return m.proc;
  }

  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.members.find((x) => x.name === name)?.proc?.kill(signal);
  }

  /** Waits until the servers accept connections; one that exited or could not bind fails at once, with its log tail. */
  async waitUp(names = this.members.map((m) => m.name)): Promise<void> {
    for (const name of names) {
      const m = this.members.find((x) => x.name === name)!;
      if (!m.proc) throw new Error(`nats-server ${name} was never started`);
      await waitListening(m.proc, this.what(name), () => this.accepts(name), 20_000);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
