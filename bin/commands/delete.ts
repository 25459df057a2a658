// `flotilla delete KIND NAME…` / `delete -f FILE`: deletes, then (like
// kubectl's default --wait) waits until each object is really gone — a pod
// on a node ends gracefully and objects with finalizers linger — so that a
// script can recreate an object right after delete returns.
import { type ApiClient, ApiClientError, type Status, resourcePath } from '../../agents/client/api.ts';
import { type KindDef, kindForObject, kindLabel, objectRef } from '../../agents/client/kinds.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { namespaceFor } from './apply.ts';
import {
  COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, kindAndNames, parseCommand, parseCount, parseDuration,
} from './args.ts';
import { readManifests } from './manifests.ts';
import { parseOutputFormat } from './printers.ts';
import { CliError, type Io, kindOrFail, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const USAGE = `Delete resources by kind and name, by label selector, or as named in manifests.

Usage:
  flotilla delete KIND NAME… [-n NAMESPACE]
  flotilla delete KIND/NAME… [-n NAMESPACE]
  flotilla delete KIND (-l SELECTOR | --all) [-n NAMESPACE]
  flotilla delete -f FILE|DIR|- [-R]

Options:
  -n, --namespace         the namespace (default "default")
  -f, --filename          manifests naming the objects to delete; repeatable
  -R, --recursive         also read subdirectories of directories given with -f
  -l, --selector          delete the objects matching this label selector
      --all               delete every object of the kind in the namespace
      --wait              wait until the objects are gone (default true; --wait=false to return at once)
      --timeout           how long to wait (default 60s)
      --grace-period      seconds a pod gets to shut down (default: the pod's own)
      --force             delete at once, without waiting for the pod to stop (grace period 0)
      --ignore-not-found  treat objects that do not exist as deleted
      --cascade           background (default: the owner goes now, the garbage collector removes its dependents),
                          foreground (the dependents that block it go first) or orphan (the dependents stay)
  -o, --output            name: print kind/name instead of the "deleted" message
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  selector: { type: 'string', short: 'l' },
  all: { type: 'boolean' },
  wait: { type: 'boolean', default: true },
  timeout: { type: 'string', default: '60s' },
  'grace-period': { type: 'string' },
  force: { type: 'boolean' },
  'ignore-not-found': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  cascade: { type: 'string', default: 'background' },
} as const;

/** kubectl's --cascade values and the propagationPolicy each sends (true/false are kubectl's deprecated spellings). */
const CASCADE: Record<string, string> = { background: 'Background', foreground: 'Foreground', orphan: 'Orphan', true: 'Background', false: 'Orphan' };

interface Target {
  kind: KindDef;
  ns: string;
  name: string;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('delete', argv, OPTIONS), async ({ values, positionals }) => {
    const format = parseOutputFormat(values.output, ['table', 'name']);
    const timeoutMs = parseDuration(values.timeout, '--timeout');
    const grace = values.force ? 0 : parseCount(values['grace-period'], '--grace-period');
    const propagationPolicy = CASCADE[values.cascade];
    if (!propagationPolicy) throw new UsageError(`invalid cascade value (${values.cascade}). Must be "background", "foreground", or "orphan"`, 'delete');
    const files = values.filename ?? [];
    if (files.length && positionals.length) throw new UsageError('specify either -f or KIND NAME, not both', 'delete');
    if (!files.length && !positionals.length) throw new UsageError('you must specify the type of resource to delete, or -f', 'delete');

    await withClient(io, values, async (client) => {
      const targets = files.length
        ? await targetsFromFiles(files, values.recursive, values.namespace, io)
        : await targetsFromArgs(client, positionals, values.namespace || DEFAULT_NAMESPACE, values.selector, values.all);
      if (!targets.length) {
        io.err('No resources found\n');
        return;
      }
      const body = { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy, ...(grace !== undefined ? { gracePeriodSeconds: grace } : {}) };
      const pending: { t: Target; uid?: string }[] = [];
      for (const t of targets) {
        try {
          const res = await client.delete<KubeObject | Status>(resourcePath(t.kind, t.ns, t.name), body);
          io.out(format === 'name' ? `${objectRef(t.kind, t.name)}\n` : `${kindLabel(t.kind)} "${t.name}" deleted\n`);
          // The answer is the object while its deletion is still under way (grace period, finalizers).
          const uid = res && (res as KubeObject).kind !== 'Status' ? (res as KubeObject).metadata?.uid : undefined;
          pending.push({ t, uid });
        } catch (e) {
          if (values['ignore-not-found'] && e instanceof ApiClientError && e.code === 404) continue;
          reportError(io, e);
        }
      }
      if (!values.wait) return;
      const deadline = Date.now() + timeoutMs;
      for (const p of pending) {
        try {
          await waitGone(client, p.t, p.uid, deadline);
        } catch (e) {
          reportError(io, e);
        }
      }
    });
  });
}

async function targetsFromFiles(files: string[], recursive: boolean | undefined, nsFlag: string | undefined, io: Io): Promise<Target[]> {
  const manifests = await readManifests(files, { recursive, stdin: io.stdin, verb: 'delete' });
  const out: Target[] = [];
  for (const m of manifests) {
    const kind = kindForObject(String(m.obj.apiVersion), String(m.obj.kind));
    if (!kind) {
      reportError(io, new CliError(`resource mapping not found for name: "${m.obj.metadata?.name}" from "${m.source}": no matches for kind "${m.obj.kind}" in version "${m.obj.apiVersion}"`));
      continue;
    }
    out.push({ kind, ns: namespaceFor(kind, m.obj, nsFlag), name: String(m.obj.metadata!.name) });
  }
  return out;
}

async function targetsFromArgs(client: ApiClient, positionals: string[], ns: string, selector: string | undefined, all: boolean | undefined): Promise<Target[]> {
  const out: Target[] = [];
  for (const g of kindAndNames(positionals, 'delete')) {
    const kind = kindOrFail(g.kind);
    const kns = kind.namespaced ? ns : '';
    if (g.names.length) {
      if (selector || all) throw new UsageError('names cannot be combined with --selector or --all', 'delete');
      out.push(...g.names.map((name) => ({ kind, ns: kns, name })));
      continue;
    }
    if (!selector && !all) throw new UsageError(`resource(s) were provided, but no name was specified (use --all to delete every ${kind.singular})`, 'delete');
    const list = await client.list(resourcePath(kind, kns), { labelSelector: selector });
    out.push(...list.items.map((o) => ({ kind, ns: kns, name: String(o.metadata?.name) })));
  }
  return out;
}

/**
 * Returns once the object is gone (or replaced by a new one with another uid).
 * A watch from the object's revision sees the deletion the moment it is
 * applied; a GET after each watch ends covers a deletion that raced with the
 * start of the watch and a stream cut by a failover.
 */
async function waitGone(client: ApiClient, t: Target, uid: string | undefined, deadline: number): Promise<void> {
  const path = resourcePath(t.kind, t.ns, t.name);
  for (;;) {
    let cur: KubeObject;
    try {
      cur = await client.get(path);
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
    if (uid && cur.metadata?.uid !== uid) return;
    uid ??= cur.metadata?.uid;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new CliError(`timed out waiting for the condition on ${t.kind.plural}/${t.name}`);
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), remaining);
    try {
      await client.watch(resourcePath(t.kind, t.ns), {
        fieldSelector: `metadata.name=${t.name}`, resourceVersion: cur.metadata?.resourceVersion,
      }, (ev) => {
        if (ev.type === 'DELETED' && (!uid || ev.object.metadata?.uid === uid)) stop.abort();
      }, stop.signal);
    } catch {
      // A broken or expired watch: the GET at the top of the loop decides.
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      clearTimeout(timer);
    }
  }
}
