// `flotilla rollout status|history|undo|restart` for StatefulSets and
// DaemonSets, as kubectl does them: status with kubectl's
// StatefulSetStatusViewer/DaemonSetStatusViewer messages (RollingUpdate
// only), history and undo from the ControllerRevisions the object controls
// (undo puts the revision's template back), restart by stamping the
// template with kubectl.kubernetes.io/restartedAt. pause/resume are refused,
// as kubectl refuses them for these kinds.
import { stringify } from 'yaml';
import { type ApiClient, resourcePath } from '../../agents/client/api.ts';
import { type KindDef, resolveKind } from '../../agents/client/kinds.ts';
import type { PodTemplate, Stored } from '../../agents/informer/types.ts';
import { canonical } from '../../agents/controllers/conditions.ts';
import { type ControllerRevision, templateOf } from '../../agents/controllers/history/revisions.ts';
import { CliError, type Io } from './runtime.ts';

const REVISIONS = resolveKind('controllerrevisions')!;
const CHANGE_CAUSE = 'kubernetes.io/change-cause';
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

interface RolloutSet extends Stored {
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> };
    template?: PodTemplate;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
  };
  status?: Record<string, number | string | undefined>;
}

export interface RolloutView { message: string; done: boolean }

const num = (s: RolloutSet, k: string): number => Number(s.status?.[k] ?? 0);

function rollingOnly(s: RolloutSet): void {
  if (s.spec?.updateStrategy?.type !== 'RollingUpdate') throw new CliError('rollout status is only available for RollingUpdate strategy type');
}

/** kubectl's StatefulSetStatusViewer. */
export function statefulSetRolloutStatus(s: RolloutSet): RolloutView {
  rollingOnly(s);
  const observed = num(s, 'observedGeneration');
  if (observed === 0 || (s.metadata.generation ?? 0) > observed) return { message: 'Waiting for statefulset spec update to be observed...', done: false };
  const replicas = s.spec?.replicas;
  const ready = num(s, 'readyReplicas');
  const updated = num(s, 'updatedReplicas');
  if (replicas !== undefined && ready < replicas) return { message: `Waiting for ${replicas - ready} pods to be ready...`, done: false };
  const partition = s.spec?.updateStrategy?.rollingUpdate?.partition;
  if (partition !== undefined && replicas !== undefined) {
    if (updated < replicas - partition) return { message: `Waiting for partitioned roll out to finish: ${updated} out of ${replicas - partition} new pods have been updated...`, done: false };
    return { message: `partitioned roll out complete: ${updated} new pods have been updated...`, done: true };
  }
  if (s.status?.updateRevision !== s.status?.currentRevision) {
    return { message: `waiting for statefulset rolling update to complete ${updated} pods at revision ${s.status?.updateRevision}...`, done: false };
  }
  return { message: `statefulset rolling update complete ${num(s, 'currentReplicas')} pods at revision ${s.status?.currentRevision}...`, done: true };
}

/** kubectl's DaemonSetStatusViewer. */
export function daemonSetRolloutStatus(d: RolloutSet): RolloutView {
  rollingOnly(d);
  const name = d.metadata.name;
  if ((d.metadata.generation ?? 0) > num(d, 'observedGeneration')) return { message: 'Waiting for daemon set spec update to be observed...', done: false };
  const desired = num(d, 'desiredNumberScheduled');
  const updated = num(d, 'updatedNumberScheduled');
  const available = num(d, 'numberAvailable');
  if (updated < desired) return { message: `Waiting for daemon set "${name}" rollout to finish: ${updated} out of ${desired} new pods have been updated...`, done: false };
  if (available < desired) return { message: `Waiting for daemon set "${name}" rollout to finish: ${available} of ${desired} updated pods are available...`, done: false };
  return { message: `daemon set "${name}" successfully rolled out`, done: true };
}

/** The ControllerRevisions `s` controls, oldest first. */
async function revisionsOf(client: ApiClient, s: RolloutSet): Promise<ControllerRevision[]> {
  const sel = Object.entries(s.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const list = await client.list<ControllerRevision>(resourcePath(REVISIONS, s.metadata.namespace), sel ? { labelSelector: sel } : {});
  return list.items.filter((r) => r.metadata.ownerReferences?.some((o) => o.controller && o.uid === s.metadata.uid)).sort((a, b) => a.revision - b.revision);
}

export interface SetRolloutOptions {
  watch: boolean;
  timeoutMs: number;
  revision?: number;
  toRevision: number;
}

/** Runs `flotilla rollout SUB` for a StatefulSet or DaemonSet. */
export async function setRollout(client: ApiClient, io: Io, sub: string, kind: KindDef, ns: string, name: string, o: SetRolloutOptions): Promise<void> {
  const path = resourcePath(kind, ns, name);
  const ref = `${kind.kind.toLowerCase()}.${kind.group}/${name}`;
  const view = kind.kind === 'StatefulSet' ? statefulSetRolloutStatus : daemonSetRolloutStatus;
  let s = await client.get<RolloutSet>(path);
  switch (sub) {
    case 'status': {
      const deadline = o.timeoutMs ? Date.now() + o.timeoutMs : Infinity;
      let last = '';
      for (;;) {
        const { message, done } = view(s);
        if (message !== last) io.out(`${message}\n`);
        last = message;
        if (done || !o.watch) return;
        if (Date.now() >= deadline) throw new CliError('timed out waiting for the condition');
        await new Promise((r) => setTimeout(r, 250));
        s = await client.get<RolloutSet>(path);
      }
    }
    case 'history': {
      const revs = await revisionsOf(client, s);
      if (o.revision) {
        const r = revs.find((x) => x.revision === o.revision);
        if (!r) throw new CliError(`unable to find the specified revision`);
        io.out(`${ref} with revision #${o.revision}\nPod Template:\n${stringify(templateOf(r)).replace(/^/gm, '  ')}`);
        return;
      }
      const rows = revs.map((r) => [String(r.revision), r.metadata.annotations?.[CHANGE_CAUSE] ?? '<none>']);
      const w = Math.max(8, ...rows.map((r) => r[0]!.length)) + 2;
      io.out(`${ref} \n${'REVISION'.padEnd(w)}CHANGE-CAUSE\n${rows.map(([r, c]) => `${r!.padEnd(w)}${c}\n`).join('')}\n`);
      return;
    }
    case 'undo': {
      const revs = await revisionsOf(client, s);
      const target = o.toRevision > 0 ? revs.find((r) => r.revision === o.toRevision) : revs[revs.length - 2];
      if (!target) throw new CliError(o.toRevision > 0 ? `unable to find specified revision ${o.toRevision} in history` : 'no rollout history found');
      const template = templateOf(target);
      if (canonical(template) === canonical(s.spec?.template ?? {})) {
        io.out(`${ref} skipped rollback (current template already matches revision ${target.revision})\n`);
        return;
      }
      await client.patch(path, [
        { op: 'test', path: '/metadata/resourceVersion', value: s.metadata.resourceVersion },
        { op: 'replace', path: '/spec/template', value: template },
      ], 'application/json-patch+json');
      io.out(`${ref} rolled back\n`);
      return;
    }
    case 'restart': {
      const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      await client.patch(path, { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at } } } } }, 'application/merge-patch+json');
      io.out(`${ref} restarted\n`);
      return;
    }
    default:
      throw new CliError(`${kind.plural}.${kind.group} "${name}" ${sub === 'pause' ? 'pausing' : 'resuming'} is not supported`);
  }
}
