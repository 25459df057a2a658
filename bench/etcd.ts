// A 3-member etcd (Debian's etcd-server) on loopback, the yardstick for the
// Raft library. Default durability (WAL fsync); clients use the JSON gateway.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { type Proc, freePorts, startProcess, tempDir, waitFor } from '../harness/procs.ts';

export interface EtcdMember {
  name: string;
  client: string;
  peer: string;
  dataDir: string;
  proc?: Proc;
}

export function ensureEtcd(): string | undefined {
  const bin = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p));
  if (bin) return bin;
  if (process.getuid?.() === 0) {
    try {
      execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server', { stdio: 'inherit' });
    } catch {
      return undefined;
    }
    return existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined;
  }
  return undefined;
}

export class EtcdCluster {
  members: EtcdMember[] = [];
  private constructor(readonly bin: string, readonly dir: string) {}

  static async start(bin: string, n = 3): Promise<EtcdCluster> {
    const c = new EtcdCluster(bin, tempDir('etcd'));
    const ports = await freePorts(n * 2);
    for (let i = 0; i < n; i++) {
      const name = `e${i + 1}`;
      c.members.push({
        name, client: `127.0.0.1:${ports[i * 2]}`, peer: `127.0.0.1:${ports[i * 2 + 1]}`, dataDir: join(c.dir, name),
      });
    }
    for (const m of c.members) c.startMember(m.name);
    await c.waitForLeader();
    return c;
  }

  startMember(name: string): void {
    const m = this.members.find((x) => x.name === name)!;
    const cluster = this.members.map((x) => `${x.name}=http://${x.peer}`).join(',');
    m.proc = startProcess(this.bin, [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', `http://${m.client}`, '--advertise-client-urls', `http://${m.client}`,
      '--listen-peer-urls', `http://${m.peer}`, '--initial-advertise-peer-urls', `http://${m.peer}`,
      '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'flotilla-bench',
      '--log-level', 'warn',
    ], { logFile: join(this.dir, `${m.name}.log`), env: { ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch } });
  }

  /** The name of the member that reports itself leader. */
  async leader(exclude: string[] = []): Promise<string | undefined> {
    for (const m of this.members) {
      if (exclude.includes(m.name) || !m.proc || m.proc.child.exitCode !== null) continue;
      try {
        const r = await request(`http://${m.client}/v3/maintenance/status`, { method: 'POST', body: '{}', headersTimeout: 1000, bodyTimeout: 1000 });
        const s = (await r.body.json()) as { header?: { member_id?: string }; leader?: string };
        if (s.header?.member_id && s.header.member_id === s.leader) return m.name;
      } catch {
        /* not up */
      }
    }
    return undefined;
  }

  async waitForLeader(exclude: string[] = []): Promise<string> {
    return waitFor('an etcd leader', () => this.leader(exclude), 30_000);
  }

  async put(member: EtcdMember, key: string, value: Buffer, timeoutMs: number): Promise<void> {
    const r = await request(`http://${member.client}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: value.toString('base64') }),
      headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    });
    const body = await r.body.text();
    if (r.statusCode !== 200 || body.includes('"error"')) throw new Error(`etcd put: ${r.statusCode} ${body}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
