// Which services a pod event concerns: those in its namespace whose selector
// selects the pod as it was or as it is (a relabelled pod leaves one service
// and joins another). Shared by the Endpoints and EndpointSlice controllers.
import type { EventHandlers, Informer } from '../../informer/informer.ts';
import type { Pod, Service } from '../../informer/types.ts';
import { serviceSelector } from './pods.ts';

export function servicesForPod(services: Informer<Service>, ...pods: (Pod | undefined)[]): Service[] {
  const ns = pods.find(Boolean)?.metadata.namespace ?? '';
  const selects = (svc: Service, pod: Pod | undefined) => {
    const sel = serviceSelector(svc);
    return !!pod && !!sel && Object.entries(sel).every(([k, v]) => pod.metadata.labels?.[k] === v);
  };
  return services.byNamespace(ns).filter((svc) => pods.some((p) => selects(svc, p)));
}

/**
 * Whether a pod update can change endpoints: its labels, address, readiness,
 * phase, node, deletion, hostname or ports changed. Status writes that touch
 * none of these (container restarts counts, probe times) are skipped.
 */
export function podChangeMatters(a: Pod, b: Pod): boolean {
  const view = (p: Pod) => JSON.stringify([
    p.metadata.labels, p.status?.podIP, p.status?.podIPs, p.status?.phase, p.spec?.nodeName, p.metadata.deletionTimestamp,
    (p.status?.conditions ?? []).find((c) => c.type === 'Ready')?.status,
    (p.spec as { hostname?: string; subdomain?: string } | undefined)?.hostname, (p.spec as { subdomain?: string } | undefined)?.subdomain,
    p.spec?.containers?.map((c) => c.ports),
  ]);
  return view(a) !== view(b);
}

/**
 * The handlers both controllers register: a Service event enqueues that
 * Service; a pod event enqueues every Service selecting the pod before or
 * after it, when the change can matter to endpoints.
 */
export function serviceAndPodHandlers(services: Informer<Service>, enqueue: (s: Service) => void): { services: EventHandlers<Service>; pods: EventHandlers<Pod> } {
  return {
    services: { onAdd: enqueue, onUpdate: (_o, s) => enqueue(s), onDelete: enqueue },
    pods: {
      onAdd: (p) => servicesForPod(services, p).forEach(enqueue),
      onUpdate: (a, b) => {
        if (podChangeMatters(a, b)) servicesForPod(services, a, b).forEach(enqueue);
      },
      onDelete: (p) => servicesForPod(services, p).forEach(enqueue),
    },
  };
}
