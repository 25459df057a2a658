// The namespace controller (Kubernetes' NamespacedResourcesDeleter): a
// Namespace being deleted is emptied — every namespaced kind, pods first and
// alone until they are gone (Kubernetes' ordered namespace deletion, so that
// pods still find the Secrets and ConfigMaps they use while they stop) — its
// status conditions say what is left and why, and once nothing is left the
// "kubernetes" finalizer is removed through namespaces/finalize, after which
// the server removes the Namespace. Content is read with live LISTs, as
// Kubernetes does: a cache that lags would finalize too early.
import { NAMESPACE_FINALIZER } from '../../../api/finalizers.ts';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { type KindDef, allKinds } from '../../client/kinds.ts';
import type { Condition, KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { type DeletionSummary, namespaceConditions, sameConditions } from './conditions.ts';

export { NAMESPACE_FINALIZER };

const NAMESPACES = allKinds().find((k) => !k.group && k.plural === 'namespaces')!;

/** How long to wait before looking again while content remains (ms), unless pods' grace periods say more. */
const RECHECK_MS = 1000;
const MAX_RECHECK_MS = 15_000;

interface Namespace extends KubeObject {
  spec?: { finalizers?: string[] };
  status?: { phase?: string; conditions?: Condition[] };
}

/** Namespaced kinds to empty, pods first. */
export function contentKinds(kinds: readonly KindDef[] = allKinds()): KindDef[] {
  const out = kinds.filter((k) => k.namespaced && k.kind !== 'Binding');
  return [...out.filter((k) => !k.group && k.plural === 'pods'), ...out.filter((k) => !(!k.group && k.plural === 'pods'))];
}

export class NamespaceController extends QueueController {
  private readonly kinds = contentKinds();

  constructor(ctx: ControllerContext) {
    super(ctx, 'namespace');
    const informer = ctx.informers.informer<Namespace>('namespaces');
    const maybe = (ns: Namespace) => {
      if (ns.metadata?.deletionTimestamp) this.enqueue(ns);
    };
    this.handle(informer, { onAdd: maybe, onUpdate: (_o, ns) => maybe(ns) });
  }

  protected async reconcile(name: string): Promise<void> {
    const ns = await this.getNamespace(name);
    if (!ns?.metadata?.deletionTimestamp) return;
    if (!(ns.spec?.finalizers ?? []).includes(NAMESPACE_FINALIZER)) return; // finalized already; others' finalizers hold it
    const { summary, waitMs } = await this.deleteContent(name);
    await this.updateStatus(ns, summary);
    if (summary.failures.length || summary.remaining.size) {
      this.log.info({ namespace: name, remaining: Object.fromEntries(summary.remaining), failures: summary.failures.length }, 'namespace content remains; checking again');
      this.enqueueAfter(name, waitMs);
      return;
    }
    await this.finalize(name);
    this.log.info({ namespace: name }, 'namespace emptied and finalized');
  }

  private async getNamespace(name: string): Promise<Namespace | undefined> {
    try {
      return await this.ctx.client.get<Namespace>(resourcePath(NAMESPACES, undefined, name));
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return undefined;
      throw e;
    }
  }

  /** One pass: DELETE each kind's collection, then LIST what is left. */
  private async deleteContent(ns: string): Promise<{ summary: DeletionSummary; waitMs: number }> {
    const summary: DeletionSummary = { failures: [], remaining: new Map(), finalizers: new Map() };
    let waitMs = RECHECK_MS;
    const now = this.ctx.now();
    for (const kind of this.kinds) {
      const label = `${kind.plural}.${kind.group}`;
      const path = resourcePath(kind, ns);
      try {
        const left = await this.ctx.client.list(path);
        if (left.items.length) {
          await this.ctx.client.delete(path, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
        }
        const still = left.items.length ? (await this.ctx.client.list(path)).items : [];
        if (still.length) summary.remaining.set(label, still.length);
        for (const o of still) {
          for (const f of o.metadata?.finalizers ?? []) summary.finalizers.set(f, (summary.finalizers.get(f) ?? 0) + 1);
          // A pod in its grace period: look again when it should be over.
          const ts = o.metadata?.deletionTimestamp ? Date.parse(o.metadata.deletionTimestamp) : NaN;
          if (Number.isFinite(ts) && ts > now) waitMs = Math.max(waitMs, Math.min(MAX_RECHECK_MS, ts - now + 500));
        }
      } catch (e) {
        summary.failures.push({ resource: label, error: (e as Error).message });
      }
      // Pods go first and alone: nothing else is deleted while one remains.
      if (!kind.group && kind.plural === 'pods' && summary.remaining.has(label)) break;
    }
    return { summary, waitMs };
  }

  private async updateStatus(ns: Namespace, summary: DeletionSummary): Promise<void> {
    const now = new Date(this.ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const conditions = namespaceConditions(summary, ns.status?.conditions, now);
    if (ns.status?.phase === 'Terminating' && sameConditions(ns.status?.conditions, conditions)) return;
    await this.ctx.client.patch(resourcePath(NAMESPACES, undefined, ns.metadata!.name!, 'status'), {
      metadata: { resourceVersion: ns.metadata!.resourceVersion },
      status: { phase: 'Terminating', conditions },
    }, 'application/merge-patch+json');
  }

  /** Removes our finalizer through namespaces/finalize (read fresh: the status write moved the resourceVersion). */
  private async finalize(name: string): Promise<void> {
    const ns = await this.getNamespace(name);
    if (!ns) return;
    const finalizers = (ns.spec?.finalizers ?? []).filter((f) => f !== NAMESPACE_FINALIZER);
    try {
      await this.ctx.client.update(resourcePath(NAMESPACES, undefined, name, 'finalize'), { ...ns, spec: { ...ns.spec, finalizers } });
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
  }
}
