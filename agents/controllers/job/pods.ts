// What the Job controller reads from its pods, as pure functions: whether a
// pod finished and how (a pod being deleted before it succeeded counts as
// failed, as in Kubernetes with podReplacementPolicy TerminatingOrFailed),
// when it finished, its completion index, the compact index lists of
// status.completedIndexes ("1,3-5"), and the exponential back-off before a
// failed pod is replaced.
import type { Job, Pod } from '../../informer/types.ts';
import { isPodTerminal } from '../endpoints/pods.ts';

/** The finalizer that keeps a finished pod until the Job controller has counted it. */
export const JOB_TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';
/** Annotation and label of an Indexed Job's pod. */
export const JOB_COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';

export const hasTrackingFinalizer = (p: Pod): boolean => (p.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER);

/** Only failed pods are replaced (pods being deleted are not failures until they reach Failed). */
function onlyReplaceFailed(job: Job): boolean {
  return job.spec?.podReplacementPolicy === 'Failed' || !!job.spec?.podFailurePolicy;
}

/** 'succeeded', 'failed', or undefined while the pod may still run. */
export function podOutcome(p: Pod, job: Job): 'succeeded' | 'failed' | undefined {
  const phase = p.status?.phase;
  if (phase === 'Succeeded') return 'succeeded';
  if (phase === 'Failed') return 'failed';
  // Kubernetes counts a deleted unfinished pod as failed: it may never reach a terminal phase.
  if (p.metadata.deletionTimestamp && !onlyReplaceFailed(job)) return 'failed';
  return undefined;
}

/** Counts toward status.active: not finished and not being deleted. */
export const isActive = (p: Pod): boolean => !isPodTerminal(p) && !p.metadata.deletionTimestamp;

/** Being deleted but not finished (status.terminating). */
export const isTerminating = (p: Pod): boolean => !isPodTerminal(p) && !!p.metadata.deletionTimestamp;

/** When the pod finished (its last container's end, else its deletion), ms since the epoch. */
export function finishTime(p: Pod, fallback: number): number {
  let t = Number.NaN;
  for (const s of (p.status?.containerStatuses ?? []) as { state?: { terminated?: { finishedAt?: string } } }[]) {
    const f = Date.parse(s.state?.terminated?.finishedAt ?? '');
    if (!Number.isNaN(f) && !(f <= t)) t = f;
  }
  if (!Number.isNaN(t)) return t;
  const d = Date.parse(p.metadata.deletionTimestamp ?? '');
  return Number.isNaN(d) ? fallback : d;
}

/** The pod's completion index when valid for `completions`, else undefined. */
export function completionIndex(p: Pod, completions: number): number | undefined {
  const v = p.metadata.annotations?.[JOB_COMPLETION_INDEX] ?? p.metadata.labels?.[JOB_COMPLETION_INDEX];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const i = Number(v);
  return i < completions ? i : undefined;
}

/** "0,2-4" for {0,2,3,4} (Kubernetes' completedIndexes format). */
export function formatIndexes(indexes: Iterable<number>): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** The indexes of a completedIndexes string, ignoring those ≥ completions (a shrunk elastic job). */
export function parseIndexes(s: string | undefined, completions: number): Set<number> {
  const out = new Set<number>();
  for (const part of (s ?? '').split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a)) continue;
    for (let i = a!; i <= (Number.isInteger(b) ? b! : a!) && i < completions; i++) out.add(i);
  }
  return out;
}

/**
 * How long after the last failure the next pod may start: base × 2^(n−1) for
 * n failures since the last success, capped (Kubernetes: 10 s, 6 min).
 */
export function backoffDelay(failuresSinceSuccess: number, baseMs: number, maxMs: number): number {
  if (failuresSinceSuccess <= 0) return 0;
  const d = baseMs * 2 ** Math.min(failuresSinceSuccess - 1, 40);
  return Math.min(d, maxMs);
}

/** When the next pod may be created, from the job's finished pods (0: now). */
export function nextCreateTime(pods: readonly Pod[], job: Job, baseMs: number, maxMs: number, now: number): number {
  let lastSuccess = -Infinity;
  const failures: number[] = [];
  for (const p of pods) {
    const o = podOutcome(p, job);
    if (o === 'succeeded') lastSuccess = Math.max(lastSuccess, finishTime(p, now));
    else if (o === 'failed') failures.push(finishTime(p, now));
  }
  const after = failures.filter((t) => t > lastSuccess);
  if (!after.length) return 0;
  return Math.max(...after) + backoffDelay(after.length, baseMs, maxMs);
}

interface PodFailurePolicyRule {
  action: 'FailJob' | 'Ignore' | 'Count' | 'FailIndex';
  onExitCodes?: { containerName?: string; operator: 'In' | 'NotIn'; values: number[] };
  onPodConditions?: { type: string; status?: string }[];
}

export interface PolicyMatch {
  action: PodFailurePolicyRule['action'];
  message: string;
}

type TerminatedStatus = { name: string; state?: { terminated?: { exitCode?: number } } };

/**
 * The first rule of spec.podFailurePolicy a failed pod matches (Kubernetes'
 * matchPodFailurePolicy): onExitCodes looks at containers (init containers
 * too) that terminated with a non-zero code, onPodConditions at the pod's
 * conditions. Undefined when no rule matches (the failure counts).
 */
export function matchPodFailurePolicy(job: Job, p: Pod): PolicyMatch | undefined {
  const rules = ((job.spec?.podFailurePolicy as { rules?: PodFailurePolicyRule[] } | undefined)?.rules) ?? [];
  const where = `${p.metadata.namespace}/${p.metadata.name}`;
  const statuses = [...((p.status?.initContainerStatuses as TerminatedStatus[] | undefined) ?? []), ...((p.status?.containerStatuses as TerminatedStatus[] | undefined) ?? [])];
  for (const [i, rule] of rules.entries()) {
    const on = rule.onExitCodes;
    if (on) {
      for (const s of statuses) {
        const code = s.state?.terminated?.exitCode;
        if (code === undefined || code === 0 || (on.containerName && on.containerName !== s.name)) continue;
        if (on.values.includes(code) === (on.operator === 'In')) {
          return { action: rule.action, message: `Container ${s.name} for pod ${where} failed with exit code ${code} matching ${rule.action} rule at index ${i}` };
        }
      }
    }
    for (const pattern of rule.onPodConditions ?? []) {
      const c = (p.status?.conditions ?? []).find((x) => x.type === pattern.type);
      if (c && c.status === (pattern.status ?? 'True')) {
        return { action: rule.action, message: `Pod ${where} has condition ${pattern.type} matching ${rule.action} rule at index ${i}` };
      }
    }
  }
  return undefined;
}
