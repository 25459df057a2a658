// policy/v1: PodDisruptionBudget.

import { int, int64, intOrString, map, obj, oneOf, time } from '../schema/dsl.ts';
import { LabelSelector, conditions } from '../schema/meta.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { invalid, invalidEach, isValidPercent } from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, intColumn, nonNegative, rec, validateLabelSelector } from './common.ts';

const P = (n: string) => `io.k8s.api.policy.v1.${n}`;

export const UNHEALTHY_POD_EVICTION_POLICIES = ['IfHealthyBudget', 'AlwaysAllow'] as const;

/** An int ≥ 0 or a percentage of at most 100 % (ValidatePodDisruptionBudgetSpec's IntOrPercent checks). */
function validateIntOrPercent(v: unknown, path: string): Cause[] {
  if (typeof v === 'number') return nonNegative(v, path);
  if (typeof v !== 'string') return [];
  const out = invalidEach(path, v, isValidPercent(v));
  if (!out.length && parseInt(v, 10) > 100) out.push(invalid(path, v, 'must not be greater than 100%'));
  return out;
}

const present = (v: unknown) => v !== undefined && v !== null;

export const podDisruptionBudget = defineKind({
  group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', shortNames: ['pdb'], subresources: ['status'],
  description: 'PodDisruptionBudget is an object to define the max disruption that can be caused to a collection of pods',
  fields: {
    spec: obj({
      minAvailable: intOrString('An eviction is allowed if at least "minAvailable" pods selected by "selector" will still be available after the eviction.'),
      selector: LabelSelector,
      maxUnavailable: intOrString('An eviction is allowed if at most "maxUnavailable" pods selected by "selector" are unavailable after the eviction.'),
      unhealthyPodEvictionPolicy: oneOf(...UNHEALTHY_POD_EVICTION_POLICIES),
    }, { name: P('PodDisruptionBudgetSpec') }),
    status: obj({
      observedGeneration: int64(),
      disruptedPods: map(time()),
      disruptionsAllowed: int(),
      currentHealthy: int(),
      desiredHealthy: int(),
      expectedPods: int(),
      conditions: conditions(),
    }, { name: P('PodDisruptionBudgetStatus'), required: ['disruptionsAllowed', 'currentHealthy', 'desiredHealthy', 'expectedPods'] }),
  },
  default(pdb) {
    // Go serializes the status' required integers as 0 when unset.
    const st = rec(pdb.status);
    if (st) for (const f of ['disruptionsAllowed', 'currentHealthy', 'desiredHealthy', 'expectedPods']) if (typeof st[f] !== 'number') st[f] = 0;
  },
  validate(pdb) {
    const spec: Obj = rec(pdb.spec) ?? {};
    const out: Cause[] = [];
    if (present(spec.minAvailable) && present(spec.maxUnavailable)) {
      out.push(invalid('spec', spec, 'minAvailable and maxUnavailable cannot be both set'));
    }
    out.push(...validateIntOrPercent(spec.minAvailable, 'spec.minAvailable'));
    out.push(...validateIntOrPercent(spec.maxUnavailable, 'spec.maxUnavailable'));
    out.push(...validateLabelSelector(spec.selector, 'spec.selector'));
    const st = rec(pdb.status);
    for (const f of ['disruptionsAllowed', 'currentHealthy', 'desiredHealthy', 'expectedPods']) out.push(...nonNegative(st?.[f], `status.${f}`));
    return out;
  },
  columns: [
    column('Min Available', (p) => (present(p.spec?.minAvailable) ? String(p.spec.minAvailable) : 'N/A'), { description: 'The minimum number of pods that must be available' }),
    column('Max Unavailable', (p) => (present(p.spec?.maxUnavailable) ? String(p.spec.maxUnavailable) : 'N/A'), { description: 'The maximum number of pods that may be unavailable' }),
    intColumn('Allowed Disruptions', 'status.disruptionsAllowed', { description: 'Calculated number of pods that may be disrupted at this time' }),
    ageColumn,
  ],
});

export const POLICY_KINDS: KindDef[] = [podDisruptionBudget];
