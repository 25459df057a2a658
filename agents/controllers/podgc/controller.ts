// The pod garbage collector (Kubernetes' podgc), every podGCPeriodMs:
//  - terminated pods (Succeeded/Failed) beyond terminatedPodGCThreshold are
//    deleted, evicted then oldest first;
//  - pods bound to a node that does not exist are deleted at once (grace 0,
//    after marking them Failed) once the node has been missing for
//    podGCQuarantineMs and a live GET confirms it is gone — terminating or not;
//  - pods being deleted that were never scheduled are deleted at once.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Pod, Stored } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import type { Controller } from '../controller.ts';
import { missingNodes, terminatedOverThreshold, unscheduledTerminating } from './select.ts';

const PODS = resolveKind('pods')!;
const NODES = resolveKind('nodes')!;

export class PodGCController implements Controller {
  readonly name = 'podgc';
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Stored>;
  private readonly log: ControllerContext['log'];
  /** Node name → when this collector first saw pods bound to it while it did not exist. */
  private readonly missingSince = new Map<string, number>();

  constructor(private readonly ctx: ControllerContext) {
    this.log = ctx.log.child({ controller: this.name });
    this.pods = ctx.informers.informer<Pod>('pods');
    this.nodes = ctx.informers.informer<Stored>('nodes');
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.pods.waitForSync();
        await this.nodes.waitForSync();
        await this.gc();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'pod GC pass failed; next pass will retry');
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, this.ctx.config.podGCPeriodMs);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** One pass. */
  async gc(): Promise<void> {
    const pods = this.pods.list();
    for (const p of terminatedOverThreshold(pods, this.ctx.config.terminatedPodGCThreshold)) {
      this.log.info({ pod: `${p.metadata.namespace}/${p.metadata.name}` }, 'deleting a terminated pod over the threshold');
      await this.deletePod(p, 0);
    }
    await this.gcOrphaned(pods);
    for (const p of unscheduledTerminating(pods)) await this.deletePod(p, 0);
  }

  private async gcOrphaned(pods: readonly Pod[]): Promise<void> {
    const now = this.ctx.now();
    const missing = missingNodes(pods, (n) => !!this.nodes.get('', n));
    for (const n of [...this.missingSince.keys()]) if (!missing.has(n)) this.missingSince.delete(n);
    for (const node of missing) {
      const since = this.missingSince.get(node);
      if (since === undefined) {
        this.missingSince.set(node, now);
        continue;
      }
      if (now - since < this.ctx.config.podGCQuarantineMs) continue;
      if (await this.nodeExists(node)) {
        this.missingSince.delete(node);
        continue;
      }
      for (const p of this.pods.byNode(node)) {
        this.log.info({ pod: `${p.metadata.namespace}/${p.metadata.name}`, node }, 'deleting a pod bound to a node that no longer exists');
        await this.markFailed(p);
        await this.deletePod(p, 0);
      }
    }
  }

  private async nodeExists(name: string): Promise<boolean> {
    try {
      await this.ctx.client.get(resourcePath(NODES, undefined, name));
      return true;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return false;
      throw e;
    }
  }

  /** As Kubernetes: a pod not yet terminal is marked Failed, with the DisruptionTarget condition saying why. */
  private async markFailed(p: Pod): Promise<void> {
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return;
    const now = new Date(this.ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const conditions = [...(p.status?.conditions ?? []).filter((c) => c.type !== 'DisruptionTarget'), {
      type: 'DisruptionTarget', status: 'True', reason: 'DeletionByPodGC', message: 'PodGC: node no longer exists', lastTransitionTime: now,
    }];
    try {
      await this.ctx.client.patch(resourcePath(PODS, p.metadata.namespace, p.metadata.name, 'status'), {
        metadata: { uid: p.metadata.uid }, status: { phase: 'Failed', conditions },
      }, 'application/merge-patch+json');
    } catch (e) {
      if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e;
    }
  }

  private async deletePod(p: Pod, grace: number): Promise<void> {
    try {
      await this.ctx.client.delete(resourcePath(PODS, p.metadata.namespace, p.metadata.name), {
        kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: grace, preconditions: { uid: p.metadata.uid },
      });
    } catch (e) {
      if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e;
    }
  }
}
