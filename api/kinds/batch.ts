// batch/v1: Job and CronJob.

import { arr, atomic, bool, int, int64, obj, oneOf, set, str, time } from '../schema/dsl.ts';
import { LabelSelector, ObjectMeta, ObjectReference, conditionOf } from '../schema/meta.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { immutable, invalid, isDNS1123Subdomain, notSupported, required } from '../schema/validate.ts';
import { scheduleError, timeZoneError } from '../cron.ts';
import {
  type Obj, ageColumn, changedExcept, column, defaults, defineKind, deepEqual, ensure, humanDuration, immutableFields, list,
  formatLabelSelector, nonNegative, rec, selectorColumn, since, templateColumns, validateLabelSelector,
} from './common.ts';
import { PodTemplateSpec, defaultPodTemplate, validatePodTemplate } from './pod.ts';

const B = (n: string) => `io.k8s.api.batch.v1.${n}`;

/** The labels Kubernetes puts on a Job's pods and selects them by. */
export const JOB_LABELS = {
  controllerUid: 'batch.kubernetes.io/controller-uid',
  legacyControllerUid: 'controller-uid',
  jobName: 'batch.kubernetes.io/job-name',
  legacyJobName: 'job-name',
} as const;

/**
 * generateSelector (batch registry): unless spec.manualSelector, labels the pod
 * template with the job's name and uid and selects on the uid. Needs
 * metadata.uid; a no-op without it or when a selector is already set.
 */
export function generateJobSelector(job: Obj): void {
  const spec = ensure(job, 'spec');
  const uid = job.metadata?.uid;
  if (spec.manualSelector === true || !uid || rec(spec.selector)) return;
  const labels = ensure(ensure(ensure(spec, 'template'), 'metadata'), 'labels');
  defaults(labels, {
    [JOB_LABELS.legacyJobName]: job.metadata.name, [JOB_LABELS.jobName]: job.metadata.name,
    [JOB_LABELS.legacyControllerUid]: uid, [JOB_LABELS.controllerUid]: uid,
  });
  spec.selector = { matchLabels: { [JOB_LABELS.controllerUid]: uid } };
}

/** Job condition types in the order kubectl's STATUS column considers them. */
function jobStatus(job: Obj): string {
  const has = (type: string) => list(job.status?.conditions).some((c) => c.type === type && c.status === 'True');
  if (has('Complete')) return 'Complete';
  if (has('Failed')) return 'Failed';
  if (job.metadata?.deletionTimestamp) return 'Terminating';
  for (const t of ['Suspended', 'FailureTarget', 'SuccessCriteriaMet']) if (has(t)) return t;
  return 'Running';
}

function jobCompletions(job: Obj): string {
  const succeeded = Number(job.status?.succeeded ?? 0);
  const { completions, parallelism } = rec(job.spec) ?? {};
  if (typeof completions === 'number') return `${succeeded}/${completions}`;
  if (typeof parallelism === 'number' && parallelism > 1) return `${succeeded}/1 of ${parallelism}`;
  return `${succeeded}/1`;
}

function jobDuration(job: Obj, now: number): string {
  const start = Date.parse(job.status?.startTime ?? '');
  if (Number.isNaN(start)) return '';
  const end = Date.parse(job.status?.completionTime ?? '');
  return humanDuration((Number.isNaN(end) ? now : end) - start);
}

/** Template fields a suspended job that never started may change (mutable scheduling directives). */
const SCHEDULING_DIRECTIVES = ['nodeSelector', 'affinity', 'tolerations', 'schedulingGates'];

function validateTemplateUpdate(job: Obj, old: Obj): Cause[] {
  const t = rec(job.spec?.template) ?? {};
  const o = rec(old.spec?.template) ?? {};
  if (deepEqual(t, o)) return [];
  const mutableScheduling = job.spec?.suspend === true && !old.status?.startTime;
  if (mutableScheduling && !changedExcept(t.spec, o.spec, SCHEDULING_DIRECTIVES)
    && deepEqual({ ...t.metadata, labels: undefined, annotations: undefined }, { ...o.metadata, labels: undefined, annotations: undefined })) {
    return [];
  }
  return [immutable('spec.template', t)];
}

/** The checks of a JobSpec that hold in a Job and in a CronJob's jobTemplate. */
function validateJobSpec(spec: Obj, path: string): Cause[] {
  const out: Cause[] = [];
  for (const f of ['parallelism', 'completions', 'activeDeadlineSeconds', 'backoffLimit', 'ttlSecondsAfterFinished', 'backoffLimitPerIndex', 'maxFailedIndexes']) {
    out.push(...nonNegative(spec[f], `${path}.${f}`));
  }
  if (spec.manualSelector === true && !rec(spec.selector)) out.push(required(`${path}.selector`));
  out.push(...validateLabelSelector(spec.selector, `${path}.selector`));
  out.push(...validatePodTemplate(spec.template, `${path}.template`, { selector: spec.selector, restartPolicies: ['OnFailure', 'Never'] }));
  if (spec.completionMode === 'Indexed' && spec.completions == null) {
    out.push(required(`${path}.completions`, 'when completion mode is Indexed'));
  }
  return out;
}

export const job = defineKind({
  group: 'batch', version: 'v1', kind: 'Job', plural: 'jobs', categories: ['all'], subresources: ['status'],
  description: 'Job represents the configuration of a single job.',
  fields: {
    spec: obj({
      parallelism: int({ description: 'Specifies the maximum desired number of pods the job should run at any given time.' }),
      completions: int({ description: 'Specifies the desired number of successfully finished pods the job should be run with.' }),
      activeDeadlineSeconds: int64(),
      podFailurePolicy: obj({
        rules: atomic(obj({
          action: oneOf('Count', 'FailIndex', 'FailJob', 'Ignore'),
          onExitCodes: obj({ containerName: str(), operator: oneOf('In', 'NotIn'), values: set(int()) },
            { name: B('PodFailurePolicyOnExitCodesRequirement'), required: ['operator', 'values'] }),
          onPodConditions: atomic(obj({ type: str(), status: str() }, { name: B('PodFailurePolicyOnPodConditionsPattern'), required: ['type'] })),
        }, { name: B('PodFailurePolicyRule'), required: ['action'] })),
      }, { name: B('PodFailurePolicy'), required: ['rules'] }),
      successPolicy: obj({
        rules: atomic(obj({ succeededIndexes: str(), succeededCount: int() }, { name: B('SuccessPolicyRule') })),
      }, { name: B('SuccessPolicy'), required: ['rules'] }),
      backoffLimit: int(),
      backoffLimitPerIndex: int(),
      maxFailedIndexes: int(),
      selector: LabelSelector,
      manualSelector: bool(),
      template: PodTemplateSpec,
      ttlSecondsAfterFinished: int(),
      completionMode: oneOf('Indexed', 'NonIndexed'),
      suspend: bool(),
      podReplacementPolicy: oneOf('Failed', 'TerminatingOrFailed'),
      managedBy: str(),
    }, { name: B('JobSpec'), required: ['template'] }),
    status: obj({
      conditions: arr(conditionOf(B('JobCondition'), ['lastProbeTime', 'lastTransitionTime']),
        { listType: 'atomic', mergeKey: 'type', patchStrategy: 'merge' }),
      startTime: time(),
      completionTime: time(),
      active: int(),
      succeeded: int(),
      failed: int(),
      terminating: int(),
      completedIndexes: str(),
      failedIndexes: str(),
      uncountedTerminatedPods: obj({ succeeded: set(str()), failed: set(str()) }, { name: B('UncountedTerminatedPods') }),
      ready: int(),
    }, { name: B('JobStatus') }),
  },
  default(j) {
    const spec = ensure(j, 'spec');
    if (spec.completions == null && spec.parallelism == null) Object.assign(spec, { completions: 1, parallelism: 1 });
    defaults(spec, {
      parallelism: 1, backoffLimit: spec.backoffLimitPerIndex != null ? 2147483647 : 6, completionMode: 'NonIndexed',
      suspend: false, manualSelector: false,
    });
    if (!rec(spec.podFailurePolicy)) defaults(spec, { podReplacementPolicy: 'TerminatingOrFailed' });
    defaultPodTemplate(spec.template);
    generateJobSelector(j);
    // A job without labels takes its pods' (which include the generated ones, as on every read in Kubernetes).
    const templateLabels = rec(spec.template?.metadata?.labels);
    const meta = ensure(j, 'metadata');
    if (templateLabels && !Object.keys(rec(meta.labels) ?? {}).length) meta.labels = { ...templateLabels };
  },
  validate(j, old) {
    const spec = rec(j.spec) ?? {};
    const out = validateJobSpec(spec, 'spec');
    if (spec.manualSelector !== true && rec(spec.selector) && j.metadata?.uid
      && spec.selector.matchLabels?.[JOB_LABELS.controllerUid] !== j.metadata.uid) {
      out.push(invalid('spec.selector', spec.selector, '`selector` not auto-generated'));
    }
    if (old) {
      const elastic = spec.completionMode === 'Indexed' && spec.completions === spec.parallelism && old.spec?.completions === old.spec?.parallelism;
      const fixed = ['selector', 'completionMode', 'podFailurePolicy', 'backoffLimitPerIndex', 'managedBy', 'successPolicy'];
      if (!elastic) fixed.push('completions');
      out.push(...immutableFields(j, old, fixed.map((f) => `spec.${f}`)));
      out.push(...validateTemplateUpdate(j, old));
    }
    return out;
  },
  columns: [
    column('Status', jobStatus, { description: 'Status of the job.' }),
    column('Completions', jobCompletions, { description: 'The completion status of the job (succeeded/desired).' }),
    column('Duration', jobDuration, { description: 'Time required to complete the job.' }),
    ageColumn,
    ...templateColumns(),
    selectorColumn,
  ],
});

// ---- CronJob -------------------------------------------------------------------------------

/** A CronJob's name leaves room for the 11 characters of "-<minutes since the epoch>" in its Jobs' names. */
const CRONJOB_NAME_MAX = 52;

function cronJobName(name: string): string[] {
  const out = isDNS1123Subdomain(name);
  if (name.length > CRONJOB_NAME_MAX) out.push(`must be no more than ${CRONJOB_NAME_MAX} characters`);
  return out;
}

function validateSchedule(spec: Obj, oldSpec: Obj | undefined): Cause[] {
  const schedule = spec.schedule;
  if (typeof schedule !== 'string' || schedule === '') return [required('spec.schedule')];
  if (oldSpec && oldSpec.schedule === schedule) return [];
  if (schedule.includes('TZ')) {
    return [invalid('spec.schedule', schedule, spec.timeZone != null
      ? 'cannot use both timeZone field and TZ or CRON_TZ in schedule'
      : 'cannot use TZ or CRON_TZ in schedule, use timeZone field instead')];
  }
  const err = scheduleError(schedule);
  return err ? [invalid('spec.schedule', schedule, err)] : [];
}

const CONCURRENCY_POLICIES = ['Allow', 'Forbid', 'Replace'];

export const cronJob = defineKind({
  group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs', shortNames: ['cj'], categories: ['all'], subresources: ['status'],
  description: 'CronJob represents the configuration of a single cron job.',
  name: cronJobName,
  fields: {
    spec: obj({
      schedule: str({ description: 'The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.' }),
      timeZone: str({ description: 'The time zone name for the given schedule; UTC when unset.' }),
      startingDeadlineSeconds: int64(),
      concurrencyPolicy: oneOf(...CONCURRENCY_POLICIES),
      suspend: bool(),
      jobTemplate: obj({ metadata: ObjectMeta, spec: job.schema.properties!.spec! }, { name: B('JobTemplateSpec') }),
      successfulJobsHistoryLimit: int(),
      failedJobsHistoryLimit: int(),
    }, { name: B('CronJobSpec'), required: ['schedule', 'jobTemplate'] }),
    status: obj({
      active: atomic(ObjectReference),
      lastScheduleTime: time(),
      lastSuccessfulTime: time(),
    }, { name: B('CronJobStatus') }),
  },
  default(cj) {
    const spec = ensure(cj, 'spec');
    defaults(spec, { concurrencyPolicy: 'Allow', suspend: false, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 1 });
    defaultPodTemplate(rec(spec.jobTemplate?.spec)?.template);
  },
  validate(cj, old) {
    const spec = rec(cj.spec) ?? {};
    const out = validateSchedule(spec, rec(old?.spec));
    if (spec.timeZone != null) {
      const err = timeZoneError(String(spec.timeZone));
      if (err) out.push(invalid('spec.timeZone', spec.timeZone, err));
    }
    if (spec.concurrencyPolicy == null) out.push(required('spec.concurrencyPolicy'));
    else if (!CONCURRENCY_POLICIES.includes(spec.concurrencyPolicy)) out.push(notSupported('spec.concurrencyPolicy', spec.concurrencyPolicy, CONCURRENCY_POLICIES));
    for (const f of ['startingDeadlineSeconds', 'successfulJobsHistoryLimit', 'failedJobsHistoryLimit']) out.push(...nonNegative(spec[f], `spec.${f}`));
    const jt = rec(spec.jobTemplate);
    if (!jt) out.push(required('spec.jobTemplate'));
    else out.push(...validateJobSpec(rec(jt.spec) ?? {}, 'spec.jobTemplate.spec'));
    return out;
  },
  columns: [
    column('Schedule', (cj) => String(cj.spec?.schedule ?? ''), { description: 'The schedule in Cron format.' }),
    column('Timezone', (cj) => (cj.spec?.timeZone == null ? '<none>' : String(cj.spec.timeZone)), { description: 'The time zone name for the given schedule.' }),
    column('Suspend', (cj) => (cj.spec?.suspend === true ? 'True' : 'False'), { type: 'boolean', description: 'Whether subsequent executions are suspended.' }),
    column('Active', (cj) => list(cj.status?.active).length, { type: 'integer', description: 'The number of currently running jobs.' }),
    column('Last Schedule', (cj, now) => (cj.status?.lastScheduleTime ? since(cj.status.lastScheduleTime, now) : '<none>'), { description: 'When the job was last successfully scheduled.' }),
    ageColumn,
    ...templateColumns('spec.jobTemplate.spec.template.spec'),
    column('Selector', (cj) => formatLabelSelector(cj.spec?.jobTemplate?.spec?.selector), { wide: true, description: 'The label selector of the jobs.' }),
  ],
});

export const BATCH_KINDS: KindDef[] = [job, cronJob];
