// The Job and TTL-after-finished controllers: the pod arithmetic as tables
// (outcomes, index lists, back-off), then Jobs against a real server and
// NATS with FakeNodes running and finishing their pods.
import t from 'tap';
import { resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { GarbageCollector } from '../agents/controllers/garbagecollector/controller.ts';
import { JobController } from '../agents/controllers/job/controller.ts';
import {
  JOB_COMPLETION_INDEX, JOB_TRACKING_FINALIZER, backoffDelay, completionIndex, formatIndexes, matchPodFailurePolicy, nextCreateTime, parseIndexes, podOutcome,
} from '../agents/controllers/job/pods.ts';
import { TTLAfterFinishedController, jobExpiry } from '../agents/controllers/ttlafterfinished/controller.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { Condition, Job, Pod } from '../agents/informer/types.ts';
import { waitFor } from '../harness/procs.ts';
import { startWorkloadCluster } from './support/workload-cluster.ts';

const pod = (o: { phase?: string; deleting?: boolean; index?: string; finishedAt?: string } = {}): Pod => ({
  metadata: {
    name: 'p', ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:10Z' } : {}),
    ...(o.index !== undefined ? { annotations: { [JOB_COMPLETION_INDEX]: o.index } } : {}),
  },
  spec: { containers: [] },
  status: {
    phase: o.phase ?? 'Running',
    containerStatuses: o.finishedAt ? [{ name: 'c', ready: false, restartCount: 0, state: { terminated: { finishedAt: o.finishedAt } } }] : [],
  },
} as Pod);
const job = (spec: Record<string, unknown> = {}) => ({ metadata: { name: 'j' }, spec } as Job);

t.test('pod outcomes, indexes and back-off', async (t) => {
  t.equal(podOutcome(pod({ phase: 'Succeeded' }), job()), 'succeeded');
  t.equal(podOutcome(pod({ phase: 'Failed' }), job()), 'failed');
  t.equal(podOutcome(pod(), job()), undefined, 'running');
  t.equal(podOutcome(pod({ deleting: true }), job()), 'failed', 'deleted before finishing counts as failed');
  t.equal(podOutcome(pod({ deleting: true }), job({ podReplacementPolicy: 'Failed' })), undefined, 'unless only Failed pods are replaced');
  t.equal(podOutcome(pod({ deleting: true, phase: 'Succeeded' }), job()), 'succeeded');

  t.equal(completionIndex(pod({ index: '2' }), 3), 2);
  t.equal(completionIndex(pod({ index: '3' }), 3), undefined, 'out of range');
  t.equal(completionIndex(pod({ index: '-1' }), 3), undefined);
  t.equal(completionIndex(pod({ index: 'x' }), 3), undefined);
  t.equal(completionIndex(pod(), 3), undefined);

  const cases: [number[], string][] = [[[], ''], [[0], '0'], [[0, 1, 2], '0-2'], [[5, 1, 3, 2], '1-3,5'], [[0, 2, 4, 5, 6, 9], '0,2,4-6,9']];
  for (const [idx, s] of cases) {
    t.equal(formatIndexes(idx), s, `format ${JSON.stringify(idx)}`);
    t.same([...parseIndexes(s, 100)].sort((a, b) => a - b), [...new Set(idx)].sort((a, b) => a - b), `parse "${s}"`);
  }
  t.same([...parseIndexes('1-3,7', 3)], [1, 2], 'indexes beyond completions are dropped');

  const base = 10_000;
  const max = 360_000;
  const delays: [number, number][] = [[0, 0], [1, 10_000], [2, 20_000], [3, 40_000], [6, 320_000], [7, 360_000], [100, 360_000]];
  for (const [n, d] of delays) t.equal(backoffDelay(n, base, max), d, `${n} failures: ${d} ms`);

  const at = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}Z`;
  const T = (s: number) => Date.parse(at(s));
  t.equal(nextCreateTime([pod({ phase: 'Succeeded', finishedAt: at(5) })], job(), base, max, T(9)), 0, 'no failure: now');
  t.equal(nextCreateTime([pod({ phase: 'Failed', finishedAt: at(5) })], job(), base, max, T(9)), T(5) + 10_000, 'one failure: 10 s after it');
  t.equal(nextCreateTime([pod({ phase: 'Failed', finishedAt: at(5) }), pod({ phase: 'Failed', finishedAt: at(7) })], job(), base, max, T(9)), T(7) + 20_000, 'two: 20 s after the last');
  t.equal(nextCreateTime([pod({ phase: 'Failed', finishedAt: at(5) }), pod({ phase: 'Succeeded', finishedAt: at(6) }), pod({ phase: 'Failed', finishedAt: at(7) })], job(), base, max, T(9)),
    T(7) + 10_000, 'a success resets the count');
});

t.test('podFailurePolicy matching', async (t) => {
  const rules = [
    { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
    { action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [3, 4] } },
    { action: 'Count', onExitCodes: { operator: 'NotIn', values: [3, 4, 42] } },
    { action: 'Ignore', onExitCodes: { operator: 'In', values: [42] } },
  ];
  const j = job({ podFailurePolicy: { rules } });
  const failed = (containers: [string, number][], conditions: { type: string; status: string }[] = []) => ({
    metadata: { name: 'p', namespace: 'ns' },
    spec: { containers: [] },
    status: { phase: 'Failed', conditions, containerStatuses: containers.map(([name, exitCode]) => ({ name, ready: false, restartCount: 0, state: { terminated: { exitCode } } })) },
  } as unknown as Pod);
  const cases: [string, Pod, string | undefined][] = [
    ['exit 3 in main: FailJob', failed([['main', 3]]), 'FailJob'],
    ['exit 3 in a sidecar: the FailJob rule names main; NotIn [3,4,42] does not match 3 either, In [42] neither', failed([['side', 3]]), undefined],
    ['exit 1: Count', failed([['main', 1]]), 'Count'],
    ['exit 42: Ignore', failed([['main', 42]]), 'Ignore'],
    ['exit 0 never matches, even NotIn', failed([['main', 0]]), undefined],
    ['a DisruptionTarget condition first: Ignore', failed([['main', 3]], [{ type: 'DisruptionTarget', status: 'True' }]), 'Ignore'],
    ['a False condition does not match', failed([['main', 42]], [{ type: 'DisruptionTarget', status: 'False' }]), 'Ignore'],
  ];
  for (const [what, p, want] of cases) t.equal(matchPodFailurePolicy(j, p)?.action, want, what);
  t.equal(matchPodFailurePolicy(j, failed([['main', 4]]))?.message, 'Container main for pod ns/p failed with exit code 4 matching FailJob rule at index 1');
  t.equal(matchPodFailurePolicy(job(), failed([['main', 4]])), undefined, 'no policy');
});

t.test('jobExpiry', async (t) => {
  const done = (type: string, ttl?: number) => ({
    metadata: { name: 'j' }, spec: ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl },
    status: { conditions: [{ type, status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' }] as Condition[] },
  } as Job);
  t.equal(jobExpiry(done('Complete', 30)), Date.parse('2026-01-01T00:00:30Z'));
  t.equal(jobExpiry(done('Failed', 0)), Date.parse('2026-01-01T00:00:00Z'));
  t.equal(jobExpiry(done('Complete')), undefined, 'no TTL');
  t.equal(jobExpiry(done('Suspended', 5)), undefined, 'not finished');
});

const JOBS = resolveKind('jobs')!;
const PODS = resolveKind('pods')!;

t.test('Jobs against a real server', async (t) => {
  const c = await startWorkloadCluster(t, [(ctx) => new JobController(ctx), (ctx) => new TTLAfterFinishedController(ctx), (ctx) => new GarbageCollector(ctx)], {
    config: { jobBackoffBaseMs: 1500, jobBackoffMaxMs: 5000 },
  });
  const { client, nodes } = c;
  const template = { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } };
  const mkJob = (name: string, spec: Record<string, unknown>) => client.create<Job>(resourcePath(JOBS, 'default'), {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name }, spec: { template, ...spec },
  });
  const getJob = (name: string) => client.get<Job>(resourcePath(JOBS, 'default', name));
  const condition = (name: string, type: string) => waitFor(`job ${name} ${type}`, async () => {
    const j = await getJob(name);
    return j.status?.conditions?.some((x) => x.type === type && x.status === 'True') ? j : undefined;
  }, 30_000);
  const running = (uid: string, n: number) => waitFor(`${n} running pods`, async () => {
    const ps = (await c.podsOf('default', uid)).filter((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp);
    return ps.length >= n ? ps : undefined;
  }, 20_000);

  // Every Job event: counts never exceed what is possible, and a pod uid is never both counted and uncounted twice.
  const jobs = new Informer<Job>({ client, nats: c.nats.url, kind: JOBS, name: 'test-jobs' });
  const violations: string[] = [];
  const completed = new Set<string>();
  jobs.addEventHandler({
    onUpdate: (_o, j) => {
      if (j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True')) completed.add(j.metadata.name);
      const s = j.status as Record<string, any> | undefined;
      const completions = j.spec?.completions as number | undefined;
      if (completions != null && (s?.succeeded ?? 0) > completions) violations.push(`${j.metadata.name}: succeeded ${s?.succeeded} > ${completions}`);
      if ((s?.active ?? 0) > (j.spec?.parallelism ?? 1)) violations.push(`${j.metadata.name}: active ${s?.active} > parallelism`);
    },
  });
  await jobs.start();
  t.teardown(() => jobs.stop());

  t.test('completions 4, parallelism 2: two at a time, each success counted once, then Complete', async (t) => {
    const j = await mkJob('pi', { completions: 4, parallelism: 2 });
    const uid = j.metadata.uid!;
    const seen = new Set<string>();
    while (seen.size < 4) {
      const ps = (await running(uid, 1)).filter((p) => !seen.has(p.metadata.name));
      t.ok((await c.podsOf('default', uid)).filter((p) => p.status?.phase !== 'Succeeded').length <= 2, 'never more than parallelism unfinished');
      for (const p of ps) {
        t.ok(p.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER), 'pods carry the tracking finalizer');
        seen.add(p.metadata.name);
        nodes.finish('default', p.metadata.name, 'Succeeded');
      }
      await waitFor('the finished pods counted', async () => ((await getJob('pi')).status?.succeeded ?? 0) >= Math.min(seen.size, 4), 20_000);
    }
    const done = await condition('pi', 'Complete');
    t.match(done.status, { succeeded: 4, failed: 0, active: 0 });
    t.ok(done.status?.completionTime && done.status.startTime, 'startTime and completionTime');
    t.ok(done.status?.conditions?.some((x) => x.type === 'SuccessCriteriaMet'), 'SuccessCriteriaMet before Complete, as 1.32');
    const pods = await c.podsOf('default', uid);
    t.equal(pods.length, 4, 'exactly four pods ran');
    t.ok(pods.every((p) => !p.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER)), 'finalizers removed once counted');
    const ev = await waitFor('events', async () => {
      const e = await c.eventsOf('default', 'pi', 'Job');
      return e.some((x) => x.startsWith('Completed')) ? e : undefined;
    });
    t.ok(ev.some((x) => x.startsWith('SuccessfulCreate: Created pod: pi-')), 'SuccessfulCreate events');
  });

  t.test('backoffLimit 1: a failed pod is replaced after the back-off; the second failure fails the Job', async (t) => {
    const j = await mkJob('flaky', { backoffLimit: 1 });
    const [first] = await running(j.metadata.uid!, 1);
    nodes.finish('default', first!.metadata.name, 'Failed');
    const second = await waitFor('a replacement', async () => (await c.podsOf('default', j.metadata.uid!)).find((p) => p.metadata.name !== first!.metadata.name), 20_000);
    const failedAt = Date.parse(((await client.get<Pod>(resourcePath(PODS, 'default', first!.metadata.name))).status?.containerStatuses?.[0] as any).state.terminated.finishedAt);
    t.ok(Date.parse(second.metadata.creationTimestamp!) - failedAt >= 1000, 'created no sooner than the back-off (1.5 s) after the failure, to the second');
    await running(j.metadata.uid!, 1);
    nodes.finish('default', second.metadata.name, 'Failed');
    const failed = await condition('flaky', 'Failed');
    t.match(failed.status, { failed: 2, active: 0, succeeded: 0 });
    t.match(failed.status?.conditions?.find((x) => x.type === 'Failed'), { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' });
    t.ok(failed.status?.conditions?.some((x) => x.type === 'FailureTarget'), 'FailureTarget first');
    t.equal((await c.podsOf('default', j.metadata.uid!)).length, 2, 'no third pod');
  });

  t.test('activeDeadlineSeconds: DeadlineExceeded, running pods deleted and counted failed', async (t) => {
    const j = await mkJob('slow', { activeDeadlineSeconds: 2, parallelism: 2, completions: 2 });
    await running(j.metadata.uid!, 2);
    const failed = await condition('slow', 'Failed');
    t.match(failed.status?.conditions?.find((x) => x.type === 'Failed'), { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' });
    t.match(failed.status, { active: 0, failed: 2 });
    await waitFor('pods gone', async () => (await c.podsOf('default', j.metadata.uid!)).length === 0, 20_000);
    const ev = await waitFor('event', async () => (await c.eventsOf('default', 'slow', 'Job')).find((x) => x.startsWith('DeadlineExceeded')));
    t.ok(ev);
  });

  t.test('Indexed: one pod per index with its annotation, label, hostname and env; completedIndexes', async (t) => {
    const j = await mkJob('idx', { completions: 3, parallelism: 3, completionMode: 'Indexed' });
    const pods = await running(j.metadata.uid!, 3);
    const byIndex = new Map(pods.map((p) => [p.metadata.annotations?.[JOB_COMPLETION_INDEX], p]));
    t.same([...byIndex.keys()].sort(), ['0', '1', '2']);
    const p1 = byIndex.get('1')!;
    t.equal(p1.metadata.labels?.[JOB_COMPLETION_INDEX], '1');
    t.equal(p1.spec?.hostname, 'idx-1');
    t.match(p1.metadata.name, /^idx-1-/);
    t.match(p1.spec?.containers[0]?.env, [{ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${JOB_COMPLETION_INDEX}']` } } }]);
    nodes.finish('default', p1.metadata.name, 'Succeeded');
    await waitFor('completedIndexes 1', async () => (await getJob('idx')).status?.completedIndexes === '1');
    // Index 0 fails once: replaced with a pod of the same index.
    nodes.finish('default', byIndex.get('0')!.metadata.name, 'Failed');
    const again = await waitFor('index 0 replaced', async () => (await c.podsOf('default', j.metadata.uid!))
      .find((p) => p.metadata.annotations?.[JOB_COMPLETION_INDEX] === '0' && p.metadata.name !== byIndex.get('0')!.metadata.name && p.status?.phase === 'Running'), 20_000);
    nodes.finish('default', again.metadata.name, 'Succeeded');
    nodes.finish('default', byIndex.get('2')!.metadata.name, 'Succeeded');
    const done = await condition('idx', 'Complete');
    t.match(done.status, { completedIndexes: '0-2', succeeded: 3, failed: 1 });
  });

  t.test('suspend: no pods while suspended; resuming starts them and resets startTime', async (t) => {
    const j = await mkJob('later', { suspend: true, parallelism: 2, completions: 2 });
    const s = await condition('later', 'Suspended');
    t.equal(s.status?.active, 0);
    t.equal((await c.podsOf('default', j.metadata.uid!)).length, 0, 'no pod');
    await client.patch(resourcePath(JOBS, 'default', 'later'), { spec: { suspend: false } }, 'application/merge-patch+json');
    const pods = await running(j.metadata.uid!, 2);
    t.equal(pods.length, 2);
    const resumed = await waitFor('resumed', async () => {
      const x = await getJob('later');
      return x.status?.conditions?.find((k) => k.type === 'Suspended')?.status === 'False' && x.status?.startTime ? x : undefined;
    });
    t.ok(resumed.status?.startTime);
    await client.patch(resourcePath(JOBS, 'default', 'later'), { spec: { suspend: true } }, 'application/merge-patch+json');
    await waitFor('pods deleted on suspension', async () => (await c.podsOf('default', j.metadata.uid!)).length === 0, 20_000);
    await condition('later', 'Suspended');
    t.match((await getJob('later')).status, { active: 0 });
  });

  t.test('ttlSecondsAfterFinished: the finished Job and its pods are deleted', async (t) => {
    const j = await mkJob('once', { ttlSecondsAfterFinished: 1 });
    const [p] = await running(j.metadata.uid!, 1);
    nodes.finish('default', p!.metadata.name, 'Succeeded');
    // Seen on the stream: the Job may be gone before a read could see it Complete.
    await waitFor('once Complete', () => completed.has('once'), 20_000);
    await waitFor('job deleted', async () => !(await client.list<Job>(resourcePath(JOBS, 'default'))).items.some((x) => x.metadata.name === 'once'), 20_000);
    await waitFor('its pod deleted', async () => (await c.podsOf('default', j.metadata.uid!)).length === 0, 20_000);
    t.pass('deleted with background propagation');
  });

  t.test('podFailurePolicy: Ignore does not count, FailJob fails at once', async (t) => {
    const j = await mkJob('policy', {
      backoffLimit: 0,
      podFailurePolicy: { rules: [{ action: 'Ignore', onExitCodes: { operator: 'In', values: [42] } }, { action: 'FailJob', onExitCodes: { operator: 'In', values: [3] } }] },
    });
    const [first] = await running(j.metadata.uid!, 1);
    nodes.finish('default', first!.metadata.name, 'Failed', 42);
    const second = await waitFor('a replacement', async () => (await c.podsOf('default', j.metadata.uid!)).find((p) => p.metadata.name !== first!.metadata.name && p.status?.phase === 'Running'), 20_000);
    t.equal((await getJob('policy')).status?.failed, 0, 'the ignored failure is not counted (backoffLimit 0 not exceeded)');
    nodes.finish('default', second.metadata.name, 'Failed', 3);
    const failed = await condition('policy', 'Failed');
    t.match(failed.status?.conditions?.find((x) => x.type === 'Failed'), { reason: 'PodFailurePolicy', message: `Container c for pod default/${second.metadata.name} failed with exit code 3 matching FailJob rule at index 1` });
    t.match(failed.status, { failed: 1, active: 0 });
  });

  t.test('no count ever exceeded what is possible', async (t) => {
    t.same(violations, []);
  });
});
