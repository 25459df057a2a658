// `npm run bench -- controllers`: the Deployment and ReplicaSet controllers
// at scale, in two real `flotilla controllers` processes (leader-elected)
// against three `flotilla server` processes and NATS, with pods bound and
// made Running/Ready by FakeNodes (no scheduler or node agent yet):
//
//   1. the API's own write rate at full speed, measured first in this run
//      (pod creates from 96 concurrent clients over all three servers);
//   2. a Deployment of BENCH_REPLICAS (5,000) pods from create to available:
//      time, and API writes per pod counted on the event stream (every API
//      write is one event), by resource; the time is compared with what the
//      API needs for that many writes at the measured rate;
//   3. a rolling update of it (new template) to complete;
//   4. the leader failover gap, three times: kill -9 the leading controller
//      manager and time the standby's first write (its Lease acquisition)
//      and its first controller write (the ReplicaSet of a Deployment
//      created right after the kill), with the default 15 s lease.
import { readFileSync } from 'node:fs';
import { connect } from 'nats';
import { Pool } from 'undici';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { Deployment, Lease, Pod, ReplicaSet } from '../agents/informer/types.ts';
import { STREAM, filterSubject } from '../api/events.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { hasExited, sleep, tempDir, waitFor } from '../harness/procs.ts';
import { type Section, fmt } from './report.ts';
import { natsServerOptions } from '../api/nats-url.ts';

const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 5000);
const CALIBRATION_PODS = Number(process.env.BENCH_CALIBRATION_PODS ?? 3000);
const NODES = Number(process.env.BENCH_NODES ?? 10);
const LEASE_S = 15;
const FAILOVER_TRIALS = Number(process.env.BENCH_FAILOVER_TRIALS ?? 3);

const DEPLOYMENTS = resolveKind('deployments')!;
const RS = resolveKind('replicasets')!;
const LEASES = resolveKind('leases')!;

const podBody = (name: string) => JSON.stringify({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'calibration' } },
  // Bound to a node nobody runs: FakeNodes leaves these alone.
  spec: { nodeName: 'calibration-node', containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
});

/** Pod creates per second from 96 concurrent clients spread over the servers. */
async function calibrate(urls: readonly string[], n: number): Promise<number> {
  const pools = urls.map((u) => new Pool(u, { connections: 32 }));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 96 }, async (_, w) => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      // A create that timed out (504) may have been applied: 409 on the retry means it was.
      for (let attempt = 0; ; attempt++) {
        const r = await pools[w % pools.length]!.request({ path: '/api/v1/namespaces/default/pods', method: 'POST', body: podBody(`calibration-${i}`), headers: { 'content-type': 'application/json' }, headersTimeout: 60_000 });
        await r.body.dump();
        if (r.statusCode === 201 || r.statusCode === 409) break;
        if (attempt > 5) throw new Error(`calibration create: ${r.statusCode}`);
      }
    }
  }));
  const s = (performance.now() - t0) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  return n / s;
}

/** Events (= API writes) in the stream so far, in total and by resource. */
async function writeCounts(natsUrl: string): Promise<Map<string, number>> {
  const nc = await connect(natsServerOptions(natsUrl));
  try {
    const jsm = await nc.jetstreamManager();
    const out = new Map<string, number>();
    out.set('all', (await jsm.streams.info(STREAM)).state.messages);
    for (const [group, resource] of [['', 'pods'], ['apps', 'replicasets'], ['apps', 'deployments'], ['', 'events'], ['coordination.k8s.io', 'leases']] as const) {
      const info = await jsm.streams.info(STREAM, { subjects_filter: filterSubject(group, resource, undefined) });
      out.set(resource, Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0));
    }
    return out;
  } finally {
    await nc.close();
  }
}

const diff = (a: Map<string, number>, b: Map<string, number>) => new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)]));

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * Where a phase's time goes: when the last pod was created, bound and made
 * ready (from FakeNodes' cache) against the moment the Deployment was
 * complete, and the CPU each process used meanwhile.
 */
class Profile {
  private readonly t0 = performance.now();
  /** CPU seconds by pid: at the start (absent for processes started since) and last seen. */
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, { group: string; cpu: number }>();
  private readonly self0 = process.cpuUsage();
  readonly marks = new Map<string, number>();
  private timer: NodeJS.Timeout;

  constructor(private readonly procs: () => [string, number | undefined][], pods: () => Pod[], image: string, n: number) {
    for (const [, pid] of procs()) if (pid) this.first.set(pid, cpuSeconds(pid));
    this.timer = setInterval(() => {
      this.sampleCpu();
      const mine = pods().filter((p) => p.spec?.containers[0]?.image === image && !p.metadata.deletionTimestamp);
      const at = (performance.now() - this.t0) / 1000;
      const mark = (k: string, count: number) => { if (count >= n && !this.marks.has(k)) this.marks.set(k, at); };
      mark('created', mine.length);
      mark('bound', mine.filter((p) => p.spec?.nodeName).length);
      mark('ready', mine.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length);
    }, 250);
  }

  private sampleCpu(): void {
    for (const [group, pid] of this.procs()) {
      const cpu = cpuSeconds(pid);
      if (pid && cpu > 0) this.last.set(pid, { group, cpu });
    }
  }

  /** "last pod created 12.0 s, bound 14.1 s, ready 15.0 s; CPU seconds used: servers 80, …" */
  finish(): string {
    this.sampleCpu();
    clearInterval(this.timer);
    const used = new Map<string, number>();
    for (const [pid, { group, cpu }] of this.last) used.set(group, (used.get(group) ?? 0) + cpu - (this.first.get(pid) ?? 0));
    const self = process.cpuUsage(this.self0);
    used.set('benchmark process (FakeNodes)', (self.user + self.system) / 1e6);
    const marks = ['created', 'bound', 'ready'].map((k) => `${k} ${this.marks.has(k) ? `${this.marks.get(k)!.toFixed(1)} s` : '—'}`).join(', ');
    return `last pod ${marks}; CPU seconds used: ${[...used].map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`;
  }
}

export async function benchControllers(): Promise<Section> {
  const nats = await NatsServers.start(1);
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  const client = new ApiClient(cluster.urls);
  const dir = tempDir('bench-controllers');
  const cms: ControllerManager[] = [];
  let nodes: FakeNodes | undefined;
  try {
    console.log(`calibrating: ${CALIBRATION_PODS} pod creates at full speed…`);
    const rate = await calibrate(cluster.urls, CALIBRATION_PODS);
    console.log(`  ${fmt(rate)} writes/s`);

    nodes = new FakeNodes({ client, nats: nats.url, count: NODES, workers: 64 });
    await nodes.start();
    for (const id of ['cm-a', 'cm-b']) {
      cms.push(await ControllerManager.start({ servers: cluster.urls, nats: nats.url, id, dir, args: ['--controllers', 'replicaset,deployment'] }));
    }
    // Supervise them as `flotilla up` does: a manager that lost its Lease exits and is restarted as a standby.
    let supervising = true;
    let restarts = 0;
    const supervisor = setInterval(() => {
      for (const c of cms) {
        if (supervising && hasExited(c.proc)) {
          restarts++;
          console.log(`  controller manager ${c.o.id} exited (${restarts}); restarting it`);
          void c.restart().catch(() => {});
        }
      }
    }, 1000);
    await waitFor('a leading controller manager', async () => (await Promise.all(cms.map((c) => c.leading()))).some(Boolean), 60_000, 200);

    const get = () => client.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', 'web'));
    const template = (image: string) => ({ metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image }] } });
    const rolledOut = (image: string) => waitFor(`web rolled out to ${image}`, async () => {
      const d = await get();
      const s = d.status ?? {};
      return d.spec?.template?.spec?.containers[0]?.image === image && s.observedGeneration === d.metadata.generation
        && s.updatedReplicas === REPLICAS && s.replicas === REPLICAS && s.availableReplicas === REPLICAS ? d : undefined;
    }, 30 * 60_000, 100);

    // 2. create → available.
    console.log(`Deployment of ${REPLICAS} replicas: create → available…`);
    const procs = (): [string, number | undefined][] => [
      ...cluster.members.map((m) => ['3 API servers', m.proc?.pid] as [string, number | undefined]),
      ...nats.members.map((m) => ['nats-server', m.proc?.pid] as [string, number | undefined]),
      ...cms.map((c) => ['controller managers', c.proc?.pid] as [string, number | undefined]),
    ];
    const podsNow = () => nodes!.pods.list('default');
    const w0 = await writeCounts(nats.url);
    const p0 = new Profile(procs, podsNow, 'v1', REPLICAS);
    const t0 = performance.now();
    await client.create(resourcePath(DEPLOYMENTS, 'default'), {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
      spec: { replicas: REPLICAS, selector: { matchLabels: { app: 'web' } }, template: template('v1') },
    });
    await rolledOut('v1');
    const createS = (performance.now() - t0) / 1000;
    const createProfile = p0.finish();
    const createWrites = diff(w0, await writeCounts(nats.url));
    console.log(`  ${createS.toFixed(1)} s, ${createWrites.get('all')} writes`);

    // 3. rolling update.
    console.log('rolling update…');
    const w1 = await writeCounts(nats.url);
    const p1 = new Profile(procs, podsNow, 'v2', REPLICAS);
    const t1 = performance.now();
    await client.patch(resourcePath(DEPLOYMENTS, 'default', 'web'), { spec: { template: template('v2') } }, 'application/merge-patch+json');
    await rolledOut('v2');
    const rollS = (performance.now() - t1) / 1000;
    const rollProfile = p1.finish();
    const rollWrites = diff(w1, await writeCounts(nats.url));
    console.log(`  ${rollS.toFixed(1)} s, ${rollWrites.get('all')} writes`);

    // 4. failover gap, FAILOVER_TRIALS times: kill -9 the leader; the standby's first write is its
    // Lease acquisition (acquireTime, written by the standby); its first controller write is the
    // ReplicaSet of a Deployment created right after the kill.
    supervising = false;
    clearInterval(supervisor);
    const gaps: { lease: number; write: number }[] = [];
    for (let trial = 0; trial < FAILOVER_TRIALS; trial++) {
      console.log(`failover ${trial + 1}: kill -9 the leader…`);
      const leader = await waitFor('a leader', async () => (await Promise.all(cms.map(async (c) => ((await c.leading()) ? c : undefined)))).find(Boolean), 60_000, 200);
      const standby = cms.find((c) => c !== leader)!;
      await waitFor('the standby synced', async () => (await standby.health())?.synced === true, 60_000, 200);
      await sleep(2500);
      const killedAt = Date.now();
      await leader.stop('SIGKILL');
      const probe = `probe-${trial}`;
      await client.create(resourcePath(DEPLOYMENTS, 'default'), {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: probe },
        spec: { replicas: 1, selector: { matchLabels: { app: probe } }, template: { ...template('v1'), metadata: { labels: { app: probe } } } },
      });
      await waitFor('the standby\'s first controller write', async () => (await client.list<ReplicaSet>(resourcePath(RS, 'default'), { labelSelector: `app=${probe}` })).items[0], 120_000, 20);
      const write = Date.now() - killedAt;
      const lease = await client.get<Lease>(resourcePath(LEASES, 'kube-system', 'flotilla-controller-manager'));
      const acquired = Date.parse(lease.spec?.acquireTime ?? '') - killedAt;
      gaps.push({ lease: acquired, write });
      console.log(`  Lease taken after ${acquired} ms, first ReplicaSet after ${write} ms`);
      await leader.restart();
    }
    const leaseGaps = gaps.map((g) => g.lease).sort((a, b) => a - b);
    const writeGaps = gaps.map((g) => g.write).sort((a, b) => a - b);
    const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;

    const perPod = (w: Map<string, number>) => (w.get('all')! / REPLICAS).toFixed(2);
    const breakdown = (w: Map<string, number>) => ['pods', 'replicasets', 'deployments', 'events', 'leases'].map((k) => `${k} ${fmt(w.get(k) ?? 0)}`).join(', ');
    const ideal = createWrites.get('all')! / rate;
    const idealRoll = rollWrites.get('all')! / rate;
    const rows = [
      ['API write rate at full speed (pod creates, 96 clients, this run)', `${fmt(rate)}/s`, ''],
      [`create → ${fmt(REPLICAS)} available`, `${createS.toFixed(1)} s`, `≤ 1.3 × ${ideal.toFixed(1)} s = ${(1.3 * ideal).toFixed(1)} s`],
      ['… time ÷ time the API needs for its writes', `${(createS / ideal).toFixed(2)}×`, '≤ 1.3×'],
      ['… API writes per pod', `${perPod(createWrites)} (${fmt(createWrites.get('all')!)} writes: ${breakdown(createWrites)})`, '≤ 4'],
      [`rolling update of ${fmt(REPLICAS)} (25 % surge / 25 % unavailable)`, `${rollS.toFixed(1)} s`, `API time ${idealRoll.toFixed(1)} s`],
      ['… time ÷ time the API needs for its writes', `${(rollS / idealRoll).toFixed(2)}×`, ''],
      ['… API writes per replaced pod', `${perPod(rollWrites)} (${fmt(rollWrites.get('all')!)} writes: ${breakdown(rollWrites)})`, ''],
      ['controller manager exits during create and update (Lease lost, restarted)', String(restarts), '0'],
      [`leader failover gap (kill -9 → the standby's first write: its Lease acquisition), lease ${LEASE_S} s, ${FAILOVER_TRIALS} trials`, `median ${(median(leaseGaps) / 1000).toFixed(1)} s (${leaseGaps.map((g) => (g / 1000).toFixed(1)).join(', ')})`, `≤ ${LEASE_S + 2} s`],
      ['… kill -9 → the standby\'s first controller write (a new Deployment\'s ReplicaSet)', `median ${(median(writeGaps) / 1000).toFixed(1)} s (${writeGaps.map((g) => (g / 1000).toFixed(1)).join(', ')})`, ''],
    ];
    const body = [
      `Three \`flotilla server\` processes, one nats-server, two \`flotilla controllers --controllers replicaset,deployment\` processes (default leader election: 15 s lease, 10 s renew deadline, 2 s retry); ${NODES} FakeNodes in the benchmark process bind pods and make them Running and Ready (64 concurrent writes). Writes are counted as events on the JetStream stream (every API write is one event).`,
      '',
      '| measurement | result | goal |',
      '|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `Create profile: ${createProfile}.`,
      '',
      `Rolling update profile: ${rollProfile}.`,
    ].join('\n');
    return { name: 'controllers', title: `Deployment and ReplicaSet controllers: ${fmt(REPLICAS)} replicas`, body };
  } finally {
    await Promise.allSettled(cms.map((c) => c.stop('SIGKILL')));
    await nodes?.stop().catch(() => {});
    await client.close();
    await cluster.stop();
    await nats.stop();
  }
}
