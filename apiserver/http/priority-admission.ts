// The Priority admission plugin: a new pod's spec.priorityClassName is
// resolved to spec.priority (and spec.preemptionPolicy) from its
// PriorityClass; a pod without a class gets the global default class (the
// lowest-valued one if several claim it) or priority 0. A class that does
// not exist, or a priority the pod states itself that differs from its
// class's, is refused (403) with Kubernetes' messages. Also the system
// classes every cluster has.
import { kindByResource } from '../../api/kinds/index.ts';
import { SYSTEM_PRIORITY_CLASSES } from '../../api/kinds/scheduling.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import { errors } from '../errors.ts';
import type { Registry } from '../registry.ts';

export const PRIORITY_CLASSES = kindByResource('scheduling.k8s.io', 'v1', 'priorityclasses')!;

interface PriorityClassObj extends KubeObject {
  value?: number;
  globalDefault?: boolean;
  preemptionPolicy?: string;
}

/** The PriorityClass objects this member has applied (as Kubernetes reads its informer cache). */
function classes(reg: Registry): PriorityClassObj[] {
  return reg.store.list(resourceKey(PRIORITY_CLASSES.group, PRIORITY_CLASSES.plural), undefined).map(({ obj }) => JSON.parse(obj.json) as PriorityClassObj);
}

/** Sets spec.priority/preemptionPolicy of a new pod from its class, or refuses it. */
export function admitPodPriority(reg: Registry, pod: KubeObject): void {
  const spec = (pod.spec ??= {}) as { priorityClassName?: string; priority?: number; preemptionPolicy?: string };
  const all = classes(reg);
  let pc: PriorityClassObj | undefined;
  if (spec.priorityClassName) {
    pc = all.find((c) => c.metadata?.name === spec.priorityClassName);
    if (!pc) throw errors.forbidden(`pods "${pod.metadata?.name ?? ''}" is forbidden: no PriorityClass with name ${spec.priorityClassName} was found`);
  } else {
    pc = all.filter((c) => c.globalDefault === true).sort((a, b) => (a.value ?? 0) - (b.value ?? 0))[0];
  }
  const priority = pc?.value ?? 0;
  const policy = pc?.preemptionPolicy ?? 'PreemptLowerPriority';
  if (typeof spec.priority === 'number' && spec.priority !== priority) {
    throw errors.forbidden(`pods "${pod.metadata?.name ?? ''}" is forbidden: the integer value of priority (${spec.priority}) must not be provided in pod spec; priority admission controller computed ${priority} from the given PriorityClass name`);
  }
  if (spec.preemptionPolicy && spec.preemptionPolicy !== policy) {
    throw errors.forbidden(`pods "${pod.metadata?.name ?? ''}" is forbidden: the string value of PreemptionPolicy (${spec.preemptionPolicy}) must not be provided in pod spec; priority admission controller computed ${policy} from the given PriorityClass name`);
  }
  if (pc) spec.priorityClassName = pc.metadata!.name;
  spec.priority = priority;
  spec.preemptionPolicy = policy;
}

/** The system PriorityClass objects to create when missing (system-node-critical, system-cluster-critical). */
export function systemPriorityClasses(): KubeObject[] {
  return SYSTEM_PRIORITY_CLASSES.map((c) => ({
    apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: c.name }, value: c.value, description: c.description, preemptionPolicy: 'PreemptLowerPriority',
  }));
}
