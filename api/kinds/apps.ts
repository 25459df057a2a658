// apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

import { any, atomic, bool, int, int64, intOrString, obj, oneOf, str } from '../schema/dsl.ts';
import { LabelSelector, conditionOf, conditions } from '../schema/meta.ts';
import type { Cause, KindDef, Schema } from '../schema/types.ts';
import { child, forbidden, index, invalid, invalidEach, isDNS1123Label, isValidPercent, notSupported, required } from '../schema/validate.ts';
import {
  type KindSpec, type Obj, REPLICAS_SCALE, ageColumn, changedExcept, column, defaults, defineKind, dflt, ensure, entries,
  formatLabels, immutableFields, intColumn, list, nonNegative, rec, selectorColumn, selectorEmpty,
  templateColumns, validateLabelSelector,
} from './common.ts';
import { defaultPVC, persistentVolumeClaim } from './core.ts';
import { PodTemplateSpec, defaultPodTemplate, validatePodTemplate } from './pod.ts';

const apps = { group: 'apps', version: 'v1' };
const A = (n: string) => `io.k8s.api.apps.v1.${n}`;

// ---- shared workload rules ---------------------------------------------------------------

/** Validation shared by the workloads: counts, selector and pod template. */
function validateWorkload(o: Obj, kind: string, extraVolumes: string[] = []): Cause[] {
  const spec = rec(o.spec) ?? {};
  const out: Cause[] = [];
  for (const f of ['replicas', 'minReadySeconds', 'revisionHistoryLimit']) out.push(...nonNegative(spec[f], child('spec', f)));
  const sel = rec(spec.selector);
  if (sel) {
    out.push(...validateLabelSelector(sel, 'spec.selector'));
    if (selectorEmpty(sel)) out.push(invalid('spec.selector', sel, `empty selector is invalid for ${kind === 'ReplicaSet' ? 'deployment' : kind.toLowerCase()}`));
  }
  out.push(...validatePodTemplate(spec.template, 'spec.template', {
    selector: sel, restartPolicies: ['Always'], activeDeadlineForbiddenIn: kind === 'Deployment' ? 'ReplicaSet' : kind, extraVolumes,
  }));
  return out;
}

/** An int or a percentage ≥ 0 (maxSurge, maxUnavailable). */
function validateIntOrPercent(v: unknown, path: string): Cause[] {
  if (typeof v === 'string') return invalidEach(path, v, isValidPercent(v));
  if (typeof v === 'number') return nonNegative(v, path);
  return [];
}

const isZero = (v: unknown) => v === 0 || v === '0%';

/** maxSurge/maxUnavailable of a rolling update: valid, not both zero, maxUnavailable ≤ 100%. */
function validateRollingUpdate(ru: Obj, path: string, bothZero: string): Cause[] {
  const out = [...validateIntOrPercent(ru.maxUnavailable, child(path, 'maxUnavailable')), ...validateIntOrPercent(ru.maxSurge, child(path, 'maxSurge'))];
  if (isZero(ru.maxUnavailable) && isZero(ru.maxSurge)) out.push(invalid(child(path, 'maxUnavailable'), ru.maxUnavailable, bothZero));
  if (typeof ru.maxUnavailable === 'string' && /^[0-9]+%$/.test(ru.maxUnavailable) && parseInt(ru.maxUnavailable, 10) > 100) {
    out.push(invalid(child(path, 'maxUnavailable'), ru.maxUnavailable, 'must not be greater than 100%'));
  }
  return out;
}

/** Defaults common to the workloads: replicas (where applicable), history, template. */
function defaultWorkload(o: Obj, values: Obj): void {
  const spec = ensure(o, 'spec');
  defaults(spec, values);
  defaultPodTemplate(spec.template);
}

const readyOfDesired = column('Ready', (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 0}`, {
  description: 'Number of the pod with ready state / desired number of replicas.',
});

/** A workload kind: scale/status subresources, "all" category, containers/images/selector columns. */
function workload(s: Omit<KindSpec, 'group' | 'version' | 'categories'>): KindDef {
  return defineKind({ ...apps, categories: ['all'], ...s });
}

const workloadCondition = (name: string, times: string[]) => conditions(conditionOf(A(name), times));

/** A strategy stanza: `type` (RollingUpdate or `other`) and its rollingUpdate parameters. */
const strategy = (name: string, other: string, rolling: string, params: Record<string, Schema>) => obj({
  type: oneOf(other, 'RollingUpdate'),
  rollingUpdate: obj(params, { name: A(rolling) }),
}, { name: A(name) });

const surge = () => ({ maxUnavailable: intOrString(), maxSurge: intOrString() });

/** Status fields of the replicated workloads (Deployment, ReplicaSet, StatefulSet). */
const replicaStatus = (name: string, fields: Record<string, Schema>, conditionTimes = ['lastTransitionTime']) => obj({
  observedGeneration: int64(),
  replicas: int(),
  readyReplicas: int(),
  availableReplicas: int(),
  ...fields,
  conditions: workloadCondition(name.replace('Status', 'Condition'), conditionTimes),
}, { name: A(name) });

// ---- Deployment ------------------------------------------------------------------------

export const deployment = workload({
  kind: 'Deployment', plural: 'deployments', shortNames: ['deploy'], subresources: ['status', 'scale'], scale: REPLICAS_SCALE,
  description: 'Deployment enables declarative updates for Pods and ReplicaSets.',
  fields: {
    spec: obj({
      replicas: int({ description: 'Number of desired pods. Defaults to 1.' }),
      selector: LabelSelector,
      template: PodTemplateSpec,
      strategy: strategy('DeploymentStrategy', 'Recreate', 'RollingUpdateDeployment', surge()),
      minReadySeconds: int(),
      revisionHistoryLimit: int(),
      paused: bool(),
      progressDeadlineSeconds: int(),
    }, { name: A('DeploymentSpec'), required: ['selector', 'template'] }),
    status: replicaStatus('DeploymentStatus', {
      updatedReplicas: int(), unavailableReplicas: int(), terminatingReplicas: int(), collisionCount: int(),
    }, ['lastUpdateTime', 'lastTransitionTime']),
  },
  default(d) {
    defaultWorkload(d, { replicas: 1, revisionHistoryLimit: 10, progressDeadlineSeconds: 600 });
    const strategy = ensure(d.spec, 'strategy');
    dflt(strategy, 'type', 'RollingUpdate');
    if (strategy.type === 'RollingUpdate') defaults(ensure(strategy, 'rollingUpdate'), { maxUnavailable: '25%', maxSurge: '25%' });
  },
  validate(d, old) {
    const spec = rec(d.spec) ?? {};
    const out = validateWorkload(d, 'Deployment');
    const strategy = rec(spec.strategy) ?? {};
    if (strategy.type === 'Recreate' && strategy.rollingUpdate !== undefined && strategy.rollingUpdate !== null) {
      out.push(forbidden('spec.strategy.rollingUpdate', "may not be specified when strategy `type` is 'Recreate'"));
    } else if (rec(strategy.rollingUpdate)) {
      out.push(...validateRollingUpdate(strategy.rollingUpdate, 'spec.strategy.rollingUpdate', 'may not be 0 when `maxSurge` is 0'));
    }
    if (typeof spec.progressDeadlineSeconds === 'number') {
      out.push(...nonNegative(spec.progressDeadlineSeconds, 'spec.progressDeadlineSeconds'));
      if (spec.progressDeadlineSeconds <= (spec.minReadySeconds ?? 0)) {
        out.push(invalid('spec.progressDeadlineSeconds', spec.progressDeadlineSeconds, 'must be greater than minReadySeconds'));
      }
    }
    out.push(...immutableFields(d, old, ['spec.selector']));
    return out;
  },
  columns: [
    readyOfDesired,
    intColumn('Up-to-date', 'status.updatedReplicas', { description: 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.' }),
    intColumn('Available', 'status.availableReplicas', { description: 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.' }),
    ageColumn,
    ...templateColumns(),
    selectorColumn,
  ],
});

// ---- ReplicaSet -------------------------------------------------------------------------

export const replicaSet = workload({
  kind: 'ReplicaSet', plural: 'replicasets', shortNames: ['rs'], subresources: ['status', 'scale'], scale: REPLICAS_SCALE,
  description: 'ReplicaSet ensures that a specified number of pod replicas are running at any given time.',
  fields: {
    spec: obj({
      replicas: int({ description: 'Replicas is the number of desired pods. Defaults to 1.' }),
      minReadySeconds: int(),
      selector: LabelSelector,
      template: PodTemplateSpec,
    }, { name: A('ReplicaSetSpec'), required: ['selector'] }),
    status: replicaStatus('ReplicaSetStatus', { fullyLabeledReplicas: int(), terminatingReplicas: int() }),
  },
  default: (rs) => defaultWorkload(rs, { replicas: 1 }),
  validate: (rs, old) => [...validateWorkload(rs, 'ReplicaSet'), ...immutableFields(rs, old, ['spec.selector'])],
  columns: [
    intColumn('Desired', 'spec.replicas', { description: 'Number of desired pods.' }),
    intColumn('Current', 'status.replicas', { description: 'Number of actual pods.' }),
    intColumn('Ready', 'status.readyReplicas', { description: 'Number of ready pods.' }),
    ageColumn,
    ...templateColumns(),
    selectorColumn,
  ],
});

// ---- StatefulSet -------------------------------------------------------------------------

const STATEFULSET_MUTABLE = ['replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds'];

export const statefulSet = workload({
  kind: 'StatefulSet', plural: 'statefulsets', shortNames: ['sts'], subresources: ['status', 'scale'], scale: REPLICAS_SCALE,
  description: 'StatefulSet represents a set of pods with consistent identities.',
  name: isDNS1123Label,
  fields: {
    spec: obj({
      replicas: int(),
      selector: LabelSelector,
      template: PodTemplateSpec,
      volumeClaimTemplates: atomic(persistentVolumeClaim.schema),
      serviceName: str(),
      podManagementPolicy: oneOf('OrderedReady', 'Parallel'),
      updateStrategy: strategy('StatefulSetUpdateStrategy', 'OnDelete', 'RollingUpdateStatefulSetStrategy', { partition: int(), maxUnavailable: intOrString() }),
      revisionHistoryLimit: int(),
      minReadySeconds: int(),
      persistentVolumeClaimRetentionPolicy: obj({ whenDeleted: str(), whenScaled: str() },
        { name: A('StatefulSetPersistentVolumeClaimRetentionPolicy') }),
      ordinals: obj({ start: int() }, { name: A('StatefulSetOrdinals') }),
    }, { name: A('StatefulSetSpec'), required: ['selector', 'template'] }),
    status: replicaStatus('StatefulSetStatus', {
      currentReplicas: int(), updatedReplicas: int(), currentRevision: str(), updateRevision: str(), collisionCount: int(),
    }),
  },
  default(s) {
    defaultWorkload(s, { replicas: 1, podManagementPolicy: 'OrderedReady', revisionHistoryLimit: 10 });
    const strategy = ensure(s.spec, 'updateStrategy');
    if (!strategy.type) {
      strategy.type = 'RollingUpdate';
      ensure(strategy, 'rollingUpdate');
    }
    if (strategy.type === 'RollingUpdate' && rec(strategy.rollingUpdate)) dflt(strategy.rollingUpdate, 'partition', 0);
    defaults(ensure(s.spec, 'persistentVolumeClaimRetentionPolicy'), { whenDeleted: 'Retain', whenScaled: 'Retain' });
    for (const [pvc] of entries(s.spec.volumeClaimTemplates)) defaultPVC(pvc);
  },
  validate(s, old) {
    const spec = rec(s.spec) ?? {};
    const claims = list(spec.volumeClaimTemplates).map((c) => c?.metadata?.name).filter((n): n is string => typeof n === 'string');
    const out = validateWorkload(s, 'StatefulSet', claims);
    const strategy = rec(spec.updateStrategy) ?? {};
    if (strategy.type === 'OnDelete' && rec(strategy.rollingUpdate)) {
      out.push(invalid('spec.updateStrategy.rollingUpdate', strategy.rollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"));
    }
    out.push(...nonNegative(strategy.rollingUpdate?.partition, 'spec.updateStrategy.rollingUpdate.partition'));
    out.push(...nonNegative(spec.ordinals?.start, 'spec.ordinals.start'));
    for (const f of ['whenDeleted', 'whenScaled']) {
      const v = spec.persistentVolumeClaimRetentionPolicy?.[f];
      if (v && v !== 'Retain' && v !== 'Delete') out.push(notSupported(`spec.persistentVolumeClaimRetentionPolicy.${f}`, v, ['Retain', 'Delete']));
    }
    for (const [pvc, i] of entries(spec.volumeClaimTemplates)) {
      if (!pvc.metadata?.name) out.push(required(child(index('spec.volumeClaimTemplates', i), 'metadata', 'name')));
    }
    if (old && changedExcept(s.spec, old.spec, STATEFULSET_MUTABLE)) {
      out.push(forbidden('spec', "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
    }
    return out;
  },
  columns: [readyOfDesired, ageColumn, ...templateColumns()],
});

// ---- DaemonSet ---------------------------------------------------------------------------

export const daemonSet = workload({
  kind: 'DaemonSet', plural: 'daemonsets', shortNames: ['ds'], subresources: ['status'],
  description: 'DaemonSet represents the configuration of a daemon set.',
  fields: {
    spec: obj({
      selector: LabelSelector,
      template: PodTemplateSpec,
      updateStrategy: strategy('DaemonSetUpdateStrategy', 'OnDelete', 'RollingUpdateDaemonSet', surge()),
      minReadySeconds: int(),
      revisionHistoryLimit: int(),
    }, { name: A('DaemonSetSpec'), required: ['selector', 'template'] }),
    status: obj({
      currentNumberScheduled: int(),
      numberMisscheduled: int(),
      desiredNumberScheduled: int(),
      numberReady: int(),
      observedGeneration: int64(),
      updatedNumberScheduled: int(),
      numberAvailable: int(),
      numberUnavailable: int(),
      collisionCount: int(),
      conditions: workloadCondition('DaemonSetCondition', ['lastTransitionTime']),
    }, { name: A('DaemonSetStatus') }),
  },
  default(ds) {
    defaultWorkload(ds, { revisionHistoryLimit: 10 });
    const strategy = ensure(ds.spec, 'updateStrategy');
    dflt(strategy, 'type', 'RollingUpdate');
    if (strategy.type === 'RollingUpdate') defaults(ensure(strategy, 'rollingUpdate'), { maxUnavailable: 1, maxSurge: 0 });
  },
  validate(ds, old) {
    const out = validateWorkload(ds, 'DaemonSet');
    const ru = rec(ds.spec?.updateStrategy?.rollingUpdate);
    if (ru && ds.spec.updateStrategy.type === 'RollingUpdate') {
      out.push(...validateRollingUpdate(ru, 'spec.updateStrategy.rollingUpdate', 'cannot be 0 when maxSurge is 0'));
    }
    out.push(...immutableFields(ds, old, ['spec.selector']));
    return out;
  },
  columns: [
    intColumn('Desired', 'status.desiredNumberScheduled', { description: 'The total number of nodes that should be running the daemon pod.' }),
    intColumn('Current', 'status.currentNumberScheduled', { description: 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.' }),
    intColumn('Ready', 'status.numberReady', { description: 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.' }),
    intColumn('Up-to-date', 'status.updatedNumberScheduled', { description: 'The total number of nodes that are running updated daemon pod' }),
    intColumn('Available', 'status.numberAvailable', { description: 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.' }),
    column('Node Selector', (ds) => formatLabels(ds.spec?.template?.spec?.nodeSelector), { description: 'NodeSelector is a selector which must be true for the pod to fit on a node.' }),
    ageColumn,
    ...templateColumns(),
    selectorColumn,
  ],
});

// ---- ControllerRevision ---------------------------------------------------------------------

/** "statefulset.apps/web": the controller owner of an object, or "<none>". */
function controllerOf(o: Obj): string {
  const ref = list(o.metadata?.ownerReferences).find((r) => r.controller === true);
  if (!ref) return '<none>';
  const slash = String(ref.apiVersion ?? '').indexOf('/');
  const group = slash < 0 ? '' : String(ref.apiVersion).slice(0, slash);
  return `${String(ref.kind).toLowerCase()}${group ? `.${group}` : ''}/${ref.name}`;
}

export const controllerRevision = defineKind({
  ...apps, kind: 'ControllerRevision', plural: 'controllerrevisions',
  description: 'ControllerRevision implements an immutable snapshot of state data.',
  fields: {
    data: any('Data is the serialized representation of the state.'),
    revision: int64({ description: 'Revision indicates the revision of the state represented by Data.' }),
  },
  required: ['revision'],
  validate: (cr, old) => [...nonNegative(cr.revision, 'revision'), ...immutableFields(cr, old, ['data'])],
  columns: [
    column('Controller', controllerOf, { description: 'The controller of this revision.' }),
    column('Revision', (cr) => Number(cr.revision ?? 0), { type: 'integer', description: 'Revision indicates the revision of the state represented by Data.' }),
    ageColumn,
  ],
});

export const APPS_KINDS: KindDef[] = [deployment, replicaSet, statefulSet, daemonSet, controllerRevision];

