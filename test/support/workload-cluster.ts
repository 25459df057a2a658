// What the workload controller tests share: one server and NATS, FakeNodes
// running the pods, the controllers under test in the test process, and
// small readers (an object's status, its Events, the pods it owns).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Test } from 'tap';
import { ApiClient, resourcePath } from '../../agents/client/api.ts';
import { resolveKind } from '../../agents/client/kinds.ts';
import type { ControllerConfig, ControllerContext } from '../../agents/controllers/context.ts';
import type { Controller } from '../../agents/controllers/controller.ts';
import type { KubeObject, Pod } from '../../agents/informer/types.ts';
import { FakeNodes, type FakeNodesOptions } from '../../harness/fake-node.ts';
import { FlotillaCluster } from '../../harness/flotilla-cluster.ts';
import { NatsServers } from '../../harness/nats.ts';
import { tempDir } from '../../harness/procs.ts';
import { type RunningControllers, runControllers } from './controllers.ts';

const PODS = resolveKind('pods')!;
const EVENTS = resolveKind('events')!;

export interface WorkloadCluster {
  client: ApiClient;
  nats: NatsServers;
  cluster: FlotillaCluster;
  nodes: FakeNodes;
  ctl: RunningControllers;
  /** The pods controlled by the object with this uid. */
  podsOf(namespace: string, uid: string): Promise<Pod[]>;
  /** "Reason: message" of the Events about an object. */
  eventsOf(namespace: string, name: string, kind: string): Promise<string[]>;
  /** Runs the real kubectl against the cluster. */
  kubectl(...args: string[]): Promise<{ code: number | null; out: string; err: string }>;
}

export async function startWorkloadCluster(
  t: Test, make: ((ctx: ControllerContext) => Controller)[], o: { config?: Partial<ControllerConfig>; nodes?: Partial<FakeNodesOptions> } = {},
): Promise<WorkloadCluster> {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 2, ...o.nodes });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctl = await runControllers(client, nats.url, make, o.config);
  t.teardown(() => ctl.stop());
  const cache = tempDir('kubectl-cache');
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  return {
    client, nats, cluster, nodes, ctl,
    kubectl: (...args) => new Promise((resolve) => {
      const p = spawn('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { err += d; });
      p.on('close', (code) => resolve({ code, out, err }));
    }),
    async podsOf(namespace, uid) {
      const l = await client.list<Pod>(resourcePath(PODS, namespace));
      return l.items.filter((p) => (p.metadata.ownerReferences ?? []).some((r) => r.uid === uid && r.controller));
    },
    async eventsOf(namespace, name, kind) {
      const l = await client.list<KubeObject & { involvedObject?: { name?: string; kind?: string }; reason?: string; message?: string }>(resourcePath(EVENTS, namespace));
      return l.items.filter((e) => e.involvedObject?.name === name && e.involvedObject?.kind === kind).map((e) => `${e.reason}: ${e.message}`);
    },
  };
}
