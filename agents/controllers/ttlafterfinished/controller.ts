// The TTL-after-finished controller (Kubernetes' pkg/controller/ttlafterfinished):
// a finished Job (Complete or Failed) with spec.ttlSecondsAfterFinished is
// deleted that long after it finished, its pods with it (background
// propagation). Before deleting it re-reads the Job, so a TTL changed or a
// Job restarted since the cache saw it is honoured, and deletes with the
// read resourceVersion as precondition.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Job } from '../../informer/types.ts';
import { findCondition } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';

const JOBS = resolveKind('jobs')!;

/** When a Job may be deleted (ms since the epoch), or undefined when it has no TTL or has not finished. */
export function jobExpiry(job: Job): number | undefined {
  const ttl = job.spec?.ttlSecondsAfterFinished;
  if (typeof ttl !== 'number' || job.metadata.deletionTimestamp) return undefined;
  for (const type of ['Complete', 'Failed']) {
    const c = findCondition(job.status?.conditions, type);
    if (c?.status !== 'True') continue;
    const at = Date.parse(c.lastTransitionTime ?? '');
    if (!Number.isNaN(at)) return at + ttl * 1000;
  }
  return undefined;
}

export class TTLAfterFinishedController extends QueueController {
  private readonly jobs: Informer<Job>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'ttl-after-finished');
    this.jobs = ctx.informers.informer<Job>('jobs');
    const maybe = (j: Job) => {
      if (jobExpiry(j) !== undefined) this.enqueue(j);
    };
    this.handle(this.jobs, { onAdd: maybe, onUpdate: (_o, j) => maybe(j) });
  }

  protected async reconcile(key: string): Promise<void> {
    const cached = this.jobs.getByKey(key);
    if (!cached) return;
    const expiry = jobExpiry(cached);
    if (expiry === undefined) return;
    if (expiry > this.ctx.now()) return this.enqueueAfter(key, expiry - this.ctx.now());
    const path = resourcePath(JOBS, cached.metadata.namespace, cached.metadata.name);
    let fresh: Job;
    try {
      fresh = await this.ctx.client.get<Job>(path);
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
    const freshExpiry = jobExpiry(fresh);
    if (freshExpiry === undefined) return;
    if (freshExpiry > this.ctx.now()) return this.enqueueAfter(key, freshExpiry - this.ctx.now());
    try {
      await this.ctx.client.delete(path, {
        apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background',
        preconditions: { uid: fresh.metadata.uid, resourceVersion: fresh.metadata.resourceVersion },
      });
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e; // 409: it changed since the read; the next pass reads it again.
    }
  }
}
