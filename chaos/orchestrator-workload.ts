// The orchestrator workload of a chaos run: in its own namespace, four
// Deployments with different rolling-update bounds and a StatefulSet, then,
// until stopped, one action every second or two drawn from the seed:
// a rollout (a template annotation changes), a scale, a pod burst (a
// Deployment of 6–12 pods created, deleted a while later: its ReplicaSets
// and pods must be collected), a StatefulSet rollout, scale or pod delete.
// Writes go through any server; a failed one is counted and not retried,
// except a burst's delete: the burst stays first in line and the next
// burst-delete tries again (a 404 then means an earlier attempt whose answer
// was lost did delete it), so no burst Deployment is left behind for ever.
import { ApiClient, ApiClientError, type ApiClientOptions, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { Rng } from '../harness/rng.ts';

export const ORCH_NAMESPACE = 'orch';

const DEPLOYMENTS = resolveKind('deployments')!;
const STATEFULSETS = resolveKind('statefulsets')!;
const PODS = resolveKind('pods')!;
const NAMESPACES = resolveKind('namespaces')!;
const MERGE = 'application/merge-patch+json';

const STRATEGIES: { maxSurge: number | string; maxUnavailable: number | string }[] = [
  { maxSurge: 1, maxUnavailable: 0 },
  { maxSurge: 0, maxUnavailable: 1 },
  { maxSurge: '25%', maxUnavailable: '25%' },
  { maxSurge: 2, maxUnavailable: 1 },
];

const podTemplate = (app: string, rev: number) => ({
  metadata: { labels: { app }, annotations: { 'chaos/rev': String(rev) } },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: 'chaos', resources: { requests: { cpu: '100m', memory: '64Mi' } } }] },
});

export interface OrchestratorActions {
  ok: number;
  failed: number;
  byKind: Record<string, number>;
}

export class OrchestratorWorkload {
  private stopped = false;
  private rev = 1;
  private bursts: string[] = [];
  private burstSeq = 0;
  readonly actions: OrchestratorActions = { ok: 0, failed: 0, byKind: {} };
  private readonly api: ApiClient;

  constructor(servers: readonly string[], private readonly rng: Rng, clientOptions: ApiClientOptions = {}) {
    this.api = new ApiClient(servers, { userAgent: 'flotilla-chaos/orchestrator', ...clientOptions });
  }

  /** Burst Deployments created and not yet deleted (oldest first): the next burst-delete takes the first. */
  get pendingBursts(): readonly string[] {
    return this.bursts;
  }

  private deployment(name: string, replicas: number, strategy: (typeof STRATEGIES)[number]) {
    return {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
      spec: { replicas, selector: { matchLabels: { app: name } }, strategy: { type: 'RollingUpdate', rollingUpdate: strategy }, template: podTemplate(name, this.rev) },
    };
  }

  async setup(): Promise<void> {
    await this.api.create(resourcePath(NAMESPACES), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ORCH_NAMESPACE } });
    for (let i = 0; i < STRATEGIES.length; i++) await this.api.create(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE), this.deployment(`d${i}`, 4, STRATEGIES[i]));
    await this.api.create(resourcePath(STATEFULSETS, ORCH_NAMESPACE), {
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db' },
      spec: { replicas: 3, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: podTemplate('db', this.rev) },
    });
  }

  /** Runs actions until stop(). */
  async run(): Promise<void> {
    while (!this.stopped) {
      const kind = this.rng.pick(['rollout', 'rollout', 'scale', 'burst', 'burst-delete', 'sts-rollout', 'sts-scale', 'sts-delete-pod']);
      try {
        await this.act(kind);
        this.actions.ok++;
        this.actions.byKind[kind] = (this.actions.byKind[kind] ?? 0) + 1;
      } catch {
        this.actions.failed++;
      }
      await new Promise((r) => setTimeout(r, this.rng.range(800, 2000)));
    }
  }

  /** One action of the run (run() draws them from the seed; tests call it directly). */
  async act(kind: string): Promise<void> {
    const d = `d${this.rng.int(STRATEGIES.length)}`;
    switch (kind) {
      case 'rollout':
        await this.api.patch(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE, d), { spec: { template: { metadata: { annotations: { 'chaos/rev': String(++this.rev) } } } } }, MERGE);
        return;
      case 'scale':
        await this.api.patch(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE, d), { spec: { replicas: 2 + this.rng.int(5) } }, MERGE);
        return;
      case 'burst': {
        if (this.bursts.length >= 2) return this.act('burst-delete');
        const name = `burst-${++this.burstSeq}`;
        await this.api.create(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE), this.deployment(name, 6 + this.rng.int(7), STRATEGIES[0]));
        this.bursts.push(name);
        return;
      }
      case 'burst-delete': {
        const name = this.bursts[0];
        if (!name) return;
        try {
          await this.api.delete(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE, name), { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' });
        } catch (e) {
          if (!(e instanceof ApiClientError && e.code === 404)) throw e;
        }
        // Deleted (or already gone): forget it only now, whichever call did it.
        if (this.bursts[0] === name) this.bursts.shift();
        return;
      }
      case 'sts-rollout':
        await this.api.patch(resourcePath(STATEFULSETS, ORCH_NAMESPACE, 'db'), { spec: { template: { metadata: { annotations: { 'chaos/rev': String(++this.rev) } } } } }, MERGE);
        return;
      case 'sts-scale':
        await this.api.patch(resourcePath(STATEFULSETS, ORCH_NAMESPACE, 'db'), { spec: { replicas: 2 + this.rng.int(3) } }, MERGE);
        return;
      case 'sts-delete-pod':
        await this.api.delete(resourcePath(PODS, ORCH_NAMESPACE, `db-${this.rng.int(2)}`));
        return;
      default:
        throw new Error(`unknown action ${kind}`);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  async close(): Promise<void> {
    await this.api.close();
  }
}
