// scheduling.k8s.io/v1: PriorityClass — a name for a pod priority, resolved
// into spec.priority by the Priority admission plugin. The two system
// classes exist in every cluster (the server creates them).

import { bool, int, oneOf, str } from '../schema/dsl.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { forbidden } from '../schema/validate.ts';
import { ageColumn, column, defineKind, dflt, immutableFields, intColumn } from './common.ts';

/** Classes whose names start with this are reserved to the system ones. */
export const SYSTEM_PRIORITY_CLASS_PREFIX = 'system-';
/** The highest value a user-defined class may have (HighestUserDefinablePriority). */
export const HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000;
/** The classes every cluster has, with Kubernetes' values (SystemCriticalPriority = 2 × 10⁹). */
export const SYSTEM_PRIORITY_CLASSES = [
  { name: 'system-node-critical', value: 2_000_001_000, description: 'Used for system critical pods that must not be moved from their current node.' },
  { name: 'system-cluster-critical', value: 2_000_000_000, description: 'Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.' },
];

export const PREEMPTION_POLICIES = ['PreemptLowerPriority', 'Never'] as const;

export const priorityClass = defineKind({
  group: 'scheduling.k8s.io', version: 'v1', kind: 'PriorityClass', plural: 'priorityclasses', shortNames: ['pc'], namespaced: false,
  description: 'PriorityClass defines mapping from a priority class name to the priority integer value.',
  required: ['value'],
  fields: {
    value: int({ format: 'int32', description: 'value represents the integer value of this priority class.' }),
    globalDefault: bool({ description: 'globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.' }),
    description: str({ description: 'description is an arbitrary string that usually provides guidelines on when this priority class should be used.' }),
    preemptionPolicy: oneOf(...PREEMPTION_POLICIES),
  },
  default(pc) {
    dflt(pc, 'preemptionPolicy', 'PreemptLowerPriority');
  },
  validate(pc, old) {
    const out: Cause[] = [];
    const name = String(pc.metadata?.name ?? '');
    if (name.startsWith(SYSTEM_PRIORITY_CLASS_PREFIX)) {
      const known = SYSTEM_PRIORITY_CLASSES.find((s) => s.name === name);
      if (!known) out.push(forbidden('metadata.name', `priority class names with '${SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: ${name} is not a known system priority class`));
      else if (pc.value !== known.value) out.push(forbidden('metadata.name', `priority class names with '${SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: value of ${name} PriorityClass must be ${known.value}`));
    } else if (typeof pc.value === 'number' && pc.value > HIGHEST_USER_DEFINABLE_PRIORITY) {
      out.push(forbidden('value', `maximum allowed value of a user defined priority is ${HIGHEST_USER_DEFINABLE_PRIORITY}`));
    }
    if (old) {
      if (pc.value !== old.value) out.push(forbidden('value', 'may not be changed in an update.'));
      out.push(...immutableFields(pc, old, ['preemptionPolicy']));
    }
    return out;
  },
  columns: [
    intColumn('Value', 'value', { description: 'value represents the integer value of this priority class.' }),
    column('Global-Default', (pc) => pc.globalDefault === true, { type: 'boolean', description: 'globalDefault specifies whether this PriorityClass should be considered as the default priority.' }),
    ageColumn,
    column('PreemptionPolicy', (pc) => pc.preemptionPolicy ?? 'PreemptLowerPriority', { description: 'preemptionPolicy is the Policy for preempting pods with lower priority.' }),
  ],
});

export const SCHEDULING_KINDS: KindDef[] = [priorityClass];
