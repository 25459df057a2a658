// Prometheus metrics of leader election, under client-go's names:
//   leader_election_master_status{name}     1 while this process leads, else 0
//   leader_election_transitions_total{name} times this process started or stopped leading
// One set per registry, shared by every elector registered on it (a process
// may run several electors, one per lease `name`).
import client from 'prom-client';

export interface LeaderElectionMetrics {
  status: client.Gauge<'name'>;
  transitions: client.Counter<'name'>;
}

const perRegistry = new WeakMap<client.Registry, LeaderElectionMetrics>();

/** The leader-election metrics of a registry, registered on it the first time. */
export function leaderElectionMetrics(registry: client.Registry): LeaderElectionMetrics {
  let m = perRegistry.get(registry);
  if (!m) {
    m = {
      status: new client.Gauge({
        name: 'leader_election_master_status',
        help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. \'name\' is the string used to identify the lease.',
        labelNames: ['name'],
        registers: [registry],
      }),
      transitions: new client.Counter({
        name: 'leader_election_transitions_total',
        help: 'Times the reporting system started or stopped leading the lease identified by \'name\'.',
        labelNames: ['name'],
        registers: [registry],
      }),
    };
    perRegistry.set(registry, m);
  }
  return m;
}
