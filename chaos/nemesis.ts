// Nemeses: the faults a chaos run injects, scheduled from the run's seed.
// Each records what it did and when; faults that take the leader away are
// marked `failover` so the report can show each one's write unavailability.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { ChaosCluster } from './cluster.ts';
import type { Rng } from '../harness/rng.ts';
import type { Orchestrator } from './orchestrator.ts';

export interface FaultRecord {
  /** ms since the start of the run. */
  at: number;
  kind: string;
  detail: string;
  failover?: boolean;
  /** Wall-clock time (ms since the epoch), to line faults up with the event stream's timestamps. */
  wall?: number;
  /** An involuntary disruption of pods (a killed agent) from `wall` for this long. */
  disruptionMs?: number;
}

export interface NemesisContext {
  cluster: ChaosCluster;
  rng: Rng;
  now: () => number;
  record: (f: Omit<FaultRecord, 'at'>) => void;
  running: () => boolean;
  /** Controller managers, schedulers and hollow-node agents (the orchestrator scenarios). */
  orch?: Orchestrator;
}

type Nemesis = (ctx: NemesisContext) => Promise<void>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function shuffle<T>(xs: T[], rng: Rng): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function leaderOrUndefined(ctx: NemesisContext): Promise<string | undefined> {
  try {
    return await ctx.cluster.servers.leader();
  } catch {
    return undefined;
  }
}

async function killAndRestart(ctx: NemesisContext, id: string, failover: boolean, what: string): Promise<void> {
  const s = ctx.cluster.servers;
  ctx.record({ kind: 'kill', detail: `${what} ${id} (SIGKILL)`, failover });
  await s.kill(id);
  await sleep(ctx.rng.range(500, 2500));
  s.startMember(id);
  ctx.record({ kind: 'restart', detail: id });
  await s.waitReady([id], 60_000).catch(() => {});
}

const leaderKill: Nemesis = async (ctx) => {
  const leader = await leaderOrUndefined(ctx);
  if (leader) await killAndRestart(ctx, leader, true, 'leader');
};

const randomKill: Nemesis = async (ctx) => {
  const id = ctx.cluster.ids[ctx.rng.int(ctx.cluster.ids.length)];
  const leader = await leaderOrUndefined(ctx);
  await killAndRestart(ctx, id, id === leader, id === leader ? 'member (the leader)' : 'member');
};

const pause: Nemesis = async (ctx) => {
  const leader = await leaderOrUndefined(ctx);
  if (!leader) return;
  const proc = ctx.cluster.servers.member(leader).proc!;
  // Longer than the election timeout: a long GC pause.
  const ms = ctx.rng.range(1000, 3000);
  ctx.record({ kind: 'pause', detail: `SIGSTOP leader ${leader} for ${ms} ms`, failover: true });
  proc.child.kill('SIGSTOP');
  await sleep(ms);
  proc.child.kill('SIGCONT');
  ctx.record({ kind: 'resume', detail: `SIGCONT ${leader}` });
};

const partition: Nemesis = async (ctx) => {
  const ids = ctx.cluster.ids;
  const leader = await leaderOrUndefined(ctx);
  const kind = ctx.rng.int(3);
  const ms = ctx.rng.range(1500, 4000);
  if (kind === 0 && leader) {
    ctx.cluster.partition([[leader], ids.filter((i) => i !== leader)]);
    ctx.record({ kind: 'partition', detail: `leader ${leader} isolated for ${ms} ms`, failover: true });
  } else if (kind === 1 || !leader) {
    const shuffled = shuffle(ids, ctx.rng);
    const minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2));
    ctx.cluster.partition([minority, shuffled.slice(minority.length)]);
    ctx.record({ kind: 'partition', detail: `minority [${minority.join(',')}] | majority for ${ms} ms`, failover: leader !== undefined && minority.includes(leader) });
  } else {
    // A bridge: two members cannot see each other, the third sees both.
    const [a, b] = shuffle(ids, ctx.rng);
    ctx.cluster.cutPairs([[a, b]]);
    ctx.record({ kind: 'partition', detail: `bridge: ${a} x ${b} for ${ms} ms`, failover: a === leader || b === leader });
  }
  await sleep(ms);
  ctx.cluster.heal();
  ctx.record({ kind: 'heal', detail: 'all links restored' });
};

const natsRestart: Nemesis = async (ctx) => {
  const m = ctx.cluster.nats.members[ctx.rng.int(ctx.cluster.nats.members.length)];
  ctx.record({ kind: 'nats-kill', detail: `nats-server ${m.name} (SIGKILL)` });
  await ctx.cluster.nats.kill(m.name);
  await sleep(ctx.rng.range(1000, 3000));
  ctx.cluster.nats.startMember(m.name);
  await ctx.cluster.nats.waitUp([m.name]);
  ctx.record({ kind: 'nats-restart', detail: m.name });
};

let extraMember = 0;
const membership: Nemesis = async (ctx) => {
  const s = ctx.cluster.servers;
  const id = `x${++extraMember}`;
  const m = await s.addServer(id);
  ctx.record({ kind: 'member-add', detail: `${id} joins (learner, then voter)` });
  // Membership changes need a member's admin token (in its data directory).
  const token = readFileSync(join(s.members[0].dataDir, 'admin-token'), 'utf8').trim();
  const post = async (method: 'POST' | 'DELETE', path: string, body?: unknown) => {
    for (let i = 0; i < 20 && ctx.running(); i++) {
      const url = s.members.filter((x) => !x.id.startsWith('x'))[ctx.rng.int(3)].url;
      try {
        const r = await request(`${url}${path}`, { method, body: body ? JSON.stringify(body) : undefined, headers: { authorization: `Bearer ${token}` }, headersTimeout: 90_000, bodyTimeout: 90_000 });
        await r.body.dump();
        if (r.statusCode === 200) return true;
      } catch {
        /* retry */
      }
      await sleep(500);
    }
    return false;
  };
  const added = await post('POST', '/cluster/members', { id, peer: m.peer });
  await sleep(ctx.rng.range(1000, 3000));
  if (added) {
    const removed = await post('DELETE', `/cluster/members/${id}`);
    ctx.record({ kind: 'member-remove', detail: `${id} ${removed ? 'removed' : 'could not be removed'}` });
    if (!removed) return;
  }
  await s.kill(id);
  s.members = s.members.filter((x) => x.id !== id);
};

/** Kills the leading controller manager or scheduler (SIGKILL) and restarts it 1–4 s later; its standby takes over meanwhile. */
const replicaKill = (kind: 'controllers' | 'scheduler'): Nemesis => async (ctx) => {
  const orch = ctx.orch!;
  const replicas = kind === 'controllers' ? orch.controllers : orch.schedulers.map((s) => s.replica);
  const victim = (await orch.leader(kind)) ?? replicas[ctx.rng.int(replicas.length)];
  const leading = await victim.leading();
  orch.held.add(victim.o.id);
  ctx.record({ kind: `${kind}-kill`, detail: `${victim.o.id}${leading ? ' (the leader)' : ''} (SIGKILL)` });
  await victim.stop('SIGKILL');
  await sleep(ctx.rng.range(1000, 4000));
  orch.held.delete(victim.o.id);
  await orch.restartExited();
  ctx.record({ kind: `${kind}-restart`, detail: victim.o.id });
};

/**
 * Kills a hollow-node agent process (SIGKILL) for 2–25 s: shorter than the
 * node monitor grace period (its nodes stay Ready), or long enough for its
 * nodes to go Unknown and, past the toleration, for their pods to be evicted.
 */
const agentKill: Nemesis = async (ctx) => {
  const orch = ctx.orch!;
  const a = orch.agents[ctx.rng.int(orch.agents.length)];
  const ms = ctx.rng.range(2000, 25_000);
  orch.held.add(a.o.name);
  const wall = Date.now();
  await a.kill('SIGKILL');
  ctx.record({ kind: 'agent-kill', detail: `${a.o.name} (SIGKILL) for ${ms} ms` });
  await sleep(ms);
  orch.held.delete(a.o.name);
  await orch.restartExited();
  // Pods on its nodes are disrupted until a while after it is back (status catches up).
  ctx.record({ kind: 'agent-restart', detail: a.o.name, wall, disruptionMs: Date.now() - wall + 10_000 });
};

export const NEMESES: Record<string, Nemesis> = {
  'leader-kill': leaderKill,
  'random-kill': randomKill,
  pause,
  partition,
  'nats-restart': natsRestart,
  membership,
  'controller-kill': replicaKill('controllers'),
  'scheduler-kill': replicaKill('scheduler'),
  'agent-kill': agentKill,
};

export const SCENARIOS: Record<string, string[]> = {
  'leader-kill': ['leader-kill'],
  partition: ['partition'],
  pause: ['pause'],
  'nats-restart': ['nats-restart'],
  membership: ['membership'],
  'controller-kill': ['controller-kill'],
  'scheduler-kill': ['scheduler-kill'],
  'agent-kill': ['agent-kill'],
  mixed: ['leader-kill', 'random-kill', 'pause', 'partition', 'nats-restart', 'membership', 'controller-kill', 'scheduler-kill', 'agent-kill'],
};

/** Scenarios that run the orchestrator (controllers, schedulers, hollow nodes) and its workload and checkers. */
export const ORCHESTRATOR_SCENARIOS = new Set(['controller-kill', 'scheduler-kill', 'agent-kill', 'mixed']);

/** Runs the scenario's nemeses one at a time with quiet gaps, until `running()` is false. */
export async function runNemesis(scenario: string, ctx: NemesisContext): Promise<void> {
  const names = SCENARIOS[scenario];
  if (!names) throw new Error(`unknown scenario "${scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  await sleep(ctx.rng.range(500, 1500));
  while (ctx.running()) {
    const name = names[ctx.rng.int(names.length)];
    await NEMESES[name](ctx);
    await sleep(ctx.rng.range(1000, 2500));
  }
}
