// Waiting for the orchestrator's workloads to reach their desired state after
// the faults stop, read from the API (the same judgement as the stream
// checker's, chaos/orchestrator-checks.ts notConverged).
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ClusterState, notConverged } from './orchestrator-checks.ts';

const KINDS = ['deployments', 'replicasets', 'statefulsets', 'pods'];

/** Polls until every workload is at its desired state or `timeoutMs` passed; returns what is still off (empty: converged). */
export async function waitConverged(servers: readonly string[], timeoutMs: number): Promise<string[]> {
  const api = new ApiClient(servers, { userAgent: 'flotilla-chaos/converge' });
  const deadline = Date.now() + Math.max(timeoutMs, 1000);
  let left = ['not looked yet'];
  try {
    while (Date.now() < deadline) {
      try {
        const state = new ClusterState();
        for (const plural of KINDS) {
          const k = resolveKind(plural)!;
          for (const o of (await api.list(resourcePath(k))).items) {
            state.apply({ type: 'ADDED', resource: plural, namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '', object: JSON.stringify(o) });
          }
        }
        left = notConverged(state);
        if (left.length === 0) return left;
      } catch (e) {
        left = [`reading the API failed: ${(e as Error).message}`];
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    return left;
  } finally {
    await api.close();
  }
}
