// The Endpoints object a Service should have: one address per selected pod,
// ready or not ready, grouped into subsets of addresses that share the same
// ports (a named targetPort can resolve differently per pod), in a canonical
// order so that "nothing changed" is a plain comparison; capped at 1000
// addresses as Kubernetes caps them.
import type { Pod, Service } from '../../informer/types.ts';
import { findPort, isPodReady, podHostname, podIPv4, podRef, selectedPods, shouldPodBeInEndpoints } from './pods.ts';

/** Kubernetes' maxCapacity of one Endpoints object; beyond it, addresses are truncated. */
export const MAX_ENDPOINTS_ADDRESSES = 1000;
export const OVER_CAPACITY_ANNOTATION = 'endpoints.kubernetes.io/over-capacity';
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

export interface EndpointAddress {
  ip: string;
  hostname?: string;
  nodeName?: string;
  targetRef?: { kind: string; namespace?: string; name: string; uid?: string };
}
export interface EndpointPort { name?: string; port: number; protocol: string; appProtocol?: string }
export interface EndpointSubset {
  addresses?: EndpointAddress[];
  notReadyAddresses?: EndpointAddress[];
  ports?: EndpointPort[];
}

interface Entry { address: EndpointAddress; ready: boolean; ports: EndpointPort[] }

/** The subsets for a service from the pods in its namespace, and whether they were truncated. */
export function desiredSubsets(svc: Service, podsInNamespace: readonly Pod[]): { subsets: EndpointSubset[]; truncated: boolean } {
  const publishNotReady = svc.spec?.publishNotReadyAddresses === true;
  const headless = svc.spec?.clusterIP === 'None';
  const servicePorts = svc.spec?.ports ?? [];
  const entries: Entry[] = [];
  for (const pod of selectedPods(svc, podsInNamespace)) {
    if (!shouldPodBeInEndpoints(pod, publishNotReady)) continue;
    const address: EndpointAddress = { ip: podIPv4(pod)!, targetRef: podRef(pod) };
    if (pod.spec?.nodeName) address.nodeName = pod.spec.nodeName;
    const hostname = podHostname(pod, svc);
    if (hostname) address.hostname = hostname;
    const ready = publishNotReady || isPodReady(pod);
    if (!servicePorts.length) {
      // A headless service may have no ports: its pods are listed by address alone.
      if (headless) entries.push({ address, ready, ports: [] });
      continue;
    }
    const ports: EndpointPort[] = [];
    for (const sp of servicePorts) {
      const port = findPort(pod, sp);
      if (port === undefined) continue; // this pod does not serve that port
      const ep: EndpointPort = { port, protocol: sp.protocol ?? 'TCP' };
      if (sp.name) ep.name = sp.name;
      const app = (sp as { appProtocol?: string }).appProtocol;
      if (app) ep.appProtocol = app;
      ports.push(ep);
    }
    if (ports.length) entries.push({ address, ready, ports });
  }
  const subsets = repack(entries);
  return { subsets, truncated: truncate(subsets) };
}

const portKey = (p: EndpointPort) => `${p.name ?? ''}\0${p.port}\0${p.protocol}\0${p.appProtocol ?? ''}`;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Compares IPs numerically (127.0.0.9 before 127.0.0.10), then by the pod's uid, as Kubernetes sorts addresses. */
function compareAddresses(a: EndpointAddress, b: EndpointAddress): number {
  const pa = a.ip.split('.').map(Number);
  const pb = b.ip.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return cmp(a.targetRef?.uid ?? '', b.targetRef?.uid ?? '');
}

/** Groups addresses by identical port sets (Kubernetes' RepackSubsets) in a canonical order. */
function repack(entries: Entry[]): EndpointSubset[] {
  const groups = new Map<string, { ports: EndpointPort[]; ready: EndpointAddress[]; notReady: EndpointAddress[] }>();
  for (const e of entries) {
    const ports = [...e.ports].sort((a, b) => cmp(portKey(a), portKey(b)));
    const key = ports.map(portKey).join('\n');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ports, ready: [], notReady: [] }));
    (e.ready ? g.ready : g.notReady).push(e.address);
  }
  return [...groups.entries()].sort(([a], [b]) => cmp(a, b)).map(([, g]) => {
    const s: EndpointSubset = {};
    if (g.ready.length) s.addresses = g.ready.sort(compareAddresses);
    if (g.notReady.length) s.notReadyAddresses = g.notReady.sort(compareAddresses);
    if (g.ports.length) s.ports = g.ports;
    return s;
  });
}

/**
 * Keeps at most MAX_ENDPOINTS_ADDRESSES addresses (Kubernetes' truncateEndpoints):
 * ready addresses first; the allowance is shared among subsets in proportion
 * to their size, each share rounded up, the last subsets getting what is left.
 * Returns whether anything was cut.
 */
export function truncate(subsets: EndpointSubset[], max = MAX_ENDPOINTS_ADDRESSES): boolean {
  const ready = subsets.reduce((n, s) => n + (s.addresses?.length ?? 0), 0);
  const notReady = subsets.reduce((n, s) => n + (s.notReadyAddresses?.length ?? 0), 0);
  if (ready + notReady <= max) return false;
  const cutReady = ready > max;
  const allowance = cutReady ? max : max - ready;
  const total = cutReady ? ready : notReady;
  let left = allowance;
  for (const s of subsets) {
    const n = (cutReady ? s.addresses?.length : s.notReadyAddresses?.length) ?? 0;
    const share = Math.min(Math.ceil((n / total) * allowance), left);
    if (cutReady) {
      s.addresses = (s.addresses ?? []).slice(0, share);
      delete s.notReadyAddresses;
      left -= s.addresses.length;
      if (!s.addresses.length) delete s.addresses;
    } else {
      s.notReadyAddresses = (s.notReadyAddresses ?? []).slice(0, share);
      left -= s.notReadyAddresses.length;
      if (!s.notReadyAddresses.length) delete s.notReadyAddresses;
    }
  }
  return true;
}

/** The labels an Endpoints object carries: the service's, plus the headless marker. */
export function endpointsLabels(svc: Service): Record<string, string> {
  const labels: Record<string, string> = { ...(svc.metadata.labels ?? {}) };
  if (svc.spec?.clusterIP === 'None') labels[HEADLESS_LABEL] = '';
  else delete labels[HEADLESS_LABEL];
  return labels;
}
