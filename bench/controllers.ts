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
//   4. the leader failover gap: kill -9 the leading controller manager, at
//      once create a one-replica Deployment, and time the standby's first
//      write (its ReplicaSet), with the default 15 s lease.
import { readFileSync } from 'node:fs';
import { connect } from 'nats';
import { Pool } from 'undici';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { Deployment, Pod, ReplicaSet } from '../agents/informer/types.ts';
import { STREAM, filterSubject } from '../api/events.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { hasExited, sleep, tempDir, waitFor } from '../harness/procs.ts';
import { type Section, fmt } from './report.ts';

const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 5000);
const CALIBRATION_PODS = Number(process.env.BENCH_CALIBRATION_PODS ?? 3000);
const NODES = Number(process.env.BENCH_NODES ?? 10);
const LEASE_S = 15;

const DEPLOYMENTS = resolveKind('deployments')!;
const RS = resolveKind('replicasets')!;

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
  const nc = await connect({ servers: natsUrl });
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
  private readonly cpu0: Map<string, number>;
  readonly marks = new Map<string, number>();
  private timer: NodeJS.Timeout;

  constructor(private readonly procs: () => Map<string, number | undefined>, pods: () => Pod[], image: string, n: number) {
    this.cpu0 = this.cpu();
    this.timer = setInterval(() => {
      const mine = pods().filter((p) => p.spec?.containers[0]?.image === image && !p.metadata.deletionTimestamp);
      const at = (performance.now() - this.t0) / 1000;
      const mark = (k: string, count: number) => { if (count >= n && !this.marks.has(k)) this.marks.set(k, at); };
      mark('created', mine.length);
      mark('bound', mine.filter((p) => p.spec?.nodeName).length);
      mark('ready', mine.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length);
    }, 250);
  }

  private cpu(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, pid] of this.procs()) out.set(k, (out.get(k) ?? 0) + cpuSeconds(pid));
    const self = process.cpuUsage();
    out.set('benchmark process (FakeNodes)', (self.user + self.system) / 1e6);
    return out;
  }

  /** "all created 12.0 s, bound 14.1 s, ready 15.0 s; CPU s: servers 80, …" */
  finish(): string {
    clearInterval(this.timer);
    const cpu = this.cpu();
    const marks = ['created', 'bound', 'ready'].map((k) => `${k} ${this.marks.has(k) ? `${this.marks.get(k)!.toFixed(1)} s` : '—'}`).join(', ');
    const used = [...cpu].map(([k, v]) => `${k} ${(v - (this.cpu0.get(k) ?? 0)).toFixed(0)}`).join(', ');
    return `last pod ${marks}; CPU seconds used: ${used}`;
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

    nodes = new FakeNodes({ client, nats: nats.url, count: NODES, workers: 32 });
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
    const procs = () => new Map<string, number | undefined>([
      ...cluster.members.map((m) => ['3 API servers', m.proc?.pid] as [string, number | undefined]),
      ...nats.members.map((m) => ['nats-server', m.proc?.pid] as [string, number | undefined]),
      ...cms.map((c) => ['2 controller managers', c.proc?.pid] as [string, number | undefined]),
    ]);
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

    // 4. failover gap.
    console.log('failover: kill -9 the leader…');
    supervising = false;
    clearInterval(supervisor);
    const leader = (await Promise.all(cms.map(async (c) => ((await c.leading()) ? c : undefined)))).find(Boolean)!;
    await sleep(3000); // a renewal or two after the rollout's last write
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    await client.create(resourcePath(DEPLOYMENTS, 'default'), {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'probe' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'probe' } }, template: { ...template('v1'), metadata: { labels: { app: 'probe' } } } },
    });
    const probeRS = await waitFor('the standby\'s first write', async () => (await client.list<ReplicaSet>(resourcePath(RS, 'default'), { labelSelector: 'app=probe' })).items[0], 120_000, 20);
    const gapMs = Date.parse(probeRS.metadata.creationTimestamp!) - killedAt;
    const gapPollMs = Date.now() - killedAt;
    console.log(`  ${gapMs} ms (seen after ${gapPollMs} ms)`);

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
      [`leader failover gap (kill -9 → the standby's first write), lease ${LEASE_S} s`, `${(gapMs / 1000).toFixed(1)} s`, `≤ ${LEASE_S + 2} s`],
    ];
    const body = [
      `Three \`flotilla server\` processes, one nats-server, two \`flotilla controllers --controllers replicaset,deployment\` processes (default leader election: 15 s lease, 10 s renew deadline, 2 s retry); ${NODES} FakeNodes in the benchmark process bind pods and make them Running and Ready (32 concurrent writes). Writes are counted as events on the JetStream stream (every API write is one event).`,
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
