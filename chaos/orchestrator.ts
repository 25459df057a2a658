// The orchestrator under chaos: two controller managers and two schedulers
// (leader-elected, short Leases so a killed leader is replaced within
// seconds) and `flotilla agent --runtime sim` processes of hollow nodes, all
// against the chaos cluster's servers. A replica that exits (a leader that
// lost its Lease exits on purpose, as kube-controller-manager does) is
// restarted, as `flotilla up` would, unless a nemesis holds it down.
import { join } from 'node:path';
import { AgentProcess } from '../harness/agent.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { hasExited, tempDir } from '../harness/procs.ts';
import { SchedulerProcess } from '../harness/scheduler.ts';
import { LivenessMonitor, diagEnv } from './liveness.ts';

export interface OrchestratorOptions {
  servers: readonly string[];
  nats: string;
  /** Hollow-node agent processes, and nodes in each. */
  agents?: number;
  nodesPerAgent?: number;
  /** Capacity of each hollow node. */
  capacity?: string;
  /** Where the liveness monitor reports an unresponsive component as it finds it. */
  log?: (line: string) => void;
}

const LEADER_ELECTION = ['--leader-elect-lease-duration', '4s', '--leader-elect-renew-deadline', '3s', '--leader-elect-retry-period', '500ms'];

export class Orchestrator {
  /** Components a nemesis keeps down for now: not restarted by the supervisor. */
  readonly held = new Set<string>();
  private timer?: NodeJS.Timeout;
  private readonly restarting = new Set<string>();
  /** Controller managers and schedulers that stay alive but stop answering (chaos/liveness.ts). */
  readonly liveness: LivenessMonitor;

  private constructor(
    readonly controllers: ControllerManager[],
    readonly schedulers: SchedulerProcess[],
    readonly agents: AgentProcess[],
    readonly dir: string,
    log?: (line: string) => void,
  ) {
    this.liveness = new LivenessMonitor([
      ...controllers.map((c) => ({ name: c.o.id, replica: () => c })),
      ...schedulers.map((s) => ({ name: s.id, replica: () => s.replica })),
    ], { log });
  }

  static async start(o: OrchestratorOptions): Promise<Orchestrator> {
    const dir = tempDir('chaos-orchestrator');
    // Addresses and pod IPs of this run only (other clusters may share the loopback).
    const octet = 20 + Math.floor(Math.random() * 200);
    const controllers = await Promise.all([1, 2].map((i) => ControllerManager.start({
      servers: o.servers, nats: o.nats, id: `controllers-${i}`, dir, env: diagEnv(),
      args: [...LEADER_ELECTION, '--node-monitor-period', '1s', '--node-monitor-grace-period', '10s',
        '--cluster-cidr', `127.${150 + (octet % 50)}.0.0/16`, '--pod-gc-period', '5s', '--pod-gc-quarantine', '10s'],
    })));
    const schedulers = await Promise.all([1, 2].map((i) => SchedulerProcess.start({ servers: o.servers, nats: o.nats, id: `scheduler-${i}`, dir, env: diagEnv(), args: LEADER_ELECTION })));
    const agents = await Promise.all(Array.from({ length: o.agents ?? 2 }, (_, i) => AgentProcess.start({
      servers: o.servers, name: `sim-${i + 1}`, address: `127.0.${octet}.${1 + i * 50}`, dir,
      args: ['--runtime', 'sim', '--count', String(o.nodesPerAgent ?? 4), '--name-prefix', `hollow-${i + 1}-`, '--start-latency', '300ms',
        '--lease-renew-interval', '2s', '--node-status-update-frequency', '5s', '--capacity', o.capacity ?? 'cpu=2,memory=4Gi,pods=16'],
    })));
    const orch = new Orchestrator(controllers, schedulers, agents, dir, o.log);
    orch.timer = setInterval(() => void orch.restartExited(), 500);
    orch.timer.unref();
    orch.liveness.start();
    return orch;
  }

  private components(): { name: string; exited: () => boolean; restart: () => Promise<void> }[] {
    return [
      ...this.controllers.map((c) => ({ name: c.o.id, exited: () => hasExited(c.proc), restart: () => c.restart() })),
      ...this.schedulers.map((s) => ({ name: s.id, exited: () => s.exited(), restart: () => s.replica.restart() })),
      ...this.agents.map((a) => ({ name: a.o.name, exited: () => hasExited(a.proc), restart: () => a.restart() })),
    ];
  }

  /** Restarts what exited (and is not held down). */
  async restartExited(): Promise<void> {
    await Promise.all(this.components().filter((c) => c.exited() && !this.held.has(c.name) && !this.restarting.has(c.name)).map(async (c) => {
      this.restarting.add(c.name);
      try {
        await c.restart();
      } catch {
        /* again at the next tick */
      } finally {
        this.restarting.delete(c.name);
      }
    }));
  }

  /** The controller manager or scheduler replica leading now. */
  async leader(kind: 'controllers' | 'scheduler'): Promise<ControllerManager | undefined> {
    const replicas = kind === 'controllers' ? this.controllers : this.schedulers.map((s) => s.replica);
    for (const r of replicas) if (!hasExited(r.proc) && await r.leading()) return r;
    return undefined;
  }

  /** Releases every hold and brings everything back up. */
  async settle(): Promise<void> {
    this.held.clear();
    for (let i = 0; i < 20 && this.components().some((c) => c.exited()); i++) {
      await this.restartExited();
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  logs(): string {
    return join(this.dir);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.liveness.stop();
    await Promise.all([
      ...this.controllers.map((c) => c.stop('SIGKILL')),
      ...this.schedulers.map((s) => s.replica.stop('SIGKILL')),
      ...this.agents.map((a) => a.stop()),
    ]);
  }
}
