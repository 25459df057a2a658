// The leader-election flags of every leader-elected process, with
// kube-controller-manager's names and client-go's defaults, and the elector
// they describe.
import type client from 'prom-client';
import { parseDuration } from '../../api/units.ts';
import type { ApiClient } from '../client/api.ts';
import type { Logger } from '../informer/stream.ts';
import { LeaderElector, type LeaderElectorOptions } from './elector.ts';

export function leaderElectFlags(leaseName: string) {
  return {
    'leader-elect': { type: 'string', default: 'true' },
    'leader-elect-lease-duration': { type: 'string', default: '15s' },
    'leader-elect-renew-deadline': { type: 'string', default: '10s' },
    'leader-elect-retry-period': { type: 'string', default: '2s' },
    'leader-elect-resource-namespace': { type: 'string', default: 'kube-system' },
    'leader-elect-resource-name': { type: 'string', default: leaseName },
  } as const;
}

export const LEADER_ELECT_USAGE = `[--leader-elect true] [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
       [--leader-elect-retry-period 2s] [--leader-elect-resource-namespace kube-system] [--leader-elect-resource-name NAME]`;

/**
 * The elector the flags describe. It does not compete again after losing the
 * Lease (reacquire: false): a process that lost it stops and is restarted as
 * a standby, as kube-controller-manager and kube-scheduler do.
 */
export function electorFromFlags(
  values: Record<string, string | boolean | undefined>,
  o: { client: ApiClient; identity: string; logger: Logger; registry: client.Registry } & Pick<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader'>,
): LeaderElector {
  const str = (k: string) => String(values[k]);
  return new LeaderElector({
    client: o.client,
    lease: { namespace: str('leader-elect-resource-namespace'), name: str('leader-elect-resource-name') },
    identity: o.identity,
    reacquire: false,
    leaseDurationMs: parseDuration(str('leader-elect-lease-duration'), '--leader-elect-lease-duration'),
    renewDeadlineMs: parseDuration(str('leader-elect-renew-deadline'), '--leader-elect-renew-deadline'),
    retryPeriodMs: parseDuration(str('leader-elect-retry-period'), '--leader-elect-retry-period'),
    logger: o.logger,
    registry: o.registry,
    onStartedLeading: o.onStartedLeading,
    onStoppedLeading: o.onStoppedLeading,
    onNewLeader: o.onNewLeader,
  });
}
