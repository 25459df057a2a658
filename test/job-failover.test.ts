// The Job controller through a failover: two real `flotilla controllers`
// processes, pods finishing all the time, the leader killed (-9) in the
// middle. Every finished pod is counted exactly once: on every Job event the
// counts never exceed the pods that finished, and at the end succeeded is
// exactly the number of pods that succeeded, all of them without the
// tracking finalizer.
import t from 'tap';
import { resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { JOB_TRACKING_FINALIZER } from '../agents/controllers/job/pods.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { Job, Pod } from '../agents/informer/types.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { waitFor } from '../harness/procs.ts';
import { startWorkloadCluster } from './support/workload-cluster.ts';

const JOBS = resolveKind('jobs')!;
const PODS = resolveKind('pods')!;
const COMPLETIONS = 24;

t.test('a Job completes exactly through a controller-manager failover', async (t) => {
  const c = await startWorkloadCluster(t, [], { nodes: { count: 2 } });
  const { client, nodes } = c;
  const LE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms', '--controllers', 'job', '--job-backoff-base', '200ms', '--job-backoff-max', '1s'];
  const start = (id: string) => ControllerManager.start({ servers: c.cluster.urls, nats: c.nats.url, id, args: LE });
  const a = await start('cm-a');
  t.teardown(() => a.stop('SIGKILL'));
  const b = await start('cm-b');
  t.teardown(() => b.stop('SIGKILL'));
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 15_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];

  // The test finishes every pod as soon as it runs: the even-numbered ones fail, once each, so both counters move.
  const pods = new Informer<Pod>({ client, nats: c.nats.url, kind: PODS, name: 'failover-pods' });
  const finished = new Map<string, 'Succeeded' | 'Failed'>();
  let n = 0;
  pods.addEventHandler({
    onUpdate: (_o, p) => {
      if (p.status?.phase !== 'Running' || finished.has(p.metadata.uid!) || p.metadata.deletionTimestamp) return;
      const phase = n++ % 4 === 1 ? 'Failed' : 'Succeeded';
      finished.set(p.metadata.uid!, phase);
      nodes.finish('default', p.metadata.name, phase);
    },
  });
  await pods.start();
  t.teardown(() => pods.stop());
  const jobs = new Informer<Job>({ client, nats: c.nats.url, kind: JOBS, name: 'failover-jobs' });
  const problems: string[] = [];
  let events = 0;
  jobs.addEventHandler({
    onUpdate: (_o, j) => {
      events++;
      const s = j.status ?? {};
      const ended = (want: string) => [...finished.values()].filter((x) => x === want).length;
      if ((s.succeeded ?? 0) > ended('Succeeded')) problems.push(`succeeded ${s.succeeded} > ${ended('Succeeded')} pods that succeeded`);
      if ((s.failed ?? 0) > ended('Failed')) problems.push(`failed ${s.failed} > ${ended('Failed')} pods that failed`);
      if ((s.succeeded ?? 0) > COMPLETIONS) problems.push(`succeeded ${s.succeeded} > completions`);
    },
  });
  await jobs.start();
  t.teardown(() => jobs.stop());

  await client.create(resourcePath(JOBS, 'default'), {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'work' },
    spec: { completions: COMPLETIONS, parallelism: 6, backoffLimit: 100, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } },
  });
  await waitFor('some counted', async () => ((await client.get<Job>(resourcePath(JOBS, 'default', 'work'))).status?.succeeded ?? 0) >= 4, 30_000, 20);
  await leader.stop('SIGKILL');
  await waitFor('the standby to lead', () => standby.leading(), 20_000, 100);
  const done = await waitFor('Complete', async () => {
    const j = await client.get<Job>(resourcePath(JOBS, 'default', 'work'));
    return j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True') ? j : undefined;
  }, 45_000);
  const all = (await c.podsOf('default', done.metadata.uid!));
  const succeededPods = all.filter((p) => p.status?.phase === 'Succeeded').length;
  const failedPods = all.filter((p) => p.status?.phase === 'Failed').length;
  t.equal(done.status?.succeeded, COMPLETIONS, 'exactly the completions');
  t.equal(succeededPods, COMPLETIONS, 'no pod beyond the completions succeeded');
  t.equal(done.status?.failed, failedPods, 'every failed pod counted once');
  t.ok(failedPods > 0, `${failedPods} failures counted`);
  t.ok(all.every((p) => !p.metadata.finalizers?.includes(JOB_TRACKING_FINALIZER)), 'no finalizer left');
  t.ok(events > 10, `${events} Job events checked`);
  t.same(problems, []);
});
