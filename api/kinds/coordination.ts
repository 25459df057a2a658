// coordination.k8s.io/v1: Lease.

import { int, microTime, obj, str } from '../schema/dsl.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { ageColumn, column, defineKind, nonNegative, positive } from './common.ts';

export const lease = defineKind({
  group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases',
  description: 'Lease defines a lease concept.',
  fields: {
    spec: obj({
      holderIdentity: str({ description: 'holderIdentity contains the identity of the holder of a current lease.' }),
      leaseDurationSeconds: int({ description: 'leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it.' }),
      acquireTime: microTime('acquireTime is a time when the current lease was acquired.'),
      renewTime: microTime('renewTime is a time when the current holder of a lease has last updated the lease.'),
      leaseTransitions: int({ description: 'leaseTransitions is the number of transitions of a lease between holders.' }),
      strategy: str(),
      preferredHolder: str(),
    }, { name: 'io.k8s.api.coordination.v1.LeaseSpec' }),
  },
  validate: (l): Cause[] => [
    ...positive(l.spec?.leaseDurationSeconds, 'spec.leaseDurationSeconds'),
    ...nonNegative(l.spec?.leaseTransitions, 'spec.leaseTransitions'),
  ],
  columns: [column('Holder', (l) => l.spec?.holderIdentity ?? '', { description: 'holderIdentity contains the identity of the holder of a current lease.' }), ageColumn],
});

export const COORDINATION_KINDS: KindDef[] = [lease];
