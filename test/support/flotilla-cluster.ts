// A cluster of real `flotilla server` processes on loopback ports, for
// integration tests, chaos runs and benchmarks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { ClusterStatus } from '../../agents/client/api.ts';
import { type Proc, freePorts, startFlotilla, tempDir, waitFor } from './procs.ts';

export interface ServerMember {
  id: string;
  peer: string;
  api: string;
  url: string;
  dataDir: string;
  proc?: Proc;
  extraArgs: string[];
}

export type { ClusterStatus };

export class FlotillaCluster {
  members: ServerMember[] = [];
  readonly dir: string;

  /** Per-member --peers (the chaos suite routes each link through its own proxy). */
  peersFor?: (id: string) => string;

  private constructor(dir: string, private readonly args: string[]) {
    this.dir = dir;
  }

  /** Members' ids and addresses, before anything starts (to set up proxies). */
  static async plan(n = 3, opts: { args?: string[]; dir?: string } = {}): Promise<FlotillaCluster> {
    const c = new FlotillaCluster(opts.dir ?? tempDir('cluster'), opts.args ?? []);
    const ports = await freePorts(n * 2);
    for (let i = 0; i < n; i++) c.members.push(c.memberAt(`s${i + 1}`, ports[i * 2], ports[i * 2 + 1]));
    return c;
  }

  static async start(n = 3, opts: { args?: string[]; dir?: string } = {}): Promise<FlotillaCluster> {
    const c = await FlotillaCluster.plan(n, opts);
    await c.startAll();
    return c;
  }

  async startAll(readyTimeoutMs = 30_000): Promise<void> {
    const c = this;
    for (const m of c.members) c.startMember(m.id);
    await c.waitReady(undefined, readyTimeoutMs);
    c.writeKubeconfig();
  }

  private memberAt(id: string, peerPort: number, apiPort: number): ServerMember {
    return {
      id, peer: `127.0.0.1:${peerPort}`, api: `127.0.0.1:${apiPort}`, url: `http://127.0.0.1:${apiPort}`,
      dataDir: join(this.dir, id), extraArgs: [],
    };
  }

  get urls(): string[] {
    return this.members.map((m) => m.url);
  }

  get kubeconfig(): string {
    return join(this.dir, 'kubeconfig');
  }

  member(id: string): ServerMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  startMember(id: string, extra: string[] = []): Proc {
    const m = this.member(id);
    // Like etcd's --initial-cluster: a joining member is told where the others are.
    const peers = this.peersFor?.(id) ?? this.members.map((x) => `${x.id}=${x.peer}`).join(',');
    m.proc = startFlotilla(
      ['server', '--id', id, '--peers', peers, '--api', m.api, '--data', m.dataDir, ...this.args, ...m.extraArgs, ...extra],
      { logFile: join(this.dir, `${id}.log`) },
    );
    return m.proc;
  }

  /** Starts a new server that joins the running cluster (then call add-member on the cluster). */
  async addServer(id: string): Promise<ServerMember> {
    const [p, a] = await freePorts(2);
    const m = this.memberAt(id, p, a);
    m.extraArgs = ['--join'];
    this.members.push(m);
    m.proc = this.startMember(id);
    return m;
  }

  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.member(id).proc?.kill(signal);
  }

  alive(): ServerMember[] {
    return this.members.filter((m) => m.proc && m.proc.child.exitCode === null && m.proc.child.signalCode === null);
  }

  async status(id: string): Promise<ClusterStatus | undefined> {
    try {
      const r = await request(`${this.member(id).url}/cluster/status`, { headersTimeout: 2000, bodyTimeout: 2000 });
      if (r.statusCode !== 200) {
        await r.body.dump();
        return undefined;
      }
      return (await r.body.json()) as ClusterStatus;
    } catch {
      return undefined;
    }
  }

  async leader(exclude: string[] = []): Promise<string> {
    return waitFor('a leader', async () => {
      for (const m of this.alive()) {
        if (exclude.includes(m.id)) continue;
        const s = await this.status(m.id);
        if (s?.role === 'leader') return m.id;
      }
      return undefined;
    }, 30_000);
  }

  /** Every live server answers /readyz. */
  async waitReady(ids = this.alive().map((m) => m.id), timeoutMs = 30_000): Promise<void> {
    await waitFor('servers ready', async () => {
      for (const id of ids) {
        try {
          const r = await request(`${this.member(id).url}/readyz`, { headersTimeout: 1000 });
          await r.body.dump();
          if (r.statusCode !== 200) return false;
        } catch {
          return false;
        }
      }
      return true;
    }, timeoutMs);
    // The system namespaces exist once the leader has created them.
    await waitFor('default namespace', async () => {
      const r = await request(`${this.member(ids[0]).url}/api/v1/namespaces/default`);
      await r.body.dump();
      return r.statusCode === 200;
    }, timeoutMs);
  }

  writeKubeconfig(): void {
    const url = this.members[0].url;
    writeFileSync(this.kubeconfig, [
      'apiVersion: v1', 'kind: Config', 'current-context: flotilla',
      'clusters:', '- name: flotilla', '  cluster:', `    server: ${url}`, '    insecure-skip-tls-verify: true',
      'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', '    user: anonymous', '    namespace: default',
      'users:', '- name: anonymous', '  user: {}', '',
    ].join('\n'));
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
