// A cluster of real `flotilla server` processes on loopback ports, for
import { randomBytes } from 'node:crypto';
// integration tests, chaos runs and benchmarks.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, type Dispatcher, request } from 'undici';
import type { ClusterStatus } from '../agents/client/api.ts';
import { kubeconfigYaml } from '../agents/client/kubeconfig.ts';
import { peerTlsArgs } from './peer-tls.ts';
import { type Proc, freePorts, startFlotilla, startListening, tempDir, waitFor, waitListening } from './procs.ts';

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

export interface ClusterOptions {
  /** Extra `flotilla server` arguments for every member. */
  args?: string[];
  dir?: string;
  /** See FlotillaCluster.adminToken. */
  adminToken?: string;
  /** See FlotillaCluster.tls (off by default: the servers speak plain HTTP). */
  tls?: ClusterTls;
  /**
   * Mutual TLS between the Raft members (off by default: plain TCP). Each
   * member gets pkiDir/peer-<id>.crt from the CA in pkiDir (the `tls` one's
   * if given, else <dir>/pki), made by the pki module.
   */
  peerTls?: boolean | { pkiDir: string };
}

/**
 * HTTPS for a test cluster, from a directory laid out as `flotilla certs`
 * makes it: the servers get --tls-cert-file pkiDir/apiserver.crt,
 * --tls-private-key-file pkiDir/apiserver.key and --client-ca-file
 * pkiDir/ca.crt; the harness' own requests and the kubeconfig trust ca.crt
 * and present pkiDir/<client>.crt (default "admin").
 */
export interface ClusterTls {
  pkiDir: string;
  client?: string;
}

export class FlotillaCluster {
  members: ServerMember[] = [];
  readonly dir: string;

  /** Per-member --peers (the chaos suite routes each link through its own proxy). */
  peersFor?: (id: string) => string;

  /** --cluster-token of this cluster: each test cluster has its own Raft cluster ID. */
  readonly token = randomBytes(8).toString('hex');

  /**
   * A bearer token the harness sends with its own requests (readiness, the
   * default namespace) and writes into the kubeconfig: set it when the
   * servers run with --authorization-mode RBAC and a --token-auth-file
   * that gives this token to an administrator.
   */
  readonly adminToken?: string;

  /** With peer TLS: where the CA and the members' peer certificates are. */
  readonly peerPkiDir?: string;
  /** Each member's --peer-* flags (peer TLS). */
  private readonly peerArgs = new Map<string, string[]>();

  /** With TLS: the PKI directory, and the dispatcher (CA + client certificate) of the harness' own requests. */
  readonly tls?: Required<ClusterTls>;
  private readonly dispatcher?: Dispatcher;

  private constructor(dir: string, private readonly args: string[], adminToken?: string, tls?: ClusterTls, peerTls?: ClusterOptions['peerTls']) {
    this.dir = dir;
    this.adminToken = adminToken;
    if (peerTls) this.peerPkiDir = resolve(typeof peerTls === 'object' ? peerTls.pkiDir : tls?.pkiDir ?? join(dir, 'pki'));
    if (tls) {
      this.tls = { pkiDir: resolve(tls.pkiDir), client: tls.client ?? 'admin' };
      const f = this.tlsFiles;
      this.dispatcher = new Agent({ connect: { ca: readFileSync(f.ca), cert: readFileSync(f.cert), key: readFileSync(f.key) } });
      this.args = [...args, '--tls-cert-file', f.serverCert, '--tls-private-key-file', f.serverKey, '--client-ca-file', f.ca];
    }
  }

  /** The files of the TLS option (flotilla certs' layout). */
  get tlsFiles(): { ca: string; cert: string; key: string; serverCert: string; serverKey: string } {
    if (!this.tls) throw new Error('this cluster runs without TLS');
    const d = this.tls.pkiDir;
    const c = this.tls.client;
    return {
      ca: join(d, 'ca.crt'), cert: join(d, `${c}.crt`), key: join(d, `${c}.key`),
      serverCert: join(d, 'apiserver.crt'), serverKey: join(d, 'apiserver.key'),
    };
  }

  /** The Authorization header of the harness' own requests. */
  get authHeaders(): Record<string, string> {
    return this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
  }

  /** Members' ids and addresses, before anything starts (to set up proxies). */
  static async plan(n = 3, opts: ClusterOptions = {}): Promise<FlotillaCluster> {
    const c = new FlotillaCluster(opts.dir ?? tempDir('cluster'), opts.args ?? [], opts.adminToken, opts.tls, opts.peerTls);
    await c.replan(n);
    return c;
  }

  private async replan(n = this.members.length): Promise<void> {
    const ports = await freePorts(n * 2);
    this.members = [];
    for (let i = 0; i < n; i++) this.members.push(this.memberAt(`s${i + 1}`, ports[i * 2], ports[i * 2 + 1]));
    for (const m of this.members) await this.issuePeerCert(m.id);
  }

  /** With peer TLS: member id's certificate (kept if it exists) and flags. */
  private async issuePeerCert(id: string): Promise<void> {
    if (this.peerPkiDir && !this.peerArgs.has(id)) this.peerArgs.set(id, await peerTlsArgs(this.peerPkiDir, id));
  }

  static async start(n = 3, opts: ClusterOptions = {}): Promise<FlotillaCluster> {
    const c = await FlotillaCluster.plan(n, opts);
    await c.startAll();
    return c;
  }

  /**
   * Starts every member and returns once each one answers as itself (its
   * ports are bound) and the cluster is ready. A member that could not bind
   * a port makes the cluster start again on other ports, unless the
   * addresses were handed to someone (peersFor): then it fails, with the log.
   */
  async startAll(readyTimeoutMs = 30_000): Promise<void> {
    await startListening({
      listeners: () => this.members.map((m) => ({ what: this.what(m.id), start: () => this.startMember(m.id), ready: () => this.listening(m.id) })),
      replan: this.peersFor ? undefined : async () => {
        for (const m of this.members) rmSync(m.dataDir, { recursive: true, force: true });
        await this.replan();
      },
      timeoutMs: readyTimeoutMs,
    });
    await this.waitReady(undefined, readyTimeoutMs);
    this.writeKubeconfig();
  }

  private what(id: string): string {
    return `flotilla server ${id} (${this.dir})`;
  }

  /**
   * Whether this member (not just anything on its port) answers:
   * /cluster/status names its id and lists its own peer address.
   */
  async listening(id: string): Promise<boolean> {
    const m = this.member(id);
    const s = await this.status(id);
    return !!s && s.id === id && !!s.members?.some((x) => x.id === id && x.peer === m.peer);
  }

  /** Waits until a started member listens; throws with its log tail if it exited or could not bind. */
  async waitUp(id: string, timeoutMs = 30_000): Promise<void> {
    const m = this.member(id);
    if (!m.proc) throw new Error(`server ${id} was never started`);
    await waitListening(m.proc, this.what(id), () => this.listening(id), timeoutMs);
  }

  private memberAt(id: string, peerPort: number, apiPort: number): ServerMember {
    return {
      id, peer: `127.0.0.1:${peerPort}`, api: `127.0.0.1:${apiPort}`, url: `${this.tls ? 'https' : 'http'}://127.0.0.1:${apiPort}`,
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
      ['server', '--id', id, '--peers', peers, '--api', m.api, '--data', m.dataDir, '--cluster-token', this.token,
        ...(this.peerArgs.get(id) ?? []), ...this.args, ...m.extraArgs, ...extra],
      { logFile: join(this.dir, `${id}.log`) },
    );
    return m.proc;
  }

  /** Starts a new server that joins the running cluster (then call add-member on the cluster). */
  async addServer(id: string): Promise<ServerMember> {
    const [p, a] = await freePorts(2);
    const m = this.memberAt(id, p, a);
    m.extraArgs = ['--join'];
    await this.issuePeerCert(id);
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
      const r = await request(`${this.member(id).url}/cluster/status`, { dispatcher: this.dispatcher, headersTimeout: 2000, bodyTimeout: 2000 });
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

  /** Every live server answers /readyz (a named one that exited fails at once, with its log tail). */
  async waitReady(ids = this.alive().map((m) => m.id), timeoutMs = 30_000): Promise<void> {
    // A member that is not up yet (just restarted) must first listen.
    await Promise.all(ids.map((id) => this.waitUp(id, timeoutMs)));
    await waitFor('servers ready', async () => {
      for (const id of ids) {
        try {
          const r = await request(`${this.member(id).url}/readyz`, { dispatcher: this.dispatcher, headersTimeout: 1000 });
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
      const r = await request(`${this.member(ids[0]).url}/api/v1/namespaces/default`, { dispatcher: this.dispatcher, headers: this.authHeaders });
      await r.body.dump();
      return r.statusCode === 200;
    }, timeoutMs);
  }

  writeKubeconfig(): void {
    const url = this.members[0].url;
    if (this.tls) {
      const f = this.tlsFiles;
      writeFileSync(this.kubeconfig, kubeconfigYaml({ server: url, ca: f.ca, cert: f.cert, key: f.key, token: this.adminToken, user: 'admin' }), { mode: 0o600 });
      return;
    }
    writeFileSync(this.kubeconfig, [
      'apiVersion: v1', 'kind: Config', 'current-context: flotilla',
      'clusters:', '- name: flotilla', '  cluster:', `    server: ${url}`, '    insecure-skip-tls-verify: true',
      'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', '    user: admin', '    namespace: default',
      'users:', '- name: admin', this.adminToken ? `  user:\n    token: ${this.adminToken}` : '  user: {}', '',
    ].join('\n'));
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.kill('SIGKILL')));
  }
}
