// The CronJob controller (Kubernetes' pkg/controller/cronjob, the v2
// controller): at each activation of a CronJob's schedule (in its time zone)
// it creates a Job from the jobTemplate, named `<cronjob>-<scheduled time in
// minutes since the epoch>` so that a second attempt for the same time — a
// retry, a failover — finds the Job already there instead of making another.
// concurrencyPolicy Forbid skips an activation while a Job runs, Replace
// deletes the running ones first; startingDeadlineSeconds drops activations
// missed by more than that; finished Jobs beyond the history limits are
// deleted; status.active/lastScheduleTime/lastSuccessfulTime follow.
//
// The clock is injectable (`now`), so tests move time instead of waiting.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Job, KubeObject, Stored } from '../../informer/types.ts';
import { formatInZone, missedActivations, parseSchedule } from '../../../api/cron.ts';
import { canonical, conditionTrue, rfc3339 } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { requeueOnConflict } from '../conflict.ts';
import { QueueController } from '../controller.ts';
import { controllerRef, newControllerRef } from '../ownership.ts';

const CRONJOBS = resolveKind('cronjobs')!;
const JOBS = resolveKind('jobs')!;
/** Annotation of a Job with the activation it runs for (RFC 3339 in the CronJob's time zone). */
export const SCHEDULED_TIMESTAMP = 'batch.kubernetes.io/cronjob-scheduled-timestamp';
/** Kubernetes warns when more activations than this were missed. */
const MAX_MISSED = 100;

interface ObjectRef { apiVersion?: string; kind?: string; name: string; namespace?: string; uid?: string; resourceVersion?: string }

export interface CronJob extends Stored {
  spec?: {
    schedule: string;
    timeZone?: string;
    startingDeadlineSeconds?: number;
    concurrencyPolicy?: 'Allow' | 'Forbid' | 'Replace';
    suspend?: boolean;
    jobTemplate: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: Record<string, unknown> };
    successfulJobsHistoryLimit?: number;
    failedJobsHistoryLimit?: number;
  };
  status?: { active?: ObjectRef[]; lastScheduleTime?: string; lastSuccessfulTime?: string };
}

/** The Job's name for an activation: minutes since the epoch, as Kubernetes' getJobName. */
export const jobNameFor = (cronJob: string, scheduled: number): string => `${cronJob}-${Math.floor(scheduled / 60_000)}`;

const finishedType = (j: Job): 'Complete' | 'Failed' | undefined =>
  (conditionTrue(j.status?.conditions, 'Complete') ? 'Complete' : conditionTrue(j.status?.conditions, 'Failed') ? 'Failed' : undefined);

export class CronJobController extends QueueController {
  private readonly cronJobs: Informer<CronJob>;
  private readonly jobs: Informer<Job>;
  private readonly now: () => number;

  constructor(ctx: ControllerContext, o: { now?: () => number } = {}) {
    super(ctx, 'cronjob');
    this.now = o.now ?? ctx.now;
    this.cronJobs = ctx.informers.informer<CronJob>('cronjobs');
    this.jobs = ctx.informers.informer<Job>('jobs');
    this.handle(this.cronJobs, { onAdd: (c) => this.enqueue(c), onUpdate: (_o, c) => this.enqueue(c) });
    const job = (j: Job) => {
      const ref = controllerRef(j);
      if (ref?.kind === 'CronJob') this.enqueue(`${j.metadata.namespace}/${ref.name}`);
    };
    this.handle(this.jobs, { onAdd: job, onUpdate: (_o, j) => job(j), onDelete: job });
  }

  protected reconcile(key: string): Promise<void> {
    return requeueOnConflict(this, key, () => this.sync(key));
  }

  private async sync(key: string): Promise<void> {
    const cached = this.cronJobs.getByKey(key);
    if (!cached || cached.metadata.deletionTimestamp) return;
    const cj = structuredClone(cached);
    const ns = cj.metadata.namespace ?? '';
    const before = canonical(cj.status ?? {});
    const status = (cj.status ??= {});
    const owned = this.jobs.byNamespace(ns).filter((j) => controllerRef(j)?.uid === cj.metadata.uid);
    await this.trackJobs(cj, owned);
    await this.cleanupHistory(cj, owned);
    let schedule;
    try {
      schedule = parseSchedule(cj.spec!.schedule, cj.spec!.timeZone ?? 'UTC');
    } catch (e) {
      this.recorder.event(cj, 'Warning', 'UnparseableSchedule', `unparseable schedule: ${JSON.stringify(cj.spec?.schedule)} : ${(e as Error).message}`);
      return this.writeStatus(cj, before);
    }
    const now = this.now();
    try {
      if (cj.spec?.suspend) return;
      // The window: since the last activation (or creation), no further back than the starting deadline.
      let earliest = Date.parse(status.lastScheduleTime ?? cj.metadata.creationTimestamp ?? '') || now;
      const deadline = cj.spec?.startingDeadlineSeconds;
      if (deadline != null) earliest = Math.max(earliest, now - deadline * 1000);
      const { latest, missed } = missedActivations(schedule, earliest, now);
      if (latest === undefined) return;
      if (missed > MAX_MISSED) {
        this.recorder.event(cj, 'Warning', 'TooManyMissedTimes', `too many missed start times: > ${MAX_MISSED}. Set or decrease .spec.startingDeadlineSeconds or check clock skew`);
      }
      if (deadline != null && latest + deadline * 1000 < now) {
        this.recorder.event(cj, 'Warning', 'MissSchedule', `Missed scheduled time to start a job: ${formatInZone(latest, cj.spec?.timeZone)}`);
        return;
      }
      const name = jobNameFor(cj.metadata.name, latest);
      if ((status.active ?? []).some((r) => r.name === name) || Date.parse(status.lastScheduleTime ?? '') === latest) return;
      if (cj.spec?.concurrencyPolicy === 'Forbid' && (status.active ?? []).length) {
        this.recorder.event(cj, 'Normal', 'JobAlreadyActive', 'Not starting job because prior execution is running and concurrency policy is Forbid');
        return;
      }
      if (cj.spec?.concurrencyPolicy === 'Replace') {
        for (const ref of [...(status.active ?? [])]) {
          await this.deleteJob(cj, ref.name, ref.uid);
          status.active = (status.active ?? []).filter((r) => r.uid !== ref.uid);
        }
      }
      const made = await this.createJob(cj, name, latest);
      if (made) {
        status.active = [...(status.active ?? []).filter((r) => r.uid !== made.metadata.uid), refOf(made)];
        status.lastScheduleTime = rfc3339(latest);
      }
    } finally {
      await this.writeStatus(cj, before);
      if (!cj.spec?.suspend) this.enqueueAfter(key, schedule.next(now) - now + 100);
    }
  }

  /** Finished Jobs leave status.active, missing ones too; lastSuccessfulTime follows the completions. */
  private async trackJobs(cj: CronJob, owned: Job[]): Promise<void> {
    const status = cj.status!;
    const byUid = new Map(owned.map((j) => [j.metadata.uid, j]));
    const active: ObjectRef[] = [];
    let fresh: CronJob | undefined;
    for (const ref of status.active ?? []) {
      const j = byUid.get(ref.uid);
      if (!j) {
        // Not in the cache: gone, or the cache is behind the status. Only a read tells.
        if (await this.exists(cj.metadata.namespace, ref.name, ref.uid)) active.push(ref);
        else this.recorder.event(cj, 'Normal', 'MissingJob', `Active job went missing: ${ref.name}`);
        continue;
      }
      if (!finishedType(j)) active.push(ref);
    }
    for (const j of owned) {
      const done = finishedType(j);
      if (!done && !active.some((r) => r.uid === j.metadata.uid)) {
        // Our cache of the CronJob may be older than the Job's: the stored one decides.
        fresh ??= await this.ctx.client.get<CronJob>(resourcePath(CRONJOBS, cj.metadata.namespace, cj.metadata.name));
        if ((fresh.status?.active ?? []).some((r) => r.uid === j.metadata.uid)) active.push(refOf(j));
        // Kubernetes only reports the others (a Job made by `kubectl create job --from`, or by us just before
        // a crash): the deterministic name finds ours again when its activation is retried.
        else this.recorder.event(cj, 'Warning', 'UnexpectedJob', `Saw a job that the controller did not create or forgot: ${j.metadata.name}`);
      }
      if (done && (status.active ?? []).some((r) => r.uid === j.metadata.uid)) {
        this.recorder.event(cj, 'Normal', 'SawCompletedJob', `Saw completed job: ${j.metadata.name}, condition: ${done}`);
      }
      if (done === 'Complete') {
        const at = Date.parse(j.status?.completionTime as string ?? '');
        if (!Number.isNaN(at) && !(Date.parse(status.lastSuccessfulTime ?? '') >= at)) status.lastSuccessfulTime = rfc3339(at);
      }
    }
    status.active = active;
  }

  /** Deletes the oldest finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit. */
  private async cleanupHistory(cj: CronJob, owned: Job[]): Promise<void> {
    for (const [type, limit] of [['Complete', cj.spec?.successfulJobsHistoryLimit ?? 3], ['Failed', cj.spec?.failedJobsHistoryLimit ?? 1]] as const) {
      const done = owned.filter((j) => finishedType(j) === type && !j.metadata.deletionTimestamp);
      if (done.length <= limit) continue;
      const started = (j: Job) => Date.parse((j.status?.startTime as string) ?? j.metadata.creationTimestamp ?? '') || 0;
      done.sort((a, b) => started(a) - started(b));
      for (const j of done.slice(0, done.length - limit)) await this.deleteJob(cj, j.metadata.name, j.metadata.uid);
    }
  }

  private async createJob(cj: CronJob, name: string, scheduled: number): Promise<Job | undefined> {
    const t = cj.spec!.jobTemplate;
    const job = {
      apiVersion: 'batch/v1', kind: 'Job',
      metadata: {
        name, namespace: cj.metadata.namespace,
        labels: { ...t.metadata?.labels },
        annotations: { ...t.metadata?.annotations, [SCHEDULED_TIMESTAMP]: formatInZone(scheduled, cj.spec?.timeZone) },
        ownerReferences: [newControllerRef(cj)],
      },
      spec: structuredClone(t.spec ?? {}),
    };
    try {
      const made = await this.ctx.client.create<Job>(resourcePath(JOBS, cj.metadata.namespace), job);
      this.recorder.event(cj, 'Normal', 'SuccessfulCreate', `Created job ${name}`);
      return made;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 409) {
        // Made already (by us before a restart, or by the leader before a failover) if it is ours.
        const existing = await this.ctx.client.get<Job>(resourcePath(JOBS, cj.metadata.namespace, name));
        if (controllerRef(existing)?.uid === cj.metadata.uid) return existing;
        this.recorder.event(cj, 'Warning', 'FailedCreate', `Error creating job: a job named ${name} exists and is not controlled by this CronJob`);
        return undefined;
      }
      this.recorder.event(cj, 'Warning', 'FailedCreate', `Error creating job: ${(e as Error).message}`);
      throw e;
    }
  }

  private async deleteJob(cj: CronJob, name: string, uid: string | undefined): Promise<void> {
    try {
      await this.ctx.client.delete(resourcePath(JOBS, cj.metadata.namespace, name), {
        apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background', ...(uid ? { preconditions: { uid } } : {}),
      });
      this.recorder.event(cj, 'Normal', 'SuccessfulDelete', `Deleted job ${name}`);
    } catch (e) {
      if (e instanceof ApiClientError && (e.code === 404 || e.code === 409)) return;
      this.recorder.event(cj, 'Warning', 'FailedDelete', `Deleted job: ${(e as Error).message}`);
      throw e;
    }
  }

  private async exists(ns: string | undefined, name: string, uid: string | undefined): Promise<boolean> {
    try {
      const j = await this.ctx.client.get<KubeObject>(resourcePath(JOBS, ns, name));
      return !uid || j.metadata?.uid === uid;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return false;
      throw e;
    }
  }

  private async writeStatus(cj: CronJob, before: string): Promise<void> {
    if (canonical(cj.status ?? {}) === before) return;
    await this.ctx.client.update(resourcePath(CRONJOBS, cj.metadata.namespace, cj.metadata.name, 'status'), cj);
  }
}

function refOf(j: Job): ObjectRef {
  return { apiVersion: 'batch/v1', kind: 'Job', name: j.metadata.name, namespace: j.metadata.namespace, uid: j.metadata.uid, resourceVersion: j.metadata.resourceVersion };
}
