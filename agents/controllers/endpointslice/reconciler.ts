// The EndpointSlice reconciler's decisions, as pure functions: which
// endpoints a Service should have (grouped by the ports they serve), and
// which slices to create, update and delete to get there from the slices
// that exist, with Kubernetes' packing behaviour:
//  - an endpoint stays in the slice it is in (only changed endpoints make a
//    slice change), slices whose endpoints all went are deleted;
//  - new endpoints go first into slices that change anyway (fullest first),
//    then, if fewer than a slice's worth remain, into the unchanged slice
//    that fits them most tightly, otherwise into new slices of up to
//    maxEndpointsPerSlice;
//  - a create paired with a delete becomes an update of the deleted slice;
//  - a Service with no endpoints keeps one empty placeholder slice.
import { deepEqual } from '../../../api/kinds/common.ts';
import { LABEL_MANAGED_BY, LABEL_SERVICE_NAME } from '../../../api/kinds/discovery.ts';
import type { KubeObject, Node, Pod, Service } from '../../informer/types.ts';
import { type OwnerReference, newControllerRef } from '../ownership.ts';
import { findPort, isPodReady, podHostname, podIPv4, podRef, selectedPods, shouldPodBeInEndpoints } from '../endpoints/pods.ts';

export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** --max-endpoints-per-slice's default. */
export const DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100;

export interface SliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef?: { kind: string; namespace?: string; name: string; uid?: string };
}
export interface SlicePort { name: string; port: number; protocol: string; appProtocol?: string }

export interface EndpointSlice extends KubeObject {
  metadata: KubeObject['metadata'] & { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] };
  addressType: string;
  endpoints: SliceEndpoint[];
  ports: SlicePort[];
}

/** The desired endpoints of one port set. */
export interface PortGroup { ports: SlicePort[]; endpoints: SliceEndpoint[] }

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The identity of a port set, whatever the order of its ports. */
export function portSetKey(ports: readonly SlicePort[]): string {
  return ports.map((p) => `${p.name}\0${p.port}\0${p.protocol}\0${p.appProtocol ?? ''}`).sort().join('\n');
}

/** The identity of an endpoint: which pod, at which addresses (conditions and placement may change in place). */
export function endpointKey(e: SliceEndpoint): string {
  const r = e.targetRef;
  return `${r?.namespace ?? ''}/${r?.name ?? ''}\0${[...e.addresses].sort().join(',')}\0${e.hostname ?? ''}`;
}

/**
 * The endpoints a service should have, by port set. Terminating pods are
 * listed (conditions.terminating); ready is serving and not terminating, or
 * always with publishNotReadyAddresses.
 */
export function desiredEndpoints(svc: Service, podsInNamespace: readonly Pod[], nodes: (name: string) => Node | undefined = () => undefined): Map<string, PortGroup> {
  const out = new Map<string, PortGroup>();
  const publishNotReady = svc.spec?.publishNotReadyAddresses === true;
  for (const pod of selectedPods(svc, podsInNamespace)) {
    if (!shouldPodBeInEndpoints(pod, true)) continue;
    const ports: SlicePort[] = [];
    for (const sp of svc.spec?.ports ?? []) {
      const port = findPort(pod, sp);
      if (port === undefined) continue;
      const p: SlicePort = { name: sp.name ?? '', port, protocol: sp.protocol ?? 'TCP' };
      const app = (sp as { appProtocol?: string }).appProtocol;
      if (app) p.appProtocol = app;
      ports.push(p);
    }
    const serving = isPodReady(pod);
    const terminating = !!pod.metadata.deletionTimestamp;
    const ep: SliceEndpoint = {
      addresses: [podIPv4(pod)!],
      conditions: { ready: publishNotReady || (serving && !terminating), serving, terminating },
      targetRef: podRef(pod),
    };
    const hostname = podHostname(pod, svc);
    if (hostname) ep.hostname = hostname;
    const nodeName = pod.spec?.nodeName;
    if (nodeName) {
      ep.nodeName = nodeName;
      const zone = nodes(nodeName)?.metadata.labels?.[ZONE_LABEL];
      if (zone) ep.zone = zone;
    }
    const key = portSetKey(ports);
    let g = out.get(key);
    if (!g) out.set(key, (g = { ports, endpoints: [] }));
    g.endpoints.push(ep);
  }
  for (const g of out.values()) g.endpoints.sort((a, b) => cmp(endpointKey(a), endpointKey(b)));
  return out;
}

const RESERVED = new Set([LABEL_SERVICE_NAME, LABEL_MANAGED_BY, HEADLESS_LABEL]);

/** A managed slice's labels: the service's (but the reserved keys), its name, the manager, and the headless marker. */
export function sliceLabels(svc: Service): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(svc.metadata.labels ?? {})) if (!RESERVED.has(k)) labels[k] = v;
  const ip = svc.spec?.clusterIP;
  if (!ip || ip === 'None') labels[HEADLESS_LABEL] = '';
  labels[LABEL_SERVICE_NAME] = svc.metadata.name;
  labels[LABEL_MANAGED_BY] = MANAGED_BY;
  return labels;
}

/** generateName of a service's slices: "<service>-", shortened to leave room for the random suffix. */
export function slicePrefix(svc: Service): string {
  return `${svc.metadata.name.slice(0, 57)}-`;
}

export function newSlice(svc: Service, ports: SlicePort[]): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      generateName: slicePrefix(svc), namespace: svc.metadata.namespace, labels: sliceLabels(svc),
      ownerReferences: [newControllerRef({ ...svc, apiVersion: 'v1', kind: 'Service' })],
    },
    addressType: 'IPv4', endpoints: [], ports,
  };
}

export interface SliceChanges {
  create: EndpointSlice[];
  update: EndpointSlice[];
  delete: EndpointSlice[];
}

const ownedBy = (s: EndpointSlice, svc: Service) =>
  (s.metadata.ownerReferences ?? []).some((r) => r.controller && r.kind === 'Service' && r.uid === svc.metadata.uid);

/**
 * What to create, update and delete so that the service's managed slices
 * (`existing`: the slices labelled with its name and managed by this
 * controller) hold exactly `desired`, at most `maxPerSlice` endpoints each.
 */
export function reconcileSlices(svc: Service, existing: readonly EndpointSlice[], desired: Map<string, PortGroup>, maxPerSlice = DEFAULT_MAX_ENDPOINTS_PER_SLICE): SliceChanges {
  const out: SliceChanges = { create: [], update: [], delete: [] };
  const byPorts = new Map<string, EndpointSlice[]>();
  for (const s of existing) {
    const key = portSetKey(s.ports ?? []);
    // A slice of another service of this name (deleted and re-created), of another address type, or of ports no longer served, goes.
    if (!ownedBy(s, svc) || s.addressType !== 'IPv4' || !desired.has(key)) out.delete.push(s);
    else byPorts.set(key, [...(byPorts.get(key) ?? []), s]);
  }
  const labels = sliceLabels(svc);
  for (const [key, group] of [...desired.entries()].sort(([a], [b]) => cmp(a, b))) {
    const r = reconcilePortGroup(svc, byPorts.get(key) ?? [], group, labels, maxPerSlice);
    out.create.push(...r.create);
    out.update.push(...r.update);
    out.delete.push(...r.delete);
  }
  // No endpoints at all: one empty placeholder slice stands for the service (kept if it is already there).
  if (existing.length === out.delete.length && out.create.length === 0) {
    const placeholder = newSlice(svc, []);
    const i = out.delete.findIndex((s) => ownedBy(s, svc) && s.addressType === 'IPv4' && !s.endpoints?.length && !s.ports?.length && deepEqual(s.metadata.labels, labels));
    if (out.delete.length === 1 && i === 0) out.delete = [];
    else out.create.push(placeholder);
  }
  // A create and a delete make one update: the slice to delete is reused under its name.
  for (let i = 0; i < out.delete.length && out.create.length;) {
    const gone = out.delete[i]!;
    if (gone.addressType === 'IPv4' && ownedBy(gone, svc)) {
      const slice = out.create.pop()!;
      slice.metadata = { ...gone.metadata, labels: slice.metadata.labels, ownerReferences: slice.metadata.ownerReferences };
      delete slice.metadata.generateName;
      out.update.push(slice);
      out.delete.splice(i, 1);
    } else {
      i++;
    }
  }
  return out;
}

function reconcilePortGroup(svc: Service, slices: EndpointSlice[], group: PortGroup, labels: Record<string, string>, max: number): SliceChanges {
  const wanted = new Map(group.endpoints.map((e) => [endpointKey(e), e]));
  const toUpdate: EndpointSlice[] = [];
  const unchanged: EndpointSlice[] = [];
  const toDelete: EndpointSlice[] = [];
  // 1. Endpoints stay where they are; a slice changes only if one of its endpoints changed or went.
  for (const s of slices) {
    const kept: SliceEndpoint[] = [];
    let changed = false;
    for (const e of s.endpoints ?? []) {
      const want = wanted.get(endpointKey(e));
      if (!want) continue;
      kept.push(want);
      if (!deepEqual(want, e)) changed = true;
      wanted.delete(endpointKey(e));
    }
    const labelsChanged = !deepEqual(s.metadata.labels, labels);
    if (changed || kept.length !== (s.endpoints ?? []).length) {
      if (!kept.length) toDelete.push(s);
      else toUpdate.push({ ...s, metadata: { ...s.metadata, labels }, endpoints: kept });
    } else if (labelsChanged) {
      toUpdate.push({ ...s, metadata: { ...s.metadata, labels } });
    } else {
      unchanged.push(s);
    }
  }
  const left = [...wanted.values()];
  // 2. New endpoints fill the slices that change anyway, fullest first.
  if (left.length) {
    for (const s of [...toUpdate].sort((a, b) => b.endpoints.length - a.endpoints.length)) {
      while (left.length && s.endpoints.length < max) s.endpoints = [...s.endpoints, left.shift()!];
    }
  }
  // 3. The rest go into the unchanged slice they fit most tightly (when less than a slice's worth remains), else into new slices.
  const create: EndpointSlice[] = [];
  while (left.length) {
    let fill: EndpointSlice | undefined;
    if (left.length < max && unchanged.length) {
      let best = max;
      for (const s of unchanged) {
        const room = max - (left.length + s.endpoints.length);
        if (room >= 0 && room < best) {
          best = room;
          fill = s;
        }
      }
    }
    let slice: EndpointSlice;
    if (fill) {
      unchanged.splice(unchanged.indexOf(fill), 1);
      slice = { ...fill, metadata: { ...fill.metadata }, endpoints: [...fill.endpoints] };
    } else {
      slice = newSlice(svc, group.ports);
    }
    while (left.length && slice.endpoints.length < max) slice.endpoints.push(left.shift()!);
    if (slice.metadata.name) toUpdate.push(slice);
    else create.push(slice);
  }
  return { create, update: toUpdate, delete: toDelete };
}
