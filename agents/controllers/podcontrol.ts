// Kubernetes' PodControl with expectations: creating and deleting an owner's
// pods with the Events Kubernetes records, and the owner's expectations kept
// right when a write fails (the cache will never see it, so nobody waits).
import { ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { KubeObject, Pod } from '../informer/types.ts';
import type { EventRecorder } from '../recorder/recorder.ts';
import type { ControllerContext } from './context.ts';
import type { ControllerExpectations } from './expectations.ts';

const PODS = resolveKind('pods')!;

export class PodControl {
  constructor(private readonly ctx: ControllerContext, private readonly recorder: EventRecorder, private readonly expectations: ControllerExpectations) {}

  /** Creates `pod` for `owner` (whose creation expectations under `key` were raised); throws on failure. */
  async create(key: string, owner: KubeObject, pod: Pod): Promise<Pod> {
    try {
      const made = await this.ctx.client.create<Pod>(resourcePath(PODS, owner.metadata?.namespace), pod);
      this.recorder.event(owner, 'Normal', 'SuccessfulCreate', `Created pod: ${made.metadata.name}`);
      return made;
    } catch (e) {
      this.expectations.creationObserved(key);
      this.recorder.event(owner, 'Warning', 'FailedCreate', `Error creating: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Deletes `pods` (uid preconditions), expecting their deletion under `key`; gone or replaced pods are fine. */
  async delete(key: string, owner: KubeObject, pods: Pod[]): Promise<void> {
    if (!pods.length) return;
    const keys = pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`);
    this.expectations.expectDeletions(key, keys);
    await Promise.all(pods.map(async (p, i) => {
      try {
        await this.ctx.client.delete(resourcePath(PODS, p.metadata.namespace, p.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: p.metadata.uid } });
        this.recorder.event(owner, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
      } catch (e) {
        this.expectations.deletionObserved(key, keys[i]);
        if (e instanceof ApiClientError && (e.code === 404 || e.code === 409)) return;
        this.recorder.event(owner, 'Warning', 'FailedDelete', `Error deleting: ${(e as Error).message}`);
        throw e;
      }
    }));
  }
}
