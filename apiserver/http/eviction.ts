// POST pods/NAME/eviction (policy/v1 Eviction): a deletion that honours the
// pod's PodDisruptionBudget, as Kubernetes' eviction subresource does. A pod
// that is not running (Pending, finished, already being deleted) goes
// without a budget check; otherwise its one PDB must allow a disruption:
// the eviction takes one (status.disruptionsAllowed - 1, the pod listed in
// status.disruptedPods, written with the PDB's resourceVersion as a
// precondition, so two evictions racing cannot both take the last one) and
// then deletes the pod gracefully. Refusals are Kubernetes': 429 when the
// budget allows none, 500 when several budgets select the pod.
import { kindByResource } from '../../api/kinds/index.ts';
import { selectorMatches } from '../../api/kinds/common.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import { ApiError, errors } from '../errors.ts';
import { nowRfc3339, type Registry, type WriteContext } from '../registry.ts';

const PODS = kindByResource('', 'v1', 'pods')!;
const PDBS = kindByResource('policy', 'v1', 'poddisruptionbudgets')!;
const MAX_ATTEMPTS = 8;

interface Pdb extends KubeObject {
  spec?: { selector?: unknown; unhealthyPodEvictionPolicy?: string };
  status?: { observedGeneration?: number; disruptionsAllowed?: number; currentHealthy?: number; desiredHealthy?: number; disruptedPods?: Record<string, string> };
}

export interface EvictionRequest {
  /** The pod's namespace and name (from the path). */
  namespace: string;
  name: string;
  /** The Eviction object sent. */
  body: unknown;
}

const tooMany = (message: string, cause: string) => new ApiError(429, 'TooManyRequests', message, {
  causes: [{ reason: 'DisruptionBudget', message: cause }], retryAfterSeconds: 10,
});

const podReady = (pod: KubeObject) => ((pod.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [])
  .some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Checks the Eviction and its budget and takes a disruption from it; returns
 * the grace period the pod is then to be deleted with (the caller deletes).
 */
export async function admitEviction(reg: Registry, req: EvictionRequest, ctx: WriteContext): Promise<{ grace?: number; uid?: string }> {
  const body = (req.body ?? {}) as { kind?: string; apiVersion?: string; metadata?: { name?: string; namespace?: string }; deleteOptions?: { gracePeriodSeconds?: number; preconditions?: { uid?: string } } };
  if (body.kind !== undefined && body.kind !== 'Eviction') throw errors.badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (Eviction)`);
  if (body.metadata?.name !== undefined && body.metadata.name !== req.name) throw errors.badRequest(`name in URL does not match name in Eviction object`);
  const grace = body.deleteOptions?.gracePeriodSeconds;
  if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) throw errors.badRequest('deleteOptions.gracePeriodSeconds must be a non-negative integer');
  const uid = body.deleteOptions?.preconditions?.uid;
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1) await reg.sync({ kind: 'linearizable' }, ctx.timeoutMs);
    const stored = attempt === 1 ? await reg.lookup(PODS, req.namespace, req.name, ctx.timeoutMs) : reg.store.get(resourceKey('', 'pods'), req.namespace, req.name);
    if (!stored) throw errors.notFound('', 'pods', req.name);
    const pod = JSON.parse(stored.json) as KubeObject;
    if (uid && uid !== pod.metadata?.uid) throw errors.conflict('', 'pods', req.name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${String(pod.metadata?.uid)}`);
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    // Nothing to protect: a pod that does not run, or is going anyway.
    if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata?.deletionTimestamp) return { grace, uid };
    const labels = pod.metadata?.labels as Record<string, string> | undefined;
    const pdbs = reg.store.list(resourceKey(PDBS.group, PDBS.plural), req.namespace)
      .map(({ obj }) => ({ rv: obj.rv, pdb: JSON.parse(obj.json) as Pdb }))
      .filter(({ pdb }) => pdb.spec?.selector && selectorMatches(pdb.spec.selector, labels ?? {}));
    if (!pdbs.length) return { grace, uid };
    if (pdbs.length > 1) throw errors.internal('This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
    const { rv, pdb } = pdbs[0]!;
    const pdbName = String(pdb.metadata?.name);
    const st = pdb.status ?? {};
    if ((st.observedGeneration ?? 0) < Number(pdb.metadata?.generation ?? 1)) {
      throw tooMany('Cannot evict pod as it would violate the pod\'s disruption budget.', `The disruption budget ${pdbName} is still being processed by the server.`);
    }
    // An unready pod may go when the budget is met anyway (IfHealthyBudget) or always (AlwaysAllow): nothing healthy is lost.
    if (!podReady(pod)) {
      const policy = pdb.spec?.unhealthyPodEvictionPolicy ?? 'IfHealthyBudget';
      if (policy === 'AlwaysAllow' || (st.currentHealthy ?? 0) >= (st.desiredHealthy ?? 0)) return { grace, uid };
    }
    const allowed = st.disruptionsAllowed ?? 0;
    if (allowed < 0) throw errors.forbidden('pdb disruptions allowed is negative');
    if (allowed === 0) {
      throw tooMany('Cannot evict pod as it would violate the pod\'s disruption budget.',
        `The disruption budget ${pdbName} needs ${st.desiredHealthy ?? 0} healthy pods and has ${st.currentHealthy ?? 0} currently`);
    }
    if (ctx.dryRun) return { grace, uid };
    try {
      await reg.update(PDBS, req.namespace, pdbName, (cur) => {
        const c = cur as Pdb;
        const s = { ...(c.status ?? {}) };
        s.disruptionsAllowed = (s.disruptionsAllowed ?? 0) - 1;
        s.disruptedPods = { ...(s.disruptedPods ?? {}), [req.name]: nowRfc3339() };
        return { ...c, status: s } as KubeObject;
      }, { ...ctx, verb: 'update-status' }, rv);
      return { grace, uid };
    } catch (e) {
      // Another eviction took from the budget meanwhile: decide again on fresh state.
      if (e instanceof ApiError && e.reason === 'Conflict' && attempt < MAX_ATTEMPTS) continue;
      throw e;
    }
  }
}
