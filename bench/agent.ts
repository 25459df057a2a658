// `npm run bench -- agent`: the node agent. Pod start latency (created with
// spec.nodeName → Ready, as this process sees it through a watch) p50/p99
// over BENCH_AGENT_PODS (100) pods on 2 process-runtime agents; each agent's
// CPU while idle with its pods running and its RSS; and a sim-runtime agent
// with BENCH_HOLLOW_NODES (1,000) hollow nodes: its CPU while pods churn, and
// its RSS. Where pod start time goes comes from the agents' own "pod
// started" log lines (the phases of each start, pod-worker.ts).
import { readFileSync } from 'node:fs';

type Phases = { queued: number; prepare: number; spawn: number; ready: number; statusWrite: number; total: number };

/** The agents' "pod started" lines: when each pod was seen and how long each phase of its start took. */
function startPhases(logFiles: string[]): Map<string, { seenAt: number; phases: Phases }> {
  const out = new Map<string, { seenAt: number; phases: Phases }>();
  for (const f of logFiles) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line.includes('"pod started"')) continue;
      try {
        const o = JSON.parse(line) as { pod: string; seenAt: number; startPhasesMs: Phases };
        out.set(o.pod.replace(/^default\//, ''), { seenAt: o.seenAt, phases: o.startPhasesMs });
      } catch {
        /* not one of ours */
      }
    }
  }
  return out;
}
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import { RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import type { Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess } from '../harness/agent.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { sleep, waitFor } from '../harness/procs.ts';
import { percentile } from './load.ts';
import { type Section, fmt } from './report.ts';

const PODS = Number(process.env.BENCH_AGENT_PODS ?? 100);
const HOLLOW = Number(process.env.BENCH_HOLLOW_NODES ?? 1000);
const POD = kindByName('pods')!;
const PHASE_NAMES = {
  seen: 'created → the agent sees it (API write, watch)',
  queued: 'seen → its worker syncs',
  prepare: 'sync → spawn (pod IP, env, volumes, cgroup)',
  spawn: 'spawn (until the process runs)',
  ready: 'running → Ready decided (probes)',
  statusWrite: 'Ready → its status written (PATCH through Raft)',
  watched: 'written → this watch sees it',
} as const;

/** CPU seconds a process has used (utime + stime). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function cpuShare(pids: number[], seconds: number): Promise<number[]> {
  const before = pids.map(cpuSeconds);
  await sleep(seconds * 1000);
  return pids.map((p, i) => (cpuSeconds(p) - before[i]) / seconds);
}

export async function benchAgent(): Promise<Section> {
  const nats = await NatsServers.start(1);
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  const c = new ApiClient(cluster.urls);
  const ctx = newControllerContext({ client: c, nats: nats.url, config: { clusterCIDR: '127.96.0.0/11' } });
  const ipam = new NodeIpamController(ctx);
  // Every pod mounts its service-account volume, whose ca.crt is the namespace's kube-root-ca.crt.
  const rootCA = new RootCAPublisher(ctx);
  await ctx.informers.start();
  const abort = new AbortController();
  const ipamRun = Promise.all([ipam.run(abort.signal), rootCA.run(abort.signal)]);
  const agents = await Promise.all([1, 2].map((i) => AgentProcess.start({ servers: cluster.urls, name: `bench-node-${i}`, address: `127.0.9.${i}` })));
  try {
    await waitFor('pod CIDRs', async () => {
      const nodes = (await c.list<{ spec?: { podCIDR?: string } }>(resourcePath(kindByName('nodes')!))).items;
      return nodes.filter((n) => n.spec?.podCIDR).length >= 2;
    }, 30_000);
    // Pod start latency: each pod's create → the first watch event with Ready=True.
    const created = new Map<string, number>();
    // The same moments on the wall clock, to line them up with the agents' log times.
    const createdWall = new Map<string, number>();
    const readyWall = new Map<string, number>();
    const readyAt = new Map<string, number>();
    const watchAbort = new AbortController();
    const list = await c.list<Pod>(resourcePath(POD, 'default'));
    const watching = c.watch<Pod>(resourcePath(POD, 'default'), { resourceVersion: list.metadata.resourceVersion }, (e) => {
      const p = e.object;
      if (!readyAt.has(p.metadata.name) && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')) {
        readyAt.set(p.metadata.name, performance.now());
        readyWall.set(p.metadata.name, Date.now());
      }
    }, watchAbort.signal).catch(() => {});
    // One pod at a time first: the agent's own start path, without a queue of API writes in front of it.
    const single: number[] = [];
    for (let i = 0; i < 10; i++) {
      const name = `single-${i}`;
      const t0 = performance.now();
      await c.create(resourcePath(POD, 'default'), {
        apiVersion: 'v1', kind: 'Pod', metadata: { name },
        spec: { nodeName: `bench-node-${(i % 2) + 1}`, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '100000'] }] },
      });
      await waitFor(`${name} Ready`, () => readyAt.has(name), 30_000, 5);
      single.push(readyAt.get(name)! - t0);
      created.set(name, t0);
    }
    single.sort((a, b) => a - b);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= PODS) return;
        const name = `bench-${i}`;
        created.set(name, performance.now());
        createdWall.set(name, Date.now());
        await c.create(resourcePath(POD, 'default'), {
          apiVersion: 'v1', kind: 'Pod', metadata: { name },
          spec: { nodeName: `bench-node-${(i % 2) + 1}`, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '100000'] }] },
        });
      }
    }));
    await waitFor('every pod Ready', () => readyAt.size >= PODS + single.length, 120_000, 100);
    const lat = [...created].filter(([n]) => n.startsWith('bench-')).map(([n, t]) => readyAt.get(n)! - t).sort((a, b) => a - b);
    // Where the time of the burst's starts went: create → the agent sees it (API write + watch), the agent's phases, its status write → this watch.
    const phases = startPhases(agents.map((a) => a.logFile));
    const burst = [...createdWall.keys()].filter((n) => phases.has(n));
    const phaseRows = (['seen', 'queued', 'prepare', 'spawn', 'ready', 'statusWrite', 'watched'] as const).map((k) => {
      const xs = burst.map((n) => {
        const p = phases.get(n)!;
        if (k === 'seen') return p.seenAt - createdWall.get(n)!;
        if (k === 'watched') return readyWall.get(n)! - (p.seenAt + p.phases.total);
        return p.phases[k];
      }).sort((a, b) => a - b);
      return `| ${PHASE_NAMES[k]} | ${fmt(percentile(xs, 50))} ms | ${fmt(percentile(xs, 99))} ms |`;
    });
    await sleep(3000);
    const idle = await cpuShare(agents.map((a) => a.proc.pid), 10);
    const rss = agents.map((a) => rssMiB(a.proc.pid));
    watchAbort.abort();
    await watching;
    await Promise.all([...created.keys()].map((n) => c.delete(resourcePath(POD, 'default', n), { gracePeriodSeconds: 1 })));
    await waitFor('pods gone', async () => (await c.list<Pod>(resourcePath(POD, 'default'))).items.length === 0, 120_000, 500);

    // Hollow nodes: one process, HOLLOW nodes, pods churning through them.
    const sim = await AgentProcess.start({ servers: cluster.urls, name: 'bench-sim', address: '127.0.9.100', args: ['--runtime', 'sim', '--count', String(HOLLOW), '--name-prefix', 'hollow-', '--start-latency', '200ms'] });
    agents.push(sim);
    await sleep(5000);
    const churn = (async () => {
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => c.create(resourcePath(POD, 'default'), {
          apiVersion: 'v1', kind: 'Pod', metadata: { name: `h-${round}-${i}` }, spec: { nodeName: `hollow-${(i * 7) % HOLLOW}`, containers: [{ name: 'c', image: 'x' }] },
        })));
        await sleep(2000);
        await Promise.all(Array.from({ length: 100 }, (_, i) => c.delete(resourcePath(POD, 'default', `h-${round}-${i}`))));
      }
    })();
    const [simCpu] = await cpuShare([sim.proc.pid], 10);
    await churn;
    const simRss = rssMiB(sim.proc.pid);
    const body = [
      '| figure | value |', '|---|---|',
      `| pod start, one pod at a time (10 pods), median | ${fmt(percentile(single, 50))} ms |`,
      `| pod start (created → Ready), ${PODS} pods created 8 at a time on 2 agents, p50 | ${fmt(percentile(lat, 50))} ms |`,
      `| pod start p99 | ${fmt(percentile(lat, 99))} ms |`,
      `| idle agent with ${(PODS + single.length) / 2} pods: CPU | ${idle.map((x) => `${(x * 100).toFixed(1)} %`).join(', ')} of a core |`,
      `| agent RSS with ${(PODS + single.length) / 2} pods | ${rss.map((x) => `${fmt(x)} MiB`).join(', ')} |`,
      `| ${HOLLOW} hollow nodes in one process, 100 pods churning: CPU | ${(simCpu * 100).toFixed(1)} % of a core |`,
      `| ${HOLLOW} hollow nodes: RSS | ${fmt(simRss)} MiB |`,
      '',
      `Where the burst's start time goes (${burst.length} pods; from the agents' "pod started" log lines):`,
      '',
      '| phase | p50 | p99 |', '|---|---|---|',
      ...phaseRows,
      '',
      'Goals (issue 11): pod start p99 ≤ 1 s; 1,000 hollow nodes per process (BENCH_HOLLOW_NODES, 1,000 by default) at < 50 % of a core; an idle agent with 50 pods < 2 % of a core.',
    ].join('\n');
    return { name: 'agent', title: 'Node agent', body };
  } finally {
    for (const a of agents) await a.stop();
    abort.abort();
    await ipamRun.catch(() => {});
    await stopControllerContext(ctx).catch(() => {});
    await c.close();
    await cluster.stop();
    await nats.stop();
  }
}
