// Shared by the scheduler's real-process tests: a watch that checks every
// pod event for over-committed nodes and pods that changed node, and a
// concurrent pod creator.
import { type ApiClient, resourcePath } from '../../agents/client/api.ts';
import { resolveKind } from '../../agents/client/kinds.ts';
import type { Informer } from '../../agents/informer/informer.ts';
import type { KubeObject, Pod } from '../../agents/informer/types.ts';
import { parseQuantity } from '../../api/schema/validate.ts';

const PODS = resolveKind('pods')!;

/** Watches every pod event and records any node whose bound pods' requests exceed its allocatable, and any pod whose node changed. */
export function overCommitWatch(pods: Informer<Pod>, alloc: Record<string, string>) {
  const violations: string[] = [];
  const boundTo = new Map<string, string>();
  const check = (p: Pod) => {
    const node = p.spec?.nodeName;
    if (!node) return;
    const uid = p.metadata.uid!;
    const was = boundTo.get(uid);
    if (was && was !== node) violations.push(`pod ${p.metadata.name} moved from ${was} to ${node}`);
    boundTo.set(uid, node);
    const on = pods.list().filter((x) => x.spec?.nodeName === node && x.status?.phase !== 'Succeeded' && x.status?.phase !== 'Failed');
    const sum = (r: string) => on.reduce((s, x) => s + (x.spec?.containers ?? []).reduce((a, c) => a + parseQuantity(String(c.resources?.requests?.[r] ?? 0)), 0), 0);
    if (sum('cpu') > parseQuantity(alloc.cpu!) + 1e-9) violations.push(`${node}: cpu ${sum('cpu')} > ${alloc.cpu}`);
    if (sum('memory') > parseQuantity(alloc.memory!)) violations.push(`${node}: memory ${sum('memory')} > ${alloc.memory}`);
    if (on.length > Number(alloc.pods)) violations.push(`${node}: ${on.length} pods > ${alloc.pods}`);
  };
  pods.addEventHandler({ onAdd: check, onUpdate: (_o, p) => check(p) });
  return { violations, boundTo };
}

export async function createPods(client: ApiClient, objs: KubeObject[], concurrency = 16): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (i < objs.length) await client.create(resourcePath(PODS, 'default'), objs[i++]);
  }));
}

