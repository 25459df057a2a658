// The Job controller (Kubernetes' pkg/controller/job): runs a Job's pods
// until `completions` succeed (or, without completions, until one succeeds
// and the rest end), at most `parallelism` at a time; replaces failed pods
// after an exponential back-off until `backoffLimit` failures; fails the Job
// after activeDeadlineSeconds; Indexed jobs give each pod a completion index;
// `suspend` deletes the running pods.
//
// Finished pods are counted exactly once through the job-tracking finalizer,
// as Kubernetes does: a finished pod that still carries the finalizer is
// first recorded in status.uncountedTerminatedPods (one status write), then
// its finalizer is removed, then it moves to status.succeeded/failed (a
// second write). A failover at any point repeats a step, never a count.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Condition, Job, KubeObject, Pod } from '../../informer/types.ts';
import { isPodReady } from '../endpoints/pods.ts';
import { canonical, conditionTrue, rfc3339, setCondition } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { requeueOnConflict } from '../conflict.ts';
import { QueueController } from '../controller.ts';
import { ControllerExpectations } from '../expectations.ts';
import { PodControl } from '../podcontrol.ts';
import { claimObjects, ownerStillThere, controllerRef, podFromTemplate, selectorMatches } from '../ownership.ts';
import {
  JOB_COMPLETION_INDEX, JOB_TRACKING_FINALIZER, completionIndex, formatIndexes, hasTrackingFinalizer, isActive, isTerminating,
  matchPodFailurePolicy, nextCreateTime, parseIndexes, podOutcome,
} from './pods.ts';

const JOBS = resolveKind('jobs')!;
const PODS = resolveKind('pods')!;
/** Queue keys of pods whose Job may be gone (their finalizer must still go). */
const ORPHAN = 'pod:';

interface JobStatus {
  active?: number;
  ready?: number;
  terminating?: number;
  succeeded?: number;
  failed?: number;
  startTime?: string;
  completionTime?: string;
  completedIndexes?: string;
  uncountedTerminatedPods?: { succeeded?: string[]; failed?: string[] };
  conditions?: Condition[];
  [k: string]: unknown;
}
type JobObj = Job & { status?: JobStatus };

const isJobFinished = (j: JobObj) => conditionTrue(j.status?.conditions, 'Complete') || conditionTrue(j.status?.conditions, 'Failed');
const isIndexed = (j: JobObj) => j.spec?.completionMode === 'Indexed';

export class JobController extends QueueController {
  private readonly jobs: Informer<JobObj>;
  private readonly pods: Informer<Pod>;
  readonly expectations: ControllerExpectations;
  private readonly podControl: PodControl;
  /** Pod uids whose finalizer removal was sent but not yet seen in the cache: never counted again. */
  private readonly removing = new Set<string>();

  constructor(ctx: ControllerContext) {
    super(ctx, 'job');
    this.expectations = new ControllerExpectations(ctx.now);
    this.podControl = new PodControl(ctx, this.recorder, this.expectations);
    this.jobs = ctx.informers.informer<JobObj>('jobs');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.handle(this.jobs, {
      onAdd: (j) => this.enqueue(j),
      onUpdate: (_o, j) => this.enqueue(j),
      onDelete: (j) => {
        this.expectations.delete(`${j.metadata.namespace}/${j.metadata.name}`);
        // Its pods lose their finalizer (the garbage collector deletes them).
        for (const p of this.pods.byNamespace(j.metadata.namespace ?? '')) if (controllerRef(p)?.uid === j.metadata.uid) this.enqueue(ORPHAN + `${p.metadata.namespace}/${p.metadata.name}`);
      },
    });
    this.handle(this.pods, {
      onAdd: (p) => {
        const k = this.jobKeyOf(p);
        if (k) this.expectations.creationObserved(k);
        this.podChanged(p);
      },
      onUpdate: (o, p) => {
        const k = this.jobKeyOf(p);
        if (k && p.metadata.deletionTimestamp && !o.metadata.deletionTimestamp) this.expectations.deletionObserved(k, `${p.metadata.namespace}/${p.metadata.name}`);
        if (!hasTrackingFinalizer(p)) this.removing.delete(p.metadata.uid ?? '');
        this.podChanged(p);
      },
      onDelete: (p) => {
        const k = this.jobKeyOf(p);
        if (k) this.expectations.deletionObserved(k, `${p.metadata.namespace}/${p.metadata.name}`);
        this.removing.delete(p.metadata.uid ?? '');
        this.podChanged(p);
      },
    });
  }

  private jobKeyOf(p: Pod): string | undefined {
    const ref = controllerRef(p);
    return ref?.kind === 'Job' && ref.apiVersion === 'batch/v1' ? `${p.metadata.namespace}/${ref.name}` : undefined;
  }

  private podChanged(p: Pod): void {
    const k = this.jobKeyOf(p);
    if (k) {
      const j = this.jobs.getByKey(k);
      if (j && j.metadata.uid === controllerRef(p)!.uid) return this.enqueue(k);
    }
    if (hasTrackingFinalizer(p)) this.enqueue(ORPHAN + `${p.metadata.namespace}/${p.metadata.name}`);
    else if (!k) {
      // An orphan that matches a job's selector may be adopted.
      for (const j of this.jobs.byNamespace(p.metadata.namespace ?? '')) if (j.spec?.selector && selectorMatches(j.spec.selector, p.metadata.labels)) this.enqueue(j);
    }
  }

  protected async reconcile(key: string): Promise<void> {
    if (key.startsWith(ORPHAN)) return this.cleanupOrphan(key.slice(ORPHAN.length));
    return requeueOnConflict(this, key, () => this.sync(key));
  }

  private async sync(key: string): Promise<void> {
    const cached = this.jobs.getByKey(key);
    if (!cached) return;
    let job = structuredClone(cached);
    const now = this.ctx.now();
    const ns = job.metadata.namespace ?? '';
    const pods = await claimObjects(this.pods.byNamespace(ns), {
      client: this.ctx.client, kind: PODS, owner: job, selector: job.spec?.selector,
      canAdopt: ownerStillThere(this.ctx.client, JOBS, job),
    });
    let status: JobStatus = normalize(structuredClone(job.status ?? {}));
    let before = canonical(status);

    // 1. Newly finished pods go to uncountedTerminatedPods (and their index to completedIndexes).
    const uncounted = { succeeded: new Set(status.uncountedTerminatedPods?.succeeded ?? []), failed: new Set(status.uncountedTerminatedPods?.failed ?? []) };
    const completions = job.spec?.completions ?? undefined;
    const completed = isIndexed(job) ? parseIndexes(status.completedIndexes, completions ?? 0) : new Set<number>();
    let newly = 0;
    const ignored: Pod[] = [];
    for (const p of pods) {
      const uid = p.metadata.uid!;
      const outcome = podOutcome(p, job);
      if (!outcome || !hasTrackingFinalizer(p) || this.removing.has(uid) || uncounted.succeeded.has(uid) || uncounted.failed.has(uid)) continue;
      if (outcome === 'failed') {
        const match = matchPodFailurePolicy(job, p);
        if (match?.action === 'Ignore') {
          // Not a failure at all: not counted, not towards backoffLimit; only its finalizer goes.
          ignored.push(p);
          continue;
        }
        if (match?.action === 'FailJob' && !conditionTrue(status.conditions, 'FailureTarget')) {
          // Recorded with the pod's uncounted entry, so a crash after this write cannot lose it.
          status.conditions = setCondition(status.conditions, { type: 'FailureTarget', status: 'True', reason: 'PodFailurePolicy', message: match.message }, now);
          this.recorder.event(job, 'Warning', 'PodFailurePolicy', match.message);
        }
      }
      uncounted[outcome].add(uid);
      newly++;
      if (outcome === 'succeeded' && isIndexed(job)) {
        const i = completionIndex(p, completions ?? 0);
        if (i !== undefined) completed.add(i);
      }
    }
    const writeUncounted = () => {
      status.uncountedTerminatedPods = { succeeded: [...uncounted.succeeded], failed: [...uncounted.failed] };
      if (isIndexed(job)) status.completedIndexes = formatIndexes(completed);
    };
    if (newly) {
      writeUncounted();
      job = await this.writeStatus(job, status);
      status = normalize(structuredClone(job.status ?? {}));
      before = canonical(status);
    }

    for (const p of ignored) await this.removeFinalizer(p);

    // 2. Their finalizers go; 3. they are counted.
    const byUid = new Map(pods.map((p) => [p.metadata.uid!, p]));
    let counted = 0;
    for (const set of [uncounted.succeeded, uncounted.failed]) {
      for (const uid of [...set]) {
        const p = byUid.get(uid);
        if (p && hasTrackingFinalizer(p) && !this.removing.has(uid)) {
          const ok = await this.removeFinalizer(p);
          if (!ok) continue;
        }
        set.delete(uid);
        if (set === uncounted.succeeded) status.succeeded = (status.succeeded ?? 0) + 1;
        else status.failed = (status.failed ?? 0) + 1;
        counted++;
      }
    }
    if (counted) writeUncounted();

    const succeeded = (status.succeeded ?? 0) + uncounted.succeeded.size;
    const failed = (status.failed ?? 0) + uncounted.failed.size;
    let active = pods.filter(isActive);
    const terminating = pods.filter(isTerminating).length;
    const settled = uncounted.succeeded.size === 0 && uncounted.failed.size === 0;
    const conds = () => status.conditions;

    if (isJobFinished(job) || job.metadata.deletionTimestamp) {
      // Finished (or going): nothing runs any more; the pods only lose their finalizers.
      for (const p of pods) if (hasTrackingFinalizer(p) && (podOutcome(p, job) || job.metadata.deletionTimestamp)) await this.removeFinalizer(p);
      await this.finishStatus(job, status, before, active, terminating);
      return;
    }

    // Suspension.
    const suspended = job.spec?.suspend === true;
    const wasSuspended = conditionTrue(conds(), 'Suspended');
    if (suspended && !wasSuspended) {
      status.conditions = setCondition(conds(), { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' }, now);
      this.recorder.event(job, 'Normal', 'Suspended', 'Job suspended');
    } else if (!suspended && wasSuspended) {
      status.conditions = setCondition(conds(), { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed' }, now);
      // The deadline counts from the resumption.
      status.startTime = rfc3339(now);
      this.recorder.event(job, 'Normal', 'Resumed', 'Job resumed');
    }
    if (!suspended && !status.startTime) status.startTime = rfc3339(now);

    // Failure and success criteria (FailureTarget / SuccessCriteriaMet first, the final condition once no pod runs).
    let failure = conditionTrue(conds(), 'FailureTarget') ? { reason: String(conds()!.find((c) => c.type === 'FailureTarget')!.reason), message: String(conds()!.find((c) => c.type === 'FailureTarget')!.message) } : undefined;
    const deadline = job.spec?.activeDeadlineSeconds as number | undefined;
    const started = Date.parse(status.startTime ?? '');
    if (!failure && failed > (job.spec?.backoffLimit ?? 6)) failure = { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    if (!failure && !suspended && deadline != null && !Number.isNaN(started) && now - started >= deadline * 1000) {
      failure = { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    }
    let success = conditionTrue(conds(), 'SuccessCriteriaMet');
    if (!failure && !success) {
      if (isIndexed(job)) success = completed.size >= (completions ?? 0);
      else if (completions != null) success = succeeded >= completions;
      else success = succeeded > 0 && active.length === 0;
    }
    if (failure || success) {
      if (failure && !conditionTrue(conds(), 'FailureTarget')) {
        status.conditions = setCondition(conds(), { type: 'FailureTarget', status: 'True', ...failure }, now);
        this.recorder.event(job, 'Warning', failure.reason, failure.message);
      }
      if (!failure && !conditionTrue(conds(), 'SuccessCriteriaMet')) {
        status.conditions = setCondition(conds(), { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' }, now);
      }
      // The running pods go; the final condition waits until they are gone and counted.
      const stopping = active.length;
      if (this.expectations.satisfied(key)) await this.deletePods(job, key, active);
      active = [];
      if (terminating === 0 && stopping === 0 && settled) {
        if (failure) {
          status.conditions = setCondition(conds(), { type: 'Failed', status: 'True', ...failure }, now);
        } else {
          status.conditions = setCondition(conds(), { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' }, now);
          status.completionTime = rfc3339(now);
          this.recorder.event(job, 'Normal', 'Completed', 'Job completed');
        }
      }
      await this.finishStatus(job, status, before, active, terminating + stopping);
      if (!settled || terminating || stopping) this.enqueueAfter(key, 1000);
      return;
    }

    // Make the right pods run.
    if (suspended) {
      await this.deletePods(job, key, active);
      active = [];
    } else if (this.expectations.satisfied(key)) {
      active = await this.manage(job, key, pods, active, succeeded, completed, now);
    }
    if (deadline != null && !suspended && !Number.isNaN(started)) this.enqueueAfter(key, started + deadline * 1000 - now);
    await this.finishStatus(job, status, before, active, terminating);
  }

  /** Creates or deletes pods so that the wanted ones run; returns the active pods that stay. */
  private async manage(job: JobObj, key: string, pods: Pod[], active: Pod[], succeeded: number, completed: Set<number>, now: number): Promise<Pod[]> {
    const parallelism = job.spec?.parallelism ?? 1;
    const completions = job.spec?.completions ?? undefined;
    let toDelete: Pod[] = [];
    let toCreate: (number | undefined)[] = [];
    if (isIndexed(job)) {
      const n = completions ?? 0;
      const seen = new Set<number>();
      const keep: Pod[] = [];
      for (const p of rankForDeletion(active).reverse()) {
        const i = completionIndex(p, n);
        // Out of range, a duplicate, or already completed: delete.
        if (i === undefined || seen.has(i) || completed.has(i)) toDelete.push(p);
        else {
          seen.add(i);
          keep.push(p);
        }
      }
      if (keep.length > parallelism) toDelete.push(...rankForDeletion(keep).slice(0, keep.length - parallelism));
      const room = parallelism - Math.min(keep.length, parallelism);
      for (let i = 0; i < n && toCreate.length < room; i++) if (!seen.has(i) && !completed.has(i)) toCreate.push(i);
    } else {
      const want = completions == null ? (succeeded > 0 ? Math.min(active.length, parallelism) : parallelism) : Math.max(0, Math.min(parallelism, completions - succeeded));
      if (active.length > want) toDelete = rankForDeletion(active).slice(0, active.length - want);
      else toCreate = Array.from({ length: want - active.length }, () => undefined);
    }
    if (toDelete.length) {
      await this.deletePods(job, key, toDelete);
      const gone = new Set(toDelete);
      active = active.filter((p) => !gone.has(p));
    }
    if (toCreate.length) {
      // Failures a podFailurePolicy rule ignores do not delay replacements.
      const counted = pods.filter((p) => !(podOutcome(p, job) === 'failed' && matchPodFailurePolicy(job, p)?.action === 'Ignore'));
      const at = nextCreateTime(counted, job, this.ctx.config.jobBackoffBaseMs, this.ctx.config.jobBackoffMaxMs, now);
      if (at > now) {
        this.enqueueAfter(key, at - now);
        return active;
      }
      this.expectations.expectCreations(key, toCreate.length);
      await Promise.all(toCreate.map((i) => this.createPod(job, key, i)));
    }
    return active;
  }

  private async createPod(job: JobObj, key: string, index: number | undefined): Promise<void> {
    const name = job.metadata.name;
    const pod = podFromTemplate(job.spec!.template!, job, { generateName: index === undefined ? `${name}-` : `${name}-${index}-` }) as Pod;
    pod.metadata.finalizers = [...(pod.metadata.finalizers ?? []), JOB_TRACKING_FINALIZER];
    if (index !== undefined) {
      pod.metadata.annotations = { ...pod.metadata.annotations, [JOB_COMPLETION_INDEX]: String(index) };
      pod.metadata.labels = { ...pod.metadata.labels, [JOB_COMPLETION_INDEX]: String(index) };
      const spec = pod.spec!;
      spec.hostname ??= `${name}-${index}`;
      const env = { name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${JOB_COMPLETION_INDEX}']` } } };
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        if (!(c.env ?? []).some((e) => e.name === env.name)) c.env = [...(c.env ?? []), env];
      }
    }
    await this.podControl.create(key, job, pod);
  }

  private deletePods(job: JobObj, key: string, pods: Pod[]): Promise<void> {
    return this.podControl.delete(key, job, pods);
  }

  /** Removes the tracking finalizer; false when the pod changed under us (try again on its event). */
  private async removeFinalizer(p: Pod): Promise<boolean> {
    const finalizers = (p.metadata.finalizers ?? []).filter((f) => f !== JOB_TRACKING_FINALIZER);
    this.removing.add(p.metadata.uid!);
    try {
      await this.ctx.client.patch(resourcePath(PODS, p.metadata.namespace, p.metadata.name), {
        metadata: { finalizers: finalizers.length ? finalizers : null, uid: p.metadata.uid, resourceVersion: p.metadata.resourceVersion },
      }, 'application/merge-patch+json');
      return true;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return true;
      this.removing.delete(p.metadata.uid!);
      if (e instanceof ApiClientError && e.code === 409) return false;
      throw e;
    }
  }

  /** Writes the counts of the moment and the status if anything changed. */
  private async finishStatus(job: JobObj, status: JobStatus, before: string, active: Pod[], terminating: number): Promise<void> {
    status.active = active.length;
    status.ready = active.filter(isPodReady).length;
    status.terminating = terminating;
    status.succeeded ??= 0;
    status.failed ??= 0;
    if (canonical(normalize(status)) !== before) await this.writeStatus(job, status);
  }

  private async writeStatus(job: JobObj, status: JobStatus): Promise<JobObj> {
    return this.ctx.client.update<JobObj>(resourcePath(JOBS, job.metadata.namespace, job.metadata.name, 'status'), { ...job, status });
  }

  /** A pod with the finalizer whose Job is gone or is not its owner any more: the finalizer goes. */
  private async cleanupOrphan(podKey: string): Promise<void> {
    const p = this.pods.getByKey(podKey);
    if (!p || !hasTrackingFinalizer(p)) return;
    const ref = controllerRef(p);
    if (ref?.kind === 'Job') {
      const j = this.jobs.get(p.metadata.namespace ?? '', ref.name);
      if (j && j.metadata.uid === ref.uid) return this.enqueue(j);
      try {
        const fresh = await this.ctx.client.get<KubeObject>(resourcePath(JOBS, p.metadata.namespace, ref.name));
        if (fresh.metadata?.uid === ref.uid) return;
      } catch (e) {
        if (!(e instanceof ApiClientError && e.code === 404)) throw e;
      }
    }
    await this.removeFinalizer(p);
  }
}

/** The stored shape: uncountedTerminatedPods always present, without empty lists. */
function normalize(status: JobStatus): JobStatus {
  const u = { ...status.uncountedTerminatedPods };
  if (!u.succeeded?.length) delete u.succeeded;
  if (!u.failed?.length) delete u.failed;
  status.uncountedTerminatedPods = u;
  return status;
}

/** Pods in the order they should go (Kubernetes' ActivePods ranking, simplified): unscheduled, not ready, newest first. */
export function rankForDeletion(pods: readonly Pod[]): Pod[] {
  const score = (p: Pod) => [p.spec?.nodeName ? 1 : 0, isPodReady(p) ? 1 : 0, -Date.parse(p.metadata.creationTimestamp ?? '') || 0] as const;
  return [...pods].sort((a, b) => {
    const x = score(a);
    const y = score(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  });
}
