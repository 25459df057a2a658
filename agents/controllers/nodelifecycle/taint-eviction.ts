// The taint eviction controller (Kubernetes' taint-eviction-controller, once
// the node lifecycle controller's "taint manager"): a pod bound to a node
// with NoExecute taints is deleted when its tolerations of them run out (at
// once if it does not tolerate one; never if it tolerates them without
// tolerationSeconds). The clock of each taint starts at its timeAdded, so a
// restarted controller keeps the deadlines. Taints removed in time cancel
// the eviction.
import { type Taint, type Toleration, evictionDeadline } from '../../../api/taints.ts';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import { keyOf, splitKey } from '../../informer/informer.ts';
import type { Node, Pod } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { nodeLifecycleMetrics } from './metrics.ts';

const PODS = resolveKind('pods')!;

const noExecute = (n: Node | undefined) => JSON.stringify(((n?.spec?.taints ?? []) as Taint[]).filter((t) => t.effect === 'NoExecute'));

export class TaintEvictionController extends QueueController {
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  /** Pods with an eviction pending, and when. */
  private readonly scheduled = new Map<string, number>();

  constructor(ctx: ControllerContext) {
    super(ctx, 'taint-eviction');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.nodes = ctx.informers.informer<Node>('nodes');
  }

  override async run(signal: AbortSignal): Promise<void> {
    const podChanged = (p: Pod) => { if (p.spec?.nodeName) this.enqueue(p); };
    this.handle(this.pods, {
      onAdd: podChanged,
      onUpdate: (a, b) => { if (a.spec?.nodeName !== b.spec?.nodeName || JSON.stringify(a.spec?.tolerations) !== JSON.stringify(b.spec?.tolerations) || !!b.metadata.deletionTimestamp) podChanged(b); },
      onDelete: (p) => this.scheduled.delete(keyOf(p)),
    });
    const nodeChanged = (n: Node) => { for (const p of this.pods.byNode(n.metadata.name)) this.enqueue(p); };
    this.handle(this.nodes, {
      onAdd: nodeChanged,
      onUpdate: (a, b) => { if (noExecute(a) !== noExecute(b)) nodeChanged(b); },
    });
    await this.ctx.informers.start();
    return super.run(signal);
  }

  protected async reconcile(key: string): Promise<void> {
    const pod = this.pods.getByKey(key);
    const nodeName = pod?.spec?.nodeName;
    if (!pod || !nodeName || pod.metadata.deletionTimestamp) {
      this.scheduled.delete(key);
      return;
    }
    const now = this.ctx.now();
    const node = this.nodes.get('', nodeName);
    const deadline = evictionDeadline(node?.spec?.taints as Taint[] | undefined, pod.spec?.tolerations as Toleration[] | undefined, now);
    if (deadline === Infinity) {
      if (this.scheduled.delete(key)) this.recorder.event(pod, 'Normal', 'TaintManagerEviction', `Cancelling deletion of Pod ${key}`);
      return;
    }
    if (deadline > now) {
      this.scheduled.set(key, deadline);
      this.enqueueAfter(key, deadline - now);
      return;
    }
    const { namespace, name } = splitKey(key);
    try {
      await this.ctx.client.delete(resourcePath(PODS, namespace, name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: pod.metadata.uid } });
    } catch (e) {
      if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e;
    }
    this.scheduled.delete(key);
    nodeLifecycleMetrics(this.ctx.registry).podDeletions.inc();
    this.recorder.event(pod, 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${key}`);
    this.log.info({ pod: key, node: nodeName }, 'pod evicted: its tolerations of the node\'s NoExecute taints ran out');
  }
}
