// A cluster of real `flotilla raft-kv` processes on loopback, for tests and benchmarks.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { peerTlsArgs } from './peer-tls.ts';
import { type Proc, ProcessStartError, explainConnectError, freePorts, hasExited, startFlotilla, startListening, tempDir, waitFor, waitListening } from './procs.ts';

export interface KvMember {
  id: string;
  peer: string;
  http: string;
  dataDir: string;
  proc?: Proc;
}

export interface KvStatus {
  id: string;
  role: string;
  term: number;
  leader: string;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** Non-zero while the member may not vote (it lost entries up to this index). */
  noVoteUntil: number;
}

export class KvCluster {
  readonly dir: string;
  /** --cluster-token of this cluster: each test cluster has its own cluster ID. */
  readonly token = randomBytes(6).toString('hex');
  members: KvMember[] = [];
  /** Each member's --peer-* flags (peer TLS). */
  private readonly peerArgs = new Map<string, string[]>();

  private constructor(dir: string, private extraArgs: string[], readonly peerPkiDir?: string) {
    this.dir = dir;
  }

  /**
   * Starts n members and returns once every one of them answers and one is
   * leader. A member that could not bind its ports makes the cluster start
   * again on other ports (see startListening).
   */
  static async start(n: number, opts: { args?: string[]; peerTls?: boolean } = {}): Promise<KvCluster> {
    const dir = tempDir('kv');
    // peerTls: mutual TLS between the members, certificates from a CA in <dir>/pki (made by the pki module).
    const c = new KvCluster(dir, opts.args ?? [], opts.peerTls ? join(dir, 'pki') : undefined);
    await c.plan(n);
    await startListening({
      listeners: () => c.members.map((m) => ({ what: c.what(m.id), start: () => c.startMember(m.id), ready: () => c.listening(m.id) })),
      replan: async () => {
        for (const m of c.members) rmSync(m.dataDir, { recursive: true, force: true });
        await c.plan(n);
      },
    });
    await c.waitForLeader();
    return c;
  }

  private async plan(n: number): Promise<void> {
    const ports = await freePorts(n * 2);
    this.members = [];
    for (let i = 0; i < n; i++) {
      const id = String(i + 1);
      this.members.push({
        id, peer: `127.0.0.1:${ports[i * 2]}`, http: `127.0.0.1:${ports[i * 2 + 1]}`, dataDir: join(this.dir, `m${id}`),
      });
      if (this.peerPkiDir && !this.peerArgs.has(id)) this.peerArgs.set(id, await peerTlsArgs(this.peerPkiDir, id));
    }
  }

  /**
   * Whether this member (not just anything on its port) answers: /status
   * names its id and lists its own peer address.
   */
  async listening(id: string): Promise<boolean> {
    const m = this.member(id);
    const s = (await this.status(id)) as (KvStatus & { members?: { id: string; peer: string }[] }) | undefined;
    return !!s && s.id === id && !!s.members?.some((x) => x.id === id && x.peer === m.peer);
  }

  private what(id: string): string {
    return `raft-kv member ${id} (${this.dir})`;
  }

  /** Waits until a member answers; throws with its log tail if it exited. */
  async waitUp(id: string, timeoutMs = 30_000): Promise<void> {
    const m = this.member(id);
    if (!m.proc) throw new Error(`member ${id} was never started`);
    await waitListening(m.proc, this.what(id), () => this.listening(id), timeoutMs);
  }

  member(id: string): KvMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  startMember(id: string): Proc {
    const m = this.member(id);
    const peers = this.members.map((x) => `${x.id}=${x.peer}`).join(',');
    m.proc = startFlotilla(
      ['raft-kv', '--id', id, '--peers', peers, '--http', m.http, '--data', m.dataDir, '--cluster-token', this.token, ...(this.peerArgs.get(id) ?? []), ...this.extraArgs],
      { logFile: join(this.dir, `m${id}.log`) },
    );
    return m.proc;
  }

  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.member(id).proc?.kill(signal);
  }

  async status(id: string): Promise<KvStatus | undefined> {
    try {
      const r = await request(`http://${this.member(id).http}/status`, { headersTimeout: 1000, bodyTimeout: 1000 });
      if (r.statusCode !== 200) {
        await r.body.dump();
        return undefined;
      }
      return (await r.body.json()) as KvStatus;
    } catch {
      return undefined;
    }
  }

  /** Waits until a live member reports itself leader; returns its id. */
  async waitForLeader(exclude: string[] = [], timeoutMs = 20_000): Promise<string> {
    return waitFor('a raft-kv leader', async () => {
      const live = this.members.filter((m) => !exclude.includes(m.id) && m.proc && !hasExited(m.proc));
      if (!live.length) {
        const dead = this.members.find((m) => !exclude.includes(m.id) && m.proc)?.proc;
        if (dead) throw new ProcessStartError('every raft-kv member', 'has exited', dead.logFile, false, dead.logOffset);
      }
      for (const m of this.members) {
        if (exclude.includes(m.id) || !m.proc || m.proc.child.exitCode !== null) continue;
        const s = await this.status(m.id);
        if (s?.role === 'leader') return m.id;
      }
      return undefined;
    }, timeoutMs);
  }

  async put(id: string, key: string, value: string, timeoutMs = 5000): Promise<number> {
    const r = await request(`http://${this.member(id).http}/kv/${encodeURIComponent(key)}`, {
      method: 'PUT', body: value, headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    }).catch((e: unknown) => {
      throw explainConnectError(e, this.what(id), this.member(id).proc);
    });
    const body = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`PUT ${key} via ${id}: ${r.statusCode} ${body}`);
    return (JSON.parse(body) as { index: number }).index;
  }

  async get(id: string, key: string, opts: { stale?: boolean } = {}): Promise<string | undefined> {
    const q = opts.stale ? '?stale=1' : '';
    const r = await request(`http://${this.member(id).http}/kv/${encodeURIComponent(key)}${q}`, { headersTimeout: 5000 }).catch((e: unknown) => {
      throw explainConnectError(e, this.what(id), this.member(id).proc);
    });
    const body = await r.body.text();
    if (r.statusCode === 404) return undefined;
    if (r.statusCode !== 200) throw new Error(`GET ${key} via ${id}: ${r.statusCode} ${body}`);
    return body;
  }

  /** The text of a member's /metrics. */
  async metrics(id: string): Promise<string> {
    const r = await request(`http://${this.member(id).http}/metrics`, { headersTimeout: 5000 });
    return r.body.text();
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
