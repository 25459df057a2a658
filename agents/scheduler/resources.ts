// A pod's resource requests as kube-scheduler counts them
// (component-helpers' PodRequests): the app containers' sum, restartable
// init containers (sidecars) added to it, each regular init container
// together with the sidecars started before it, the larger of the two, plus
// the pod overhead. CPU is kept in millicores, everything else in base units
// (bytes, counts), as Kubernetes' Resource struct does.
import { parseQuantity } from '../../api/schema/validate.ts';
import type { Container, Pod } from '../informer/types.ts';

/** Resource name → amount (cpu in millicores). */
export type Resources = Record<string, number>;

/** Kubernetes' defaults for a container without a request, used only for scoring (DefaultMilliCPURequest, DefaultMemoryRequest). */
export const DEFAULT_MILLI_CPU_REQUEST = 100;
export const DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024;

/** One quantity in the scheduler's units; malformed or unset quantities count as 0 (the API validated them). */
export function quantity(resource: string, q: unknown): number {
  if (typeof q !== 'string' && typeof q !== 'number') return 0;
  try {
    const v = parseQuantity(q);
    return resource === 'cpu' ? Math.ceil(Math.round(v * 1e6) / 1e3) : Math.ceil(v);
  } catch {
    return 0;
  }
}

/** A list of quantities (status.allocatable, a container's requests) in scheduler units. */
export function toResources(list: Record<string, unknown> | undefined): Resources {
  const out: Resources = {};
  for (const [k, v] of Object.entries(list ?? {})) out[k] = quantity(k, v);
  return out;
}

function add(into: Resources, r: Resources): void {
  for (const [k, v] of Object.entries(r)) into[k] = (into[k] ?? 0) + v;
}

function maxInto(into: Resources, r: Resources): void {
  for (const [k, v] of Object.entries(r)) if (v > (into[k] ?? 0)) into[k] = v;
}

function containerRequests(c: Container, nonMissing: boolean): Resources {
  const r = c.resources ?? {};
  // The API defaults requests from limits; read limits too for objects built by hand.
  const out = toResources({ ...r.limits, ...r.requests });
  if (nonMissing) {
    // Only a request that is missing; an explicit 0 stays 0.
    if (!('cpu' in out)) out.cpu = DEFAULT_MILLI_CPU_REQUEST;
    if (!('memory' in out)) out.memory = DEFAULT_MEMORY_REQUEST;
  }
  return out;
}

/**
 * The pod's effective requests. `nonMissing` fills containers' missing cpu
 * and memory requests with Kubernetes' scoring defaults (100m, 200Mi), as
 * the LeastAllocated score does so that empty pods still spread.
 */
export function podRequests(pod: Pod, nonMissing = false): Resources {
  const spec = pod.spec;
  const reqs: Resources = {};
  for (const c of spec?.containers ?? []) add(reqs, containerRequests(c, nonMissing));
  const sidecars: Resources = {};
  const init: Resources = {};
  for (const c of spec?.initContainers ?? []) {
    const r = containerRequests(c, nonMissing);
    if (c.restartPolicy === 'Always') {
      // A sidecar keeps running beside the app containers and later init containers.
      add(reqs, r);
      add(sidecars, r);
      maxInto(init, sidecars);
    } else {
      const withSidecars = { ...sidecars };
      add(withSidecars, r);
      maxInto(init, withSidecars);
    }
  }
  maxInto(reqs, init);
  add(reqs, toResources(spec?.overhead as Record<string, unknown> | undefined));
  return reqs;
}
