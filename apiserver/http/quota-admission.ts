// The ResourceQuota admission plugin, as Kubernetes runs it: a new object is
// charged against every quota of its namespace that tracks it (the same
// counting as the resource-quota controller, api/quota-usage.ts); if any
// quota would go over its hard limit, or does not know its usage yet, the
// create is refused (403) with Kubernetes' messages; otherwise each quota's
// status.used is raised with the quota's resourceVersion as a precondition,
// so two creates racing for the last unit cannot both get it (the loser
// re-reads and is refused). As in Kubernetes, a create that then fails leaves
// the charge until the controller recounts. Creates only: updates that
// change usage (a Service becoming NodePort, a claim growing) are not
// re-charged here.
import { kindByResource } from '../../api/kinds/index.ts';
import { formatQuantity, podInScope, quotaUsage, type QuotaSpec, type Pod } from '../../api/quota-usage.ts';
import { parseQuantity } from '../../api/schema/validate.ts';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import { ApiError } from '../errors.ts';
import type { Registry, WriteContext } from '../registry.ts';

const QUOTAS = kindByResource('', 'v1', 'resourcequotas')!;
const MAX_ATTEMPTS = 8;

/** The resources whose quota obliges every container to state them (the pod evaluator's Constraints). */
const MUST_SPECIFY = ['cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory'];

interface Quota extends KubeObject {
  spec?: QuotaSpec;
  status?: { hard?: Record<string, string>; used?: Record<string, string> };
}

const milli = (q: unknown) => {
  try {
    return Math.round(parseQuantity(q as string) * 1000);
  } catch {
    return 0;
  }
};
const isBytes = (r: string) => /memory|storage|hugepages/.test(r);
const pretty = (m: Record<string, string>) => Object.keys(m).sort().map((k) => `${k}=${m[k]}`).join(',');

/** What creating `obj` charges to a quota with this spec: resource → milli-units, only non-zero charges. */
function chargeOf(kind: KindDef, obj: KubeObject, spec: QuotaSpec): Record<string, number> {
  const isPod = kind.group === '' && kind.kind === 'Pod';
  const mine = (k: string) => (kind.group === '' && kind.kind === k ? [obj] : []);
  const names = new Set([kind.plural, `${kind.plural}.${kind.group}`]);
  const used = quotaUsage(spec, {
    pods: isPod ? [obj as Pod] : [],
    services: mine('Service'),
    persistentvolumeclaims: mine('PersistentVolumeClaim'),
    count: (r) => (names.has(r) ? [obj] : []),
  }, Date.now());
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(used)) if (milli(v) > 0) out[k] = milli(v);
  return out;
}

/** "must specify limits.cpu for: app; requests.memory for: app,init" for containers that leave out what the quota constrains. */
function missingSpecs(pod: KubeObject, hard: string[]): string | undefined {
  const required = hard.filter((h) => MUST_SPECIFY.includes(h));
  if (!required.length) return undefined;
  const spec = (pod.spec ?? {}) as { containers?: C[]; initContainers?: C[] };
  type C = { name?: string; resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> } };
  const missing = new Map<string, string[]>();
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    for (const r of required) {
      const [list, res] = r.startsWith('limits.') ? ['limits', r.slice(7)] : ['requests', r.replace(/^requests\./, '')];
      if (c.resources?.[list as 'limits' | 'requests']?.[res] === undefined) missing.set(r, [...(missing.get(r) ?? []), String(c.name ?? '')]);
    }
  }
  if (!missing.size) return undefined;
  return `must specify ${[...missing.keys()].sort().map((r) => `${r} for: ${missing.get(r)!.sort().join(',')}`).join('; ')}`;
}

/**
 * Charges a new object to its namespace's quotas, or refuses it. With
 * `dryRun` the checks run and nothing is written.
 */
export async function admitQuota(reg: Registry, kind: KindDef, obj: KubeObject, ctx: WriteContext): Promise<void> {
  if (!kind.namespaced) return;
  const ns = String(obj.metadata?.namespace ?? '');
  const name = String(obj.metadata?.name ?? '');
  const forbidden = (detail: string) => new ApiError(403, 'Forbidden', `${kind.plural}${kind.group ? `.${kind.group}` : ''} "${name}" is forbidden: ${detail}`, { name, group: kind.group, kind: kind.plural });
  // Quotas already raised by this admission (a retry after a conflict on a later one must not charge them twice).
  const done = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    // After a conflict this member may be behind: catch up with the cluster before counting again.
    if (attempt > 1) await reg.sync({ kind: 'linearizable' }, ctx.timeoutMs);
    const quotas = reg.store.list(resourceKey(QUOTAS.group, QUOTAS.plural), ns).map(({ obj: o }) => ({ rv: o.rv, q: JSON.parse(o.json) as Quota }));
    const raises: { quota: Quota; rv: number; used: Record<string, string> }[] = [];
    for (const { rv, q } of quotas) {
      if (done.has(String(q.metadata?.uid))) continue;
      const spec = q.spec ?? {};
      const hard = spec.hard ?? {};
      const isPod = kind.group === '' && kind.kind === 'Pod';
      if (isPod && !podInScope(obj as Pod, spec)) continue;
      const qname = String(q.metadata?.name ?? '');
      if (isPod) {
        const missing = missingSpecs(obj, Object.keys(hard));
        if (missing) throw forbidden(`failed quota: ${qname}: ${missing}`);
      }
      const charge = chargeOf(kind, obj, spec);
      const charged = Object.keys(charge).filter((r) => hard[r] !== undefined);
      if (!charged.length) continue;
      const used = q.status?.used ?? {};
      const unknown = charged.filter((r) => used[r] === undefined);
      if (unknown.length) throw forbidden(`status unknown for quota: ${qname}, resource: ${unknown.sort().join(',')}`);
      const over = charged.filter((r) => milli(used[r]) + charge[r]! > milli(hard[r]));
      if (over.length) {
        const pick = (f: (r: string) => string) => Object.fromEntries(over.map((r) => [r, f(r)]));
        throw forbidden(`exceeded quota: ${qname}, requested: ${pretty(pick((r) => formatQuantity(charge[r]!, isBytes(r))))}, used: ${pretty(pick((r) => String(used[r])))}, limited: ${pretty(pick((r) => String(hard[r])))}`);
      }
      const next = { ...used };
      for (const r of charged) next[r] = formatQuantity(milli(used[r]) + charge[r]!, isBytes(r));
      raises.push({ quota: q, rv, used: next });
    }
    if (ctx.dryRun || !raises.length) return;
    try {
      for (const { quota, rv, used } of raises) {
        await reg.update(QUOTAS, ns, String(quota.metadata?.name), (cur) => {
          const c = cur as Quota;
          return { ...c, status: { ...(c.status ?? {}), used } } as KubeObject;
        }, { ...ctx, verb: 'update-status' }, rv);
        done.add(String(quota.metadata?.uid));
      }
      return;
    } catch (e) {
      // A quota changed since it was read (another create charged it): count again from the fresh state.
      if (e instanceof ApiError && e.reason === 'Conflict' && attempt < MAX_ATTEMPTS) continue;
      throw e;
    }
  }
}
