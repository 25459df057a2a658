// `flotilla rollout status|history|undo|pause|resume|restart DEPLOYMENT`:
// kubectl rollout for Deployments, with kubectl's messages. History and undo
// read the ReplicaSets the Deployment controls and their
// deployment.kubernetes.io/revision annotations, as kubectl does; undo
// copies a ReplicaSet's template back into the Deployment (kubectl 1.32's
// client-side rollback), pause/resume set spec.paused, restart stamps the
// template with kubectl.kubernetes.io/restartedAt so a new rollout starts.
// DaemonSets and StatefulSets have no rollout support here yet.
import { stringify } from 'yaml';
import { type ApiClient, ApiClientError, resourcePath } from '../../agents/client/api.ts';
import { resolveKind } from '../../agents/client/kinds.ts';
import type { Deployment, PodTemplate, ReplicaSet } from '../../agents/informer/types.ts';
import { NOT_COPIED, REVISION, revisionOf } from '../../agents/controllers/deployment/annotations.ts';
import { POD_TEMPLATE_HASH, equalIgnoreHash } from '../../agents/controllers/deployment/hash.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, parseCommand, parseCount, parseDuration } from './args.ts';
import { CliError, type Io, processIo, runVerb, withClient } from './runtime.ts';

export const USAGE = `Manage the rollout of a Deployment.

Usage:
  flotilla rollout status DEPLOYMENT [--watch=false] [--timeout 0s] [--revision N]
  flotilla rollout history DEPLOYMENT [--revision N]
  flotilla rollout undo DEPLOYMENT [--to-revision N]
  flotilla rollout pause DEPLOYMENT
  flotilla rollout resume DEPLOYMENT
  flotilla rollout restart DEPLOYMENT

DEPLOYMENT is NAME, deployment/NAME or deployment NAME.

Options:
  -w, --watch        status: wait until the rollout finishes (default true)
      --timeout      status: give up after this long (default 0: never)
      --revision     status: fail unless this is the running revision; history: show this revision's pod template
      --to-revision  undo: the revision to go back to (default 0: the previous one)
  -n, --namespace    the namespace (default "default")
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  watch: { type: 'boolean', short: 'w', default: true },
  timeout: { type: 'string' },
  revision: { type: 'string' },
  'to-revision': { type: 'string' },
} as const;

const DEPLOYMENTS = resolveKind('deployments')!;
const REPLICASETS = resolveKind('replicasets')!;
const CHANGE_CAUSE = 'kubernetes.io/change-cause';
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

const SUBCOMMANDS = ['status', 'history', 'undo', 'pause', 'resume', 'restart'] as const;
type Sub = typeof SUBCOMMANDS[number];

/** The deployment's name from NAME, deployment/NAME or deployment NAME. */
function deploymentName(args: string[]): string {
  let [a, b] = args;
  if (a?.includes('/')) [a, b] = a.split('/', 2) as [string, string];
  else if (b === undefined) return requireName(a);
  const kind = resolveKind(a ?? '');
  if (kind?.kind !== 'Deployment') throw new CliError(`rollout is supported for deployments only here, not "${a}"`);
  return requireName(b);
}

function requireName(n: string | undefined): string {
  if (!n) throw new UsageError('required resource not specified', 'rollout');
  return n;
}

/**
 * kubectl's DeploymentStatusViewer: a message and whether the rollout is
 * done; throws when it has exceeded its progress deadline or runs another revision.
 */
export function rolloutStatus(d: Deployment, revision = 0): { message: string; done: boolean } {
  const name = d.metadata.name;
  if (revision > 0) {
    const running = Number(d.metadata.annotations?.[REVISION] ?? 0);
    if (running !== revision) throw new CliError(`desired revision (${revision}) is different from the running revision (${running})`);
  }
  const s = d.status ?? {};
  if ((d.metadata.generation ?? 0) > (s.observedGeneration ?? 0)) return { message: 'Waiting for deployment spec update to be observed...', done: false };
  if (s.conditions?.find((c) => c.type === 'Progressing')?.reason === 'ProgressDeadlineExceeded') throw new CliError(`deployment "${name}" exceeded its progress deadline`);
  const want = d.spec?.replicas ?? 1;
  const updated = s.updatedReplicas ?? 0;
  const replicas = s.replicas ?? 0;
  const available = s.availableReplicas ?? 0;
  const waiting = `Waiting for deployment "${name}" rollout to finish: `;
  if (updated < want) return { message: `${waiting}${updated} out of ${want} new replicas have been updated...`, done: false };
  if (replicas > updated) return { message: `${waiting}${replicas - updated} old replicas are pending termination...`, done: false };
  if (available < updated) return { message: `${waiting}${available} of ${updated} updated replicas are available...`, done: false };
  return { message: `deployment "${name}" successfully rolled out`, done: true };
}

/** The ReplicaSets the Deployment controls (selected by its selector, with its uid as controller). */
async function ownedReplicaSets(client: ApiClient, d: Deployment): Promise<ReplicaSet[]> {
  const sel = Object.entries(d.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const list = await client.list<ReplicaSet>(resourcePath(REPLICASETS, d.metadata.namespace), sel ? { labelSelector: sel } : {});
  return list.items.filter((rs) => rs.metadata.ownerReferences?.some((r) => r.controller && r.uid === d.metadata.uid));
}

/** The template a ReplicaSet runs, as a Deployment's (without the pod-template-hash label). */
function withoutHash(t: PodTemplate | undefined): PodTemplate {
  const c = structuredClone(t ?? {});
  if (c.metadata?.labels) delete c.metadata.labels[POD_TEMPLATE_HASH];
  return c;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('rollout', argv, OPTIONS), async ({ values, positionals }) => {
    const [sub, ...rest] = positionals;
    if (!sub || !SUBCOMMANDS.includes(sub as Sub)) throw new UsageError(`expected one of ${SUBCOMMANDS.join(', ')}`, 'rollout');
    const name = deploymentName(rest);
    const ns = values.namespace || DEFAULT_NAMESPACE;
    const path = resourcePath(DEPLOYMENTS, ns, name);
    const ref = `deployment.apps/${name}`;
    await withClient(io, values, async (client) => {
      const d = await client.get<Deployment>(path);
      switch (sub as Sub) {
        case 'status': {
          const revision = parseCount(values.revision, '--revision') ?? 0;
          const timeoutMs = values.timeout ? parseDuration(values.timeout, '--timeout') : 0;
          const deadline = timeoutMs ? Date.now() + timeoutMs : Infinity;
          let cur = d;
          let last = '';
          for (;;) {
            const { message, done } = rolloutStatus(cur, revision);
            if (message !== last) io.out(`${message}\n`);
            last = message;
            if (done || !values.watch) return;
            if (Date.now() >= deadline) throw new CliError('timed out waiting for the condition');
            await new Promise((r) => setTimeout(r, 250));
            cur = await client.get<Deployment>(path);
          }
        }
        case 'history': {
          const rss = (await ownedReplicaSets(client, d)).filter((rs) => revisionOf(rs) > 0).sort((a, b) => revisionOf(a) - revisionOf(b));
          const revision = parseCount(values.revision, '--revision');
          if (revision) {
            const rs = rss.find((r) => revisionOf(r) === revision);
            if (!rs) throw new CliError(`unable to find the specified revision`);
            io.out(`${ref} with revision #${revision}\nPod Template:\n${stringify(rs.spec?.template ?? {}).replace(/^/gm, '  ')}`);
            return;
          }
          const rows = rss.map((rs) => [String(revisionOf(rs)), rs.metadata.annotations?.[CHANGE_CAUSE] ?? '<none>']);
          const w = Math.max(8, ...rows.map((r) => r[0]!.length)) + 2;
          io.out(`${ref} \n${'REVISION'.padEnd(w)}CHANGE-CAUSE\n${rows.map(([r, c]) => `${r!.padEnd(w)}${c}\n`).join('')}\n`);
          return;
        }
        case 'undo': {
          if (d.spec?.paused) throw new CliError(`you cannot rollback a paused deployment; resume it first with 'flotilla rollout resume ${ref}' and try again`);
          const toRevision = parseCount(values['to-revision'], '--to-revision') ?? 0;
          const rss = (await ownedReplicaSets(client, d)).sort((a, b) => revisionOf(b) - revisionOf(a));
          let target: ReplicaSet | undefined;
          if (toRevision > 0) {
            target = rss.find((rs) => revisionOf(rs) === toRevision);
            if (!target) throw new CliError(`unable to find specified revision ${toRevision} in history`);
          } else {
            // The previous revision: the second highest.
            target = rss.filter((rs) => revisionOf(rs) > 0)[1];
            if (!target) throw new CliError('no rollout history found for deployment "' + name + '"');
          }
          const template = withoutHash(target.spec?.template);
          if (equalIgnoreHash(template, d.spec?.template)) {
            io.out(`${ref} skipped rollback (current template already matches revision ${revisionOf(target)})\n`);
            return;
          }
          const annotations: Record<string, string> = {};
          for (const [k, v] of Object.entries(d.metadata.annotations ?? {})) if (NOT_COPIED.has(k)) annotations[k] = v;
          for (const [k, v] of Object.entries(target.metadata.annotations ?? {})) if (!NOT_COPIED.has(k)) annotations[k] = v;
          await client.patch(path, [
            { op: 'test', path: '/metadata/resourceVersion', value: d.metadata.resourceVersion },
            { op: 'replace', path: '/spec/template', value: template },
            { op: 'replace', path: '/metadata/annotations', value: annotations },
          ], 'application/json-patch+json');
          io.out(`${ref} rolled back\n`);
          return;
        }
        case 'pause':
        case 'resume': {
          const pause = sub === 'pause';
          if (!!d.spec?.paused === pause) throw new CliError(`${ref} is ${pause ? 'already paused' : 'not paused'}`);
          await client.patch(path, { spec: { paused: pause } }, 'application/merge-patch+json');
          io.out(`${ref} ${pause ? 'paused' : 'resumed'}\n`);
          return;
        }
        case 'restart': {
          if (d.spec?.paused) throw new CliError(`can't restart paused deployment (run rollout resume first)`);
          const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
          await client.patch(path, { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at } } } } }, 'application/merge-patch+json');
          io.out(`${ref} restarted\n`);
          return;
        }
      }
    }).catch((e) => {
      if (e instanceof ApiClientError && e.code === 404) throw new CliError(`deployments.apps "${name}" not found`);
      throw e;
    });
  });
}
