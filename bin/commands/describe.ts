// `flotilla describe KIND NAME… [-n NS]`: each object in kubectl describe's
// layout (bin/commands/describer.ts) with the Events about it at the bottom,
// found as kubectl finds them: a field selector on the involved object's
// name, namespace, kind and uid.
import { type ApiClient, resourcePath } from '../../agents/client/api.ts';
import { type KindDef, resolveKind } from '../../agents/client/kinds.ts';
import { fieldSelectorToString } from '../../api/selectors.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, kindAndNames, parseCommand } from './args.ts';
import { type CoreEventLike, describeObject } from './describer.ts';
import { type Io, kindOrFail, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const USAGE = `Show details of a specific resource, with the Events about it.

Usage:
  flotilla describe KIND NAME [NAME…] [-n NAMESPACE]
  flotilla describe KIND/NAME [KIND/NAME…] [-n NAMESPACE]

Options:
  -n, --namespace   the namespace (default "default")
${CONNECTION_HELP}`;

const OPTIONS = { ...COMMON_OPTIONS, ...NAMESPACE_OPTION } as const;

const EVENTS = resolveKind('events')!;

/** The Events about an object, selected like kubectl describe does. */
export async function eventsFor(client: ApiClient, kind: KindDef, obj: { metadata?: { name?: string; namespace?: string; uid?: string } }): Promise<CoreEventLike[]> {
  const m = obj.metadata ?? {};
  const fields = [
    { path: 'involvedObject.name', op: '=' as const, value: String(m.name ?? '') },
    { path: 'involvedObject.namespace', op: '=' as const, value: String(m.namespace ?? '') },
    { path: 'involvedObject.kind', op: '=' as const, value: kind.kind },
    { path: 'involvedObject.uid', op: '=' as const, value: String(m.uid ?? '') },
  ];
  // Events of cluster-scoped objects live in "default", as the recorder writes them.
  const ns = kind.namespaced ? m.namespace : undefined;
  const list = await client.list<CoreEventLike>(resourcePath(EVENTS, ns), { fieldSelector: fieldSelectorToString(fields) });
  return list.items;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('describe', argv, OPTIONS), async ({ values, positionals }) => {
    const reqs = kindAndNames(positionals, 'describe');
    if (!reqs.length || reqs.some((r) => !r.names.length)) throw new UsageError('describe needs a kind and at least one name', 'describe');
    const ns = values.namespace || DEFAULT_NAMESPACE;
    await withClient(io, values, async (client) => {
      let first = true;
      for (const r of reqs) {
        const kind = kindOrFail(r.kind);
        for (const name of r.names) {
          try {
            const obj = await client.get(resourcePath(kind, kind.namespaced ? ns : undefined, name));
            const events = await eventsFor(client, kind, obj);
            // Several objects are separated by a blank line, as kubectl does.
            io.out(`${first ? '' : '\n\n'}${describeObject(obj, { kind: kind.kind, namespaced: kind.namespaced, events, now: Date.now() })}`);
            first = false;
          } catch (e) {
            reportError(io, e);
          }
        }
      }
    });
  });
}
