// Node agent processes (`flotilla agent`) for tests and benchmarks: each on
// its own loopback address and a free port, with its data directory and log.
// The agent's containers outlive it (as they outlive a kubelet), so stop()
// also ends every container process group the agent recorded.
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { processStartTicks } from '../agents/agent/runtime/process.ts';
import { type Proc, freePort, sleep, startFlotilla, startListening, tempDir } from './procs.ts';

export interface AgentOptions {
  servers: readonly string[];
  /** The node name. */
  name: string;
  /** NATS URL for resource metrics (none: the agent publishes none). */
  nats?: string;
  /** The node's loopback address (127.x.y.z). */
  address: string;
  /** Directory for the data dir and the log (default: a temp dir). */
  dir?: string;
  /** Extra flags (--capacity, --pod-cidr, --backoff-initial, …). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface ContainerRecord {
  pid: number;
  podUid: string;
  container: string;
  restartCount: number;
  logFile: string;
}

const live = new Set<AgentProcess>();
let hooked = false;

/** Containers outlive their agent: when the test process ends, however it ends, those of every agent it started go too. */
function installContainerReaper(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const a of live) a.killContainers();
  });
}

export class AgentProcess {
  proc!: Proc;
  port = 0;
  readonly dataDir: string;
  readonly logFile: string;

  private constructor(readonly o: AgentOptions) {
    const dir = o.dir ?? tempDir(`flotilla-agent-${o.name}-`);
    this.dataDir = join(dir, o.name);
    this.logFile = join(dir, `${o.name}.log`);
  }

  /** Starts an agent and returns once it answers /readyz (its node registered, its pods listed). */
  static async start(o: AgentOptions): Promise<AgentProcess> {
    const a = new AgentProcess(o);
    installContainerReaper();
    live.add(a);
    await a.restart();
    return a;
  }

  /** (Re)starts the process (after kill()), on a fresh port. */
  async restart(): Promise<void> {
    this.port = await freePort();
    await startListening({
      listeners: () => [{
        what: `flotilla agent ${this.o.name}`,
        start: () => {
          this.proc = startFlotilla(['agent', '--server', this.o.servers.join(','), '--name', this.o.name, '--address', this.o.address,
            '--port', String(this.port), '--data', this.dataDir, ...(this.o.nats ? ['--nats', this.o.nats] : []), ...(this.o.args ?? [])], { logFile: this.logFile, env: { FLOTILLA_LOG_LEVEL: 'info', ...this.o.env } });
          return this.proc;
        },
        ready: () => this.ready(),
      }],
      replan: async () => { this.port = await freePort(); },
      timeoutMs: 30_000,
    });
  }

  /** With --tls-cert-file the agent serves HTTPS; the harness does not check its certificate. */
  private get tls(): boolean {
    return !!this.o.args?.includes('--tls-cert-file');
  }

  private readonly dispatcher = new Agent({ connect: { rejectUnauthorized: false } });

  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://${this.o.address}:${this.port}`;
  }

  async ready(): Promise<boolean> {
    try {
      const r = await request(`${this.endpoint}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000, dispatcher: this.dispatcher });
      await r.body.dump();
      return r.statusCode === 200;
    } catch {
      return false;
    }
  }

  async metrics(): Promise<string> {
    const r = await request(`${this.endpoint}/metrics`, { headersTimeout: 2000, dispatcher: this.dispatcher });
    return r.body.text();
  }

  /** Kills the agent only (SIGKILL by default): its containers keep running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.kill(signal);
  }

  /** The container processes the agent has recorded on disk (running ones). */
  containers(): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    const pods = join(this.dataDir, 'pods');
    let uids: string[] = [];
    try {
      uids = readdirSync(pods);
    } catch {
      return out;
    }
    for (const uid of uids) {
      let files: string[] = [];
      try {
        files = readdirSync(join(pods, uid, 'records')).filter((f) => f.endsWith('.json'));
      } catch {
        continue;
      }
      for (const f of files) {
        try {
          out.push(JSON.parse(readFileSync(join(pods, uid, 'records', f), 'utf8')) as ContainerRecord);
        } catch {
          /* being replaced */
        }
      }
    }
    return out;
  }

  /** Stops the agent, then every container process group it left. */
  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    const cgroups = this.containers().flatMap((c) => podCgroupDirs(c.pid));
    this.killContainers();
    live.delete(this);
    // The pod cgroups go once their processes have left them.
    for (let i = 0; i < 20 && cgroups.some((d) => existsSync(d)); i++) {
      for (const d of cgroups) {
        try {
          rmdirSync(d);
        } catch {
          /* not empty yet, or gone */
        }
      }
      await sleep(100);
    }
  }

  /** SIGKILL to every container process group the agent recorded. */
  killContainers(): void {
    for (const c of this.containers()) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/** The pod cgroup directories (…/flotilla/<uid>) a container process is in. */
function podCgroupDirs(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').flatMap((line) => {
      const [, ctrls, path] = line.split(':');
      if (!path?.includes('/flotilla/')) return [];
      if (ctrls === '') return [join('/sys/fs/cgroup', path)];
      return ctrls.split(',').filter((c) => !c.startsWith('name=')).map((c) => join('/sys/fs/cgroup', c, path));
    });
  } catch {
    return [];
  }
}

/** Whether a process exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  return processStartTicks(pid) !== undefined;
}
