// Prometheus gauges for a RaftNode's counters of things refused or dropped:
// entries applied as no-ops, proposals from non-members, frames from another
// cluster or an unknown sender. Shared by raft-kv and `flotilla server`.
import client from 'prom-client';
import type { RaftNode } from './node.ts';

export function registerRaftMetrics(registry: client.Registry, node: RaftNode): void {
  const gauge = (name: string, help: string, value: () => number) => {
    new client.Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
  };
  gauge('raft_rejected_entries', 'Committed entries that were not a proposal envelope, applied as no-ops', () => node.stats().rejectedEntries);
  gauge('raft_dropped_proposals', 'Proposals refused because their sender is not a member', () => node.stats().droppedProposals);
  new client.Gauge({
    name: 'raft_transport_dropped_frames', help: 'Inbound raft frames dropped, by reason',
    labelNames: ['reason'], registers: [registry],
    collect() {
      const s = node.stats();
      this.set({ reason: 'bad-frame' }, s.badFrames);
      this.set({ reason: 'misrouted' }, s.misrouted);
      this.set({ reason: 'foreign-cluster' }, s.foreignCluster);
      this.set({ reason: 'unknown-sender' }, s.unknownSender);
      this.set({ reason: 'identity-mismatch' }, s.identityMismatch);
    },
  });
  new client.Gauge({
    name: 'raft_transport_refused_connections', help: 'Inbound raft connections closed by the listener\'s limits, by reason',
    labelNames: ['reason'], registers: [registry],
    collect() {
      const s = node.stats();
      this.set({ reason: 'stalled-frame' }, s.stalledFrames);
      this.set({ reason: 'too-many-connections' }, s.refusedConnections);
      // Peer TLS: refused before a frame was read (always 0 over plain TCP).
      for (const [reason, n] of Object.entries(s.tlsRefused)) this.set({ reason }, n);
    },
  });
  gauge('raft_transport_dropped_messages', 'Outbound raft messages dropped (peer unreachable, queue full, too large); Raft resends', () => node.stats().dropped);
  gauge('raft_transport_reconnects', 'Outbound raft connection attempts after a failed or closed one', () => node.stats().reconnects);
  gauge('raft_transport_wrong_peer_identity', 'Outbound raft connections given up because the server\'s certificate did not name the member dialed (peer TLS)',
    () => node.stats().wrongPeerIdentity);
}
