// What the Endpoints and EndpointSlice controllers read from a pod: whether
// it belongs in a service's endpoints at all, whether it is ready, its
// address, and which port a service port reaches on it (a named targetPort
// resolves per pod, so two pods may serve one service port on different
// container ports).
import type { Pod, Service } from '../../informer/types.ts';

export type ServicePort = NonNullable<NonNullable<Service['spec']>['ports']>[number] & { appProtocol?: string };

/** A pod's Ready condition is True. */
export function isPodReady(pod: Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Succeeded or Failed: its containers will not run again. */
export function isPodTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** The pod's IPv4 address, if it has one yet. */
export function podIPv4(pod: Pod): string | undefined {
  const ips = [pod.status?.podIP, ...((pod.status?.podIPs as { ip?: string }[] | undefined) ?? []).map((p) => p.ip)];
  return ips.find((ip): ip is string => typeof ip === 'string' && ip !== '' && !ip.includes(':'));
}

/**
 * Whether a pod is listed at all (Kubernetes' ShouldPodBeInEndpoints):
 * not terminal, has an address, and is not being deleted unless
 * `includeTerminating` (EndpointSlices list terminating pods with
 * conditions.terminating; Endpoints only when publishNotReadyAddresses).
 */
export function shouldPodBeInEndpoints(pod: Pod, includeTerminating: boolean): boolean {
  if (isPodTerminal(pod)) return false;
  if (!podIPv4(pod)) return false;
  if (!includeTerminating && pod.metadata.deletionTimestamp) return false;
  return true;
}

/**
 * The port a service port reaches on this pod (Kubernetes' FindPort): a
 * number as it is; a name is looked up among the containers' (and restartable
 * init containers') ports with the same protocol. Undefined when the pod has
 * no such port: the pod is then left out of that port's endpoints.
 */
export function findPort(pod: Pod, sp: ServicePort): number | undefined {
  const target = sp.targetPort ?? sp.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(String(target))) return Number(target);
  const protocol = sp.protocol ?? 'TCP';
  const sidecars = (pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  for (const c of [...(pod.spec?.containers ?? []), ...sidecars]) {
    for (const p of c.ports ?? []) {
      if (p.name === target && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
    }
  }
  return undefined;
}

/** The pod's DNS hostname within this service: spec.hostname when spec.subdomain names the service. */
export function podHostname(pod: Pod, svc: Service): string | undefined {
  const spec = pod.spec as { hostname?: string; subdomain?: string } | undefined;
  if (spec?.hostname && spec.subdomain === svc.metadata.name && pod.metadata.namespace === svc.metadata.namespace) return spec.hostname;
  return undefined;
}

/** A service selects pods only with a non-empty selector; one without is managed by hand and left alone. */
export function serviceSelector(svc: Service): Record<string, string> | undefined {
  const sel = svc.spec?.selector;
  return sel && Object.keys(sel).length > 0 ? sel : undefined;
}

/** The pods in the service's namespace that its selector selects. */
export function selectedPods(svc: Service, podsInNamespace: readonly Pod[]): Pod[] {
  const sel = serviceSelector(svc);
  if (!sel) return [];
  return podsInNamespace.filter((p) => Object.entries(sel).every(([k, v]) => p.metadata.labels?.[k] === v));
}

export const podRef = (pod: Pod) => ({ kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid });
