// The LimitRanger admission plugin: a new pod's containers get the default
// limits and requests of the namespace's LimitRanges (type Container), then
// every container, the pod as a whole, and a new PersistentVolumeClaim are
// checked against their min, max and maxLimitRequestRatio. A violation is a
// 403 with Kubernetes' messages ("minimum cpu usage per Container is 100m,
// but request is 50m"), several in brackets.
import { quantityValue } from '../../api/kinds/common.ts';
import { kindByResource } from '../../api/kinds/index.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import { ApiError } from '../errors.ts';
import type { Registry } from '../registry.ts';

const LIMIT_RANGES = kindByResource('', 'v1', 'limitranges')!;

type ResourceList = Record<string, string | number>;
interface LimitItem {
  type?: string;
  max?: ResourceList;
  min?: ResourceList;
  default?: ResourceList;
  defaultRequest?: ResourceList;
  maxLimitRequestRatio?: ResourceList;
}
interface Container { name?: string; resources?: { requests?: ResourceList; limits?: ResourceList } }

function limitItems(reg: Registry, ns: string): LimitItem[] {
  return reg.store.list(resourceKey(LIMIT_RANGES.group, LIMIT_RANGES.plural), ns)
    .flatMap(({ obj }) => ((JSON.parse(obj.json) as { spec?: { limits?: LimitItem[] } }).spec?.limits ?? []));
}

/** Go's %f of a ratio. */
const ratioText = (n: number) => n.toFixed(6);

/** The min, max and ratio checks of one resource list pair (minConstraint, maxConstraint, limitRequestRatioConstraint). */
function check(type: string, item: LimitItem, requests: ResourceList, limits: ResourceList): string[] {
  const errs: string[] = [];
  for (const [r, enforced] of Object.entries(item.min ?? {})) {
    const e = quantityValue(enforced);
    if (requests[r] === undefined) errs.push(`minimum ${r} usage per ${type} is ${enforced}.  No request is specified`);
    else if (quantityValue(requests[r]) < e) errs.push(`minimum ${r} usage per ${type} is ${enforced}, but request is ${requests[r]}`);
    else if (limits[r] !== undefined && quantityValue(limits[r]) < e) errs.push(`minimum ${r} usage per ${type} is ${enforced}, but limit is ${limits[r]}`);
  }
  for (const [r, enforced] of Object.entries(item.max ?? {})) {
    const e = quantityValue(enforced);
    if (limits[r] === undefined) errs.push(`maximum ${r} usage per ${type} is ${enforced}.  No limit is specified`);
    else if (quantityValue(limits[r]) > e) errs.push(`maximum ${r} usage per ${type} is ${enforced}, but limit is ${limits[r]}`);
    else if (requests[r] !== undefined && quantityValue(requests[r]) > e) errs.push(`maximum ${r} usage per ${type} is ${enforced}, but request is ${requests[r]}`);
  }
  for (const [r, enforced] of Object.entries(item.maxLimitRequestRatio ?? {})) {
    const req = requests[r] !== undefined ? quantityValue(requests[r]) : 0;
    const lim = limits[r] !== undefined ? quantityValue(limits[r]) : 0;
    if (req <= 0) errs.push(`${r} max limit to request ratio per ${type} is ${enforced}, but no request is specified or request is 0`);
    else if (lim <= 0) errs.push(`${r} max limit to request ratio per ${type} is ${enforced}, but no limit is specified or limit is 0`);
    else if (lim / req > quantityValue(enforced)) errs.push(`${r} max limit to request ratio per ${type} is ${enforced}, but provided ratio is ${ratioText(lim / req)}`);
  }
  return errs;
}

function forbidden(plural: string, name: string, errs: string[]): ApiError {
  const detail = errs.length === 1 ? errs[0]! : `[${errs.join(', ')}]`;
  return new ApiError(403, 'Forbidden', `${plural} "${name}" is forbidden: ${detail}`, { name, kind: plural });
}

/**
 * Mutates a new pod (defaults) and checks it; call after the pod's own
 * defaulting (requests default to limits first, as Kubernetes decodes before
 * admitting). Returns true when it changed the pod.
 */
export function admitPodLimits(reg: Registry, pod: KubeObject): boolean {
  const items = limitItems(reg, String(pod.metadata?.namespace ?? ''));
  if (!items.length) return false;
  const spec = (pod.spec ?? {}) as { containers?: Container[]; initContainers?: Container[] };
  const all = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
  let changed = false;
  for (const item of items.filter((i) => i.type === 'Container')) {
    for (const c of all) {
      const res = (c.resources ??= {});
      for (const [k, v] of Object.entries(item.default ?? {})) {
        if ((res.limits ??= {})[k] === undefined) {
          res.limits[k] = v;
          changed = true;
        }
      }
      for (const [k, v] of Object.entries(item.defaultRequest ?? {})) {
        if ((res.requests ??= {})[k] === undefined) {
          res.requests[k] = v;
          changed = true;
        }
      }
    }
  }
  const errs: string[] = [];
  for (const item of items) {
    if (item.type === 'Container') {
      for (const c of all) errs.push(...check('Container', item, c.resources?.requests ?? {}, c.resources?.limits ?? {}));
    } else if (item.type === 'Pod') {
      // The pod's total: the sum over app containers, or the largest init container if larger.
      const total = (kind: 'requests' | 'limits'): ResourceList => {
        const out: Record<string, number> = {};
        for (const c of spec.containers ?? []) for (const [k, v] of Object.entries(c.resources?.[kind] ?? {})) out[k] = (out[k] ?? 0) + quantityValue(v);
        for (const c of spec.initContainers ?? []) for (const [k, v] of Object.entries(c.resources?.[kind] ?? {})) out[k] = Math.max(out[k] ?? 0, quantityValue(v));
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, formatAmount(k, v)]));
      };
      errs.push(...check('Pod', item, total('requests'), total('limits')));
    }
  }
  if (errs.length) throw forbidden('pods', String(pod.metadata?.name ?? ''), errs);
  return changed;
}

/** A new claim's storage request against the PersistentVolumeClaim items' min and max. */
export function admitClaimLimits(reg: Registry, pvc: KubeObject): void {
  const items = limitItems(reg, String(pvc.metadata?.namespace ?? '')).filter((i) => i.type === 'PersistentVolumeClaim');
  if (!items.length) return;
  const requests = ((pvc.spec ?? {}) as { resources?: { requests?: ResourceList } }).resources?.requests ?? {};
  const errs: string[] = [];
  for (const item of items) {
    // A claim's limits are not user input: min against the request alone, max against the request (maxRequestConstraint).
    errs.push(...check('PersistentVolumeClaim', { min: item.min }, requests, {}));
    for (const [r, enforced] of Object.entries(item.max ?? {})) {
      if (requests[r] === undefined) errs.push(`maximum ${r} usage per PersistentVolumeClaim is ${enforced}.  No request is specified`);
      else if (quantityValue(requests[r]) > quantityValue(enforced)) errs.push(`maximum ${r} usage per PersistentVolumeClaim is ${enforced}, but request is ${requests[r]}`);
    }
  }
  if (errs.length) throw forbidden('persistentvolumeclaims', String(pvc.metadata?.name ?? ''), errs);
}

/** A summed amount written back as a quantity (millicores for cpu, bytes otherwise). */
function formatAmount(resource: string, v: number): string {
  if (resource === 'cpu') return Number.isInteger(v) ? String(v) : `${Math.round(v * 1000)}m`;
  return String(Math.round(v));
}
