// `flotilla cordon|uncordon|drain NODE`, as kubectl does them: cordon marks
// the node unschedulable; drain cordons it, then evicts its pods through the
// eviction subresource (which honours PodDisruptionBudgets: a refused
// eviction is tried again every 5 s until --timeout), and waits until they
// are gone. DaemonSet pods are left (with --ignore-daemonsets), pods no
// controller would recreate need --force, and pods with emptyDir data
// --delete-emptydir-data, exactly as kubectl asks.
import { ApiClientError, type ApiClient, resourcePath } from '../../agents/client/api.ts';
import { resolveKind } from '../../agents/client/kinds.ts';
import type { KubeObject } from '../../agents/informer/types.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, UsageError, parseCommand, parseDuration } from './args.ts';
import { CliError, type Io, processIo, runVerb, withClient } from './runtime.ts';

const NODES = resolveKind('nodes')!;
const PODS = resolveKind('pods')!;

export const USAGE = `Mark a node unschedulable, schedulable again, or drain it for maintenance.

Usage:
  flotilla cordon NODE
  flotilla uncordon NODE
  flotilla drain NODE [--ignore-daemonsets] [--force] [--delete-emptydir-data] [--grace-period S] [--timeout 5m]

Options:
      --ignore-daemonsets      leave DaemonSet-managed pods (their controller would put them back at once)
      --force                  also delete pods no controller manages (they are not recreated)
      --delete-emptydir-data   also evict pods with emptyDir volumes (their data is lost)
      --grace-period           seconds each pod gets to stop (default: the pod's own)
      --timeout                how long to keep trying before giving up (default 0: forever)
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  'ignore-daemonsets': { type: 'boolean' },
  force: { type: 'boolean' },
  'delete-emptydir-data': { type: 'boolean' },
  'grace-period': { type: 'string' },
} as const;

interface PodLike extends KubeObject {
  metadata: KubeObject['metadata'] & { ownerReferences?: { kind: string; name: string; controller?: boolean }[]; annotations?: Record<string, string> };
  spec?: { volumes?: { emptyDir?: unknown }[] };
  status?: { phase?: string };
}

async function setUnschedulable(client: ApiClient, node: string, on: boolean, io: Io): Promise<void> {
  const cur = await client.get<{ spec?: { unschedulable?: boolean } }>(resourcePath(NODES, '', node));
  if (Boolean(cur.spec?.unschedulable) === on) {
    io.out(`node/${node} already ${on ? 'cordoned' : 'uncordoned'}\n`);
    return;
  }
  await client.patch(resourcePath(NODES, '', node), { spec: { unschedulable: on ? true : null } }, 'application/merge-patch+json');
  io.out(`node/${node} ${on ? 'cordoned' : 'uncordoned'}\n`);
}

/** The pods to evict, or the reasons drain must stop (kubectl's filters and messages). */
function selectPods(pods: PodLike[], o: { ignoreDaemonsets: boolean; force: boolean; deleteEmptyDir: boolean }): { evict: PodLike[]; errors: string[]; warnings: string[] } {
  const evict: PodLike[] = [];
  const unmanaged: string[] = [];
  const daemon: string[] = [];
  const emptyDir: string[] = [];
  const ignored: string[] = [];
  for (const p of pods) {
    const id = `${p.metadata.namespace}/${p.metadata.name}`;
    if (p.metadata.annotations?.['kubernetes.io/config.mirror']) continue;
    // Finished pods are deleted without question.
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') {
      evict.push(p);
      continue;
    }
    const ctl = (p.metadata.ownerReferences ?? []).find((r) => r.controller);
    if (ctl?.kind === 'DaemonSet') {
      if (o.ignoreDaemonsets) ignored.push(id);
      else daemon.push(id);
      continue;
    }
    if (!ctl && !o.force) {
      unmanaged.push(id);
      continue;
    }
    if ((p.spec?.volumes ?? []).some((v) => v.emptyDir !== undefined) && !o.deleteEmptyDir) {
      emptyDir.push(id);
      continue;
    }
    evict.push(p);
  }
  const errors: string[] = [];
  if (unmanaged.length) errors.push(`cannot delete Pods that declare no controller (use --force to override): ${unmanaged.join(', ')}`);
  if (daemon.length) errors.push(`cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ${daemon.join(', ')}`);
  if (emptyDir.length) errors.push(`cannot delete Pods with local storage (use --delete-emptydir-data to override): ${emptyDir.join(', ')}`);
  const warnings = ignored.length ? [`ignoring DaemonSet-managed Pods: ${ignored.join(', ')}`] : [];
  return { evict, errors, warnings };
}

async function drain(client: ApiClient, node: string, o: { ignoreDaemonsets: boolean; force: boolean; deleteEmptyDir: boolean; grace?: number; timeoutMs: number }, io: Io): Promise<void> {
  await setUnschedulable(client, node, true, io);
  const list = await client.list<PodLike>(resourcePath(PODS, ''), { fieldSelector: `spec.nodeName=${node}` });
  const { evict, errors, warnings } = selectPods(list.items, o);
  if (errors.length) throw new CliError(`unable to drain node "${node}" due to error: ${errors.join(', ')}, continuing command...\nThere are pending nodes to be drained:\n ${node}`);
  for (const w of warnings) io.err(`Warning: ${w}\n`);
  const deadline = o.timeoutMs > 0 ? Date.now() + o.timeoutMs : Infinity;
  await Promise.all(evict.map(async (p) => {
    const ns = String(p.metadata.namespace);
    const name = String(p.metadata.name);
    for (;;) {
      try {
        await client.create(resourcePath(PODS, ns, name, 'eviction'), {
          apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: ns },
          deleteOptions: { ...(o.grace !== undefined ? { gracePeriodSeconds: o.grace } : {}), preconditions: { uid: p.metadata.uid } },
        });
        io.out(`evicting pod ${ns}/${name}\n`);
        break;
      } catch (e) {
        if (e instanceof ApiClientError && e.code === 404) break;
        if (!(e instanceof ApiClientError && e.code === 429) || Date.now() > deadline) throw e;
        io.err(`error when evicting pods/"${name}" -n "${ns}" (will retry after 5s): ${e.message}\n`);
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    // Evicted: wait until it is gone (or replaced by another pod of the same name).
    for (;;) {
      let cur: PodLike;
      try {
        cur = await client.get<PodLike>(resourcePath(PODS, ns, name));
        if (cur.metadata.uid !== p.metadata.uid) break;
      } catch (e) {
        if (e instanceof ApiClientError && e.code === 404) break;
        throw e;
      }
      if (Date.now() > deadline) {
        const m = cur.metadata as { deletionTimestamp?: string; finalizers?: string[] };
        throw new CliError(`drain did not complete within the timeout: pod ${ns}/${name} is still there (phase ${cur.status?.phase ?? '?'}, ${m.deletionTimestamp ? `deleting since ${m.deletionTimestamp}` : 'not being deleted'}${m.finalizers?.length ? `, finalizers ${m.finalizers.join(',')}` : ''})`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    io.out(`pod/${name} evicted\n`);
  }));
  io.out(`node/${node} drained\n`);
}

export function commandFor(verb: 'cordon' | 'uncordon' | 'drain') {
  return async function main(argv: string[], io: Io = processIo): Promise<void> {
    await runVerb(io, USAGE, () => parseCommand(verb, argv, { ...OPTIONS, ...(verb === 'drain' ? { timeout: { type: 'string' } } : {}) }), async ({ values, positionals }) => {
      if (positionals.length !== 1) throw new UsageError(`${verb} needs exactly one NODE`, verb);
      const node = positionals[0]!;
      await withClient(io, values, async (client) => {
        if (verb === 'drain') {
          const grace = values['grace-period'] !== undefined ? Number(values['grace-period']) : undefined;
          if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) throw new UsageError('--grace-period must be a whole number of seconds', verb);
          const timeout = (values as { timeout?: string }).timeout;
          await drain(client, node, {
            ignoreDaemonsets: !!values['ignore-daemonsets'], force: !!values.force, deleteEmptyDir: !!values['delete-emptydir-data'],
            grace, timeoutMs: timeout ? parseDuration(timeout, '--timeout') : 0,
          }, io);
        } else {
          await setUnschedulable(client, node, verb === 'cordon', io);
        }
      });
    });
  };
}
