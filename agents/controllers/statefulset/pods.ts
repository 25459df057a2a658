// A StatefulSet's pods by identity (Kubernetes' stateful_set_utils.go): pod
// `<set>-<ordinal>`, its labels (pod-name, pod-index, revision), its DNS
// identity (hostname = pod name, subdomain = serviceName) and its claims
// `<template>-<set>-<ordinal>`, each mounted in place of the volume of the
// template's name.
import type { KubeObject, Pod, PodTemplate, StatefulSet } from '../../informer/types.ts';
import type { OwnerReference } from '../ownership.ts';
import { podFromTemplate } from '../ownership.ts';
import { CONTROLLER_REVISION_HASH } from '../history/revisions.ts';

export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';

export interface ClaimTemplate extends KubeObject {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}

export type StatefulSetObj = StatefulSet & {
  spec?: StatefulSet['spec'] & {
    podManagementPolicy?: 'OrderedReady' | 'Parallel';
    updateStrategy?: { type?: 'RollingUpdate' | 'OnDelete'; rollingUpdate?: { partition?: number } };
    volumeClaimTemplates?: ClaimTemplate[];
    minReadySeconds?: number;
    revisionHistoryLimit?: number;
    ordinals?: { start?: number };
    persistentVolumeClaimRetentionPolicy?: { whenDeleted?: 'Retain' | 'Delete'; whenScaled?: 'Retain' | 'Delete' };
  };
  status?: {
    replicas?: number; readyReplicas?: number; currentReplicas?: number; updatedReplicas?: number; availableReplicas?: number;
    currentRevision?: string; updateRevision?: string; observedGeneration?: number; collisionCount?: number;
    [k: string]: unknown;
  };
};

/** The ordinal of a pod named `<set>-<n>`, or undefined when it is not a member of `set`. */
export function ordinalOf(setName: string, podName: string): number | undefined {
  const m = /^(.*)-(\d+)$/.exec(podName);
  if (!m || m[1] !== setName) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? n : undefined;
}

export const podName = (set: StatefulSetObj, ordinal: number): string => `${set.metadata.name}-${ordinal}`;
export const claimName = (template: string, set: StatefulSetObj, ordinal: number): string => `${template}-${set.metadata.name}-${ordinal}`;

/** The claims a pod of this ordinal uses (Kubernetes' getPersistentVolumeClaims). */
export function claimsFor(set: StatefulSetObj, ordinal: number): KubeObject[] {
  return (set.spec?.volumeClaimTemplates ?? []).map((t) => ({
    apiVersion: 'v1', kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName(t.metadata.name, set, ordinal), namespace: set.metadata.namespace,
      // The selector's labels, so the set's claims are found as its pods are (Kubernetes does the same).
      labels: { ...(t.metadata.labels ?? {}), ...(set.spec?.selector?.matchLabels ?? {}) },
      ...(t.metadata.annotations ? { annotations: { ...t.metadata.annotations } } : {}),
    },
    spec: structuredClone(t.spec ?? {}),
  }));
}

/** The pod of `ordinal` from a revision's template, with its identity and storage. */
export function newStatefulPod(set: StatefulSetObj, template: PodTemplate, revisionName: string, ordinal: number): Pod {
  const name = podName(set, ordinal);
  const pod = podFromTemplate(template, set, { name }) as Pod;
  pod.metadata.labels = { ...pod.metadata.labels, [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(ordinal), [CONTROLLER_REVISION_HASH]: revisionName };
  const spec = pod.spec!;
  spec.hostname = name;
  if (set.spec?.serviceName) spec.subdomain = set.spec.serviceName;
  const templates = set.spec?.volumeClaimTemplates ?? [];
  if (templates.length) {
    const claimed = new Map(templates.map((t) => [t.metadata.name, claimName(t.metadata.name, set, ordinal)]));
    const volumes = ((spec.volumes as { name: string }[] | undefined) ?? []).filter((v) => !claimed.has(v.name));
    for (const [vol, claim] of claimed) volumes.push({ name: vol, persistentVolumeClaim: { claimName: claim } } as { name: string });
    spec.volumes = volumes;
  }
  return pod;
}

/**
 * The owners a claim of `pod` should have under the set's
 * persistentVolumeClaimRetentionPolicy (Kubernetes' claimOwnerMatchesSetAndPod):
 * whenScaled Delete makes the pod of a condemned ordinal (beyond replicas)
 * its owner, so the claim goes with the pod; whenDeleted Delete makes the set
 * its owner otherwise, so the claim goes with the set; Retain owns nothing.
 * Owners other than the set and its pods are kept as they are.
 */
export function claimOwnerRefs(claim: KubeObject, set: StatefulSetObj, pod: Pod, condemned: boolean): OwnerReference[] {
  const policy = set.spec?.persistentVolumeClaimRetentionPolicy ?? {};
  const ours = new Set([set.metadata.uid, pod.metadata.uid]);
  const refs = ((claim.metadata as { ownerReferences?: OwnerReference[] } | undefined)?.ownerReferences ?? []).filter((r) => !ours.has(r.uid));
  if (condemned && policy.whenScaled === 'Delete') {
    refs.push({ apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid! });
  } else if (policy.whenDeleted === 'Delete') {
    refs.push({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: set.metadata.name, uid: set.metadata.uid! });
  }
  return refs;
}
