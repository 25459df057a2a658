// CronJob: schedules as tables (Kubernetes' five fields and descriptors,
// time zones, missed activations), admission, then the controller against a
// real server with an injected clock (time moves, nobody waits minutes):
// Job names by scheduled minute, Allow/Forbid/Replace, startingDeadlineSeconds,
// the "too many missed" warning, history limits, suspend, a time zone, and
// the real kubectl (get cronjob, create job --from=cronjob).
import t from 'tap';
import { ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { type CronJob, CronJobController, SCHEDULED_TIMESTAMP, jobNameFor } from '../agents/controllers/cronjob/controller.ts';
import { GarbageCollector } from '../agents/controllers/garbagecollector/controller.ts';
import { JobController } from '../agents/controllers/job/controller.ts';
import type { Job } from '../agents/informer/types.ts';
import { formatInZone, missedActivations, parseSchedule, scheduleError, timeZoneError } from '../api/cron.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { waitFor } from '../harness/procs.ts';
import { startWorkloadCluster } from './support/workload-cluster.ts';

const T = (s: string) => Date.parse(s);

t.test('schedules', async (t) => {
  const next: [string, string | undefined, string, string][] = [
    ['*/5 * * * *', undefined, '2026-01-01T00:07:00Z', '2026-01-01T00:10:00Z'],
    ['0 * * * *', undefined, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z'],
    ['@hourly', undefined, '2026-01-01T00:30:00Z', '2026-01-01T01:00:00Z'],
    ['@daily', undefined, '2026-01-01T00:30:00Z', '2026-01-02T00:00:00Z'],
    ['@midnight', undefined, '2026-01-01T00:30:00Z', '2026-01-02T00:00:00Z'],
    ['@weekly', undefined, '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'],
    ['0 9 * * *', 'Asia/Tokyo', '2026-01-01T00:30:00Z', '2026-01-02T00:00:00Z'],
    ['0 9 * * 1-5', 'America/New_York', '2026-01-02T15:00:00Z', '2026-01-05T14:00:00Z'],
    ['30 2 * * *', 'Europe/Paris', '2026-07-01T00:00:00Z', '2026-07-01T00:30:00Z'],
  ];
  for (const [s, tz, from, want] of next) t.equal(new Date(parseSchedule(s, tz).next(T(from))).toISOString(), new Date(T(want)).toISOString(), `${s} ${tz ?? 'UTC'} after ${from}`);
  t.equal(parseSchedule('*/5 * * * *').latest(T('2026-01-01T00:10:00Z')), T('2026-01-01T00:10:00Z'), 'latest includes the instant itself');

  const refused: [string, RegExp][] = [
    ['* * * * * *', /expected exactly 5 fields, found 6/],
    ['* * * *', /expected exactly 5 fields, found 4/],
    ['@minutely', /unrecognized descriptor/],
    ['60 * * * *', /60/],
    ['nope', /./],
  ];
  for (const [s, re] of refused) t.match(scheduleError(s), re, `"${s}" refused`);
  t.equal(scheduleError('*/15 0-6 1,15 * MON-FRI'), undefined);
  t.equal(timeZoneError('Europe/Paris'), undefined);
  t.equal(timeZoneError('Mars/Olympus'), 'unknown time zone Mars/Olympus');
  t.match(timeZoneError('Local'), /explicit time zone/);
  t.equal(timeZoneError(''), 'timeZone must be nonempty');

  const every = parseSchedule('* * * * *');
  t.same(missedActivations(every, T('2026-01-01T00:00:30Z'), T('2026-01-01T00:00:50Z')), { missed: 0 }, 'nothing due');
  t.same(missedActivations(every, T('2026-01-01T00:00:30Z'), T('2026-01-01T00:01:10Z')), { latest: T('2026-01-01T00:01:00Z'), missed: 1 });
  t.same(missedActivations(every, T('2026-01-01T00:00:00Z'), T('2026-01-01T00:05:00Z')), { latest: T('2026-01-01T00:05:00Z'), missed: 5 });
  t.same(missedActivations(every, T('2026-01-01T00:00:00Z'), T('2026-01-01T05:00:00Z')), { latest: T('2026-01-01T05:00:00Z'), missed: 101 }, 'counted up to 101');

  t.equal(formatInZone(T('2026-01-01T00:00:00Z')), '2026-01-01T00:00:00Z');
  t.equal(formatInZone(T('2026-01-01T00:00:00Z'), 'Asia/Tokyo'), '2026-01-01T09:00:00+09:00');
  t.equal(formatInZone(T('2026-07-01T12:00:00Z'), 'America/New_York'), '2026-07-01T08:00:00-04:00');
  t.equal(jobNameFor('hello', T('2026-01-01T00:01:00Z')), `hello-${T('2026-01-01T00:01:00Z') / 60_000}`);
});

const CRONJOBS = resolveKind('cronjobs')!;
const JOBS = resolveKind('jobs')!;

t.test('CronJobs against a real server', async (t) => {
  let clock = Date.now();
  const c = await startWorkloadCluster(t, [
    (ctx) => new CronJobController(ctx, { now: () => clock }), (ctx) => new JobController(ctx), (ctx) => new GarbageCollector(ctx),
  ]);
  const { client, nodes } = c;
  const cron = c.ctl.controllers[0] as CronJobController;
  const jobTemplate = { metadata: { labels: { team: 'a' } }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } } };
  const mk = (name: string, spec: Record<string, unknown> = {}) => client.create<CronJob>(resourcePath(CRONJOBS, 'default'), {
    apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name }, spec: { schedule: '* * * * *', jobTemplate, suspend: true, ...spec },
  });
  const getCj = (name: string) => client.get<CronJob>(resourcePath(CRONJOBS, 'default', name));
  const jobsOf = async (cj: CronJob) => (await client.list<Job>(resourcePath(JOBS, 'default'))).items.filter((j) => j.metadata.ownerReferences?.some((r) => r.uid === cj.metadata.uid));
  // CronJobs are created suspended and resumed at their first tick: with the clock minutes ahead of the
  // real time, an unsuspended one would run at once for the clock's current minute.
  const resumed = new Set<string>();
  /** Sets the clock and has the controller look (the first time by resuming the CronJob). */
  const at = async (cj: CronJob, time: number) => {
    clock = time;
    if (resumed.has(cj.metadata.name)) cron.enqueue(`default/${cj.metadata.name}`);
    else {
      resumed.add(cj.metadata.name);
      await client.patch(resourcePath(CRONJOBS, 'default', cj.metadata.name), { spec: { suspend: false } }, 'application/merge-patch+json');
    }
  };
  /** Moves the clock to `secondsPast` the next minute boundary (never behind the real time, which creationTimestamps come from). */
  const tick = async (cj: CronJob, secondsPast = 1) => {
    const minute = (Math.floor(Math.max(clock, Date.now()) / 60_000) + 1) * 60_000;
    await at(cj, minute + secondsPast * 1000);
    return minute;
  };
  const finishJob = async (j: Job) => {
    const pod = await waitFor(`a pod of ${j.metadata.name}`, async () => (await c.podsOf('default', j.metadata.uid!)).find((p) => p.status?.phase === 'Running'), 20_000);
    nodes.finish('default', pod.metadata.name, 'Succeeded');
    await waitFor(`${j.metadata.name} complete`, async () => (await client.get<Job>(resourcePath(JOBS, 'default', j.metadata.name))).status?.conditions?.some((x) => x.type === 'Complete'), 20_000);
  };
  const suspend = (name: string) => client.patch(resourcePath(CRONJOBS, 'default', name), { spec: { suspend: true } }, 'application/merge-patch+json');

  t.test('admission refuses bad schedules, TZ prefixes, unknown zones, long names', async (t) => {
    const refusal = async (name: string, spec: Record<string, unknown>) => {
      try {
        await mk(name, spec);
      } catch (e) {
        if (e instanceof ApiClientError && e.code === 422) return e.message;
        throw e;
      }
      return 'accepted';
    };
    t.match(await refusal('bad', { schedule: 'every minute' }), /spec\.schedule: Invalid value: "every minute"/);
    t.match(await refusal('secs', { schedule: '* * * * * *' }), /expected exactly 5 fields, found 6/);
    t.match(await refusal('tz', { schedule: 'CRON_TZ=UTC 0 * * * *' }), /cannot use TZ or CRON_TZ in schedule, use timeZone field instead/);
    t.match(await refusal('tz2', { schedule: 'TZ=UTC 0 * * * *', timeZone: 'UTC' }), /cannot use both timeZone field and TZ or CRON_TZ in schedule/);
    t.match(await refusal('zone', { timeZone: 'Mars/Olympus' }), /spec\.timeZone: Invalid value: "Mars\/Olympus": unknown time zone Mars\/Olympus/);
    t.match(await refusal('x'.repeat(53), {}), /must be no more than 52 characters/);
    t.match(await refusal('policy', { concurrencyPolicy: 'Sometimes' }), /spec\.concurrencyPolicy: Unsupported value: "Sometimes"/);
    const ok = await client.create<CronJob>(resourcePath(CRONJOBS, 'default'), { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'defaults' }, spec: { schedule: '@hourly', jobTemplate } });
    t.match(ok.spec, { concurrencyPolicy: 'Allow', suspend: false, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 1 });
    await suspend('defaults');
  });

  t.test('Allow: one Job per activation named by its minute; status; history limit', async (t) => {
    const cj = await mk('every', { successfulJobsHistoryLimit: 2 });
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const when = await tick(cj);
      const name = jobNameFor('every', when);
      names.push(name);
      const j = await waitFor(`job ${name}`, async () => (await jobsOf(cj)).find((x) => x.metadata.name === name), 20_000);
      t.equal(j.metadata.annotations?.[SCHEDULED_TIMESTAMP], formatInZone(when), 'scheduled-timestamp annotation');
      t.equal(j.metadata.labels?.team, 'a', 'labels of the jobTemplate');
      t.match(j.metadata.ownerReferences, [{ kind: 'CronJob', name: 'every', controller: true }]);
      const s = await waitFor('active', async () => {
        const x = (await getCj('every')).status;
        return x?.active?.some((r) => r.name === name) ? x : undefined;
      });
      t.equal(Date.parse(s.lastScheduleTime!), when, 'lastScheduleTime is the activation');
      await finishJob(j);
      const done = await waitFor('inactive with lastSuccessfulTime', async () => {
        const x = (await getCj('every')).status;
        return !x?.active?.length && x?.lastSuccessfulTime ? x : undefined;
      }, 20_000);
      t.ok(done.lastSuccessfulTime);
    }
    await waitFor('the oldest successful job deleted (limit 2)', async () => {
      const left = (await jobsOf(cj)).map((j) => j.metadata.name).sort();
      return JSON.stringify(left) === JSON.stringify(names.slice(1).sort());
    }, 20_000);
    // The same activation again (a retry, a failover) creates nothing.
    cron.enqueue('default/every');
    await waitFor('events', async () => (await c.eventsOf('default', 'every', 'CronJob')).some((e) => e.startsWith('SuccessfulDelete')));
    t.equal((await jobsOf(cj)).length, 2);
    const ev = await c.eventsOf('default', 'every', 'CronJob');
    t.ok(ev.some((e) => e === `SuccessfulCreate: Created job ${names[0]}`));
    t.ok(ev.some((e) => e.startsWith('SawCompletedJob: Saw completed job:')));
    await suspend('every');
  });

  t.test('Forbid skips while a Job runs; Replace deletes it first', async (t) => {
    const f = await mk('forbid', { concurrencyPolicy: 'Forbid' });
    const first = jobNameFor('forbid', await tick(f));
    await waitFor('first job', async () => (await jobsOf(f)).some((j) => j.metadata.name === first), 20_000);
    await waitFor('active', async () => (await getCj('forbid')).status?.active?.length === 1);
    await tick(f);
    await waitFor('JobAlreadyActive', async () => (await c.eventsOf('default', 'forbid', 'CronJob')).some((e) => e.startsWith('JobAlreadyActive')), 20_000);
    t.same((await jobsOf(f)).map((j) => j.metadata.name), [first], 'no second job');
    await suspend('forbid');

    const r = await mk('replace', { concurrencyPolicy: 'Replace' });
    const a = jobNameFor('replace', await tick(r));
    await waitFor('first job', async () => (await jobsOf(r)).some((j) => j.metadata.name === a), 20_000);
    await waitFor('active', async () => (await getCj('replace')).status?.active?.length === 1);
    const b = jobNameFor('replace', await tick(r));
    await waitFor('replaced', async () => {
      const names = (await jobsOf(r)).filter((j) => !j.metadata.deletionTimestamp).map((j) => j.metadata.name);
      return names.length === 1 && names[0] === b;
    }, 20_000);
    const s = await waitFor('active is the new one', async () => {
      const x = (await getCj('replace')).status;
      return x?.active?.length === 1 && x.active[0]!.name === b ? x : undefined;
    });
    t.ok(s);
    await suspend('replace');
  });

  t.test('startingDeadlineSeconds: an activation missed by more is skipped', async (t) => {
    const cj = await mk('deadline', { startingDeadlineSeconds: 10 });
    await tick(cj, 30);
    // Nothing is due within the last 10 s: no job (look after the controller had its turn).
    await waitFor('a reconcile', async () => (await c.eventsOf('default', 'deadline', 'CronJob')).length === 0 && cron.queue.len() === 0);
    const at = await tick(cj, 5);
    await waitFor('the next activation, within the deadline', async () => (await jobsOf(cj)).some((j) => j.metadata.name === jobNameFor('deadline', at)), 20_000);
    t.equal((await jobsOf(cj)).length, 1, 'only the one in time');
    await suspend('deadline');
  });

  t.test('more than 100 missed activations: a warning, and the latest still runs', async (t) => {
    const cj = await mk('late');
    clock += 200 * 60_000;
    const at = await tick(cj, 2);
    await waitFor('job', async () => (await jobsOf(cj)).some((j) => j.metadata.name === jobNameFor('late', at)), 20_000);
    const ev = await waitFor('warning', async () => (await c.eventsOf('default', 'late', 'CronJob')).find((e) => e.startsWith('TooManyMissedTimes')));
    t.match(ev, /too many missed start times: > 100/);
    t.equal((await jobsOf(cj)).length, 1, 'one job, not 200');
    await suspend('late');
  });

  t.test('suspend: no Job; a time zone moves the activation', async (t) => {
    const s = await mk('asleep');
    clock = (Math.floor(Math.max(clock, Date.now()) / 60_000) + 2) * 60_000;
    cron.enqueue('default/asleep');
    await waitFor('queue drained', () => cron.queue.len() === 0);
    t.equal((await jobsOf(s)).length, 0);

    const tokyo = await mk('tokyo', { schedule: '0 9 * * *', timeZone: 'Asia/Tokyo' });
    // 09:00 in Tokyo is 00:00 UTC.
    const midnight = (Math.floor(Math.max(clock, Date.now()) / 86_400_000) + 1) * 86_400_000;
    await at(tokyo, midnight + 3000);
    const j = await waitFor('job at 09:00 JST', async () => (await jobsOf(tokyo)).find((x) => x.metadata.name === jobNameFor('tokyo', midnight)), 20_000);
    t.match(j.metadata.annotations?.[SCHEDULED_TIMESTAMP], /T09:00:00\+09:00$/);
    await suspend('tokyo');
  });

  t.test('kubectl get cronjob; kubectl create job --from=cronjob', async (t) => {
    if (kubectlMissing(t)) return;
    await mk('kc', { suspend: true, timeZone: 'Europe/Paris' });
    const got = await c.kubectl('get', 'cronjob', 'kc');
    t.equal(got.code, 0, got.err);
    const [head, row] = got.out.trim().split('\n');
    t.same(head!.split(/\s{2,}/), ['NAME', 'SCHEDULE', 'TIMEZONE', 'SUSPEND', 'ACTIVE', 'LAST SCHEDULE', 'AGE']);
    t.match(row, /^kc\s+\* \* \* \* \*\s+Europe\/Paris\s+True\s+0\s+<none>\s+\d+s$/);
    const made = await c.kubectl('create', 'job', 'kc-manual', '--from=cronjob/kc');
    t.equal(made.code, 0, made.err);
    const j = await client.get<Job>(resourcePath(JOBS, 'default', 'kc-manual'));
    t.equal(j.metadata.annotations?.['cronjob.kubernetes.io/instantiate'], 'manual');
    t.match(j.metadata.ownerReferences, [{ kind: 'CronJob', name: 'kc' }]);
    await waitFor('its pod runs', async () => (await c.podsOf('default', j.metadata.uid!)).length === 1, 20_000);
  });
});
