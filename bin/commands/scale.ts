// `flotilla scale KIND NAME --replicas N`: through the scale subresource, so
// it works for every scalable kind alike and touches nothing but the replica
// count (a later client-side apply keeps it unless the manifest sets it).
import { ApiClientError, resourcePath } from '../../agents/client/api.ts';
import { objectRef, resourceLabel } from '../../agents/client/kinds.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, kindAndNames, parseCommand, parseCount } from './args.ts';
import { CliError, type Io, kindOrFail, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const USAGE = `Set a new size for a Deployment, ReplicaSet, StatefulSet or other scalable resource.

Usage:
  flotilla scale KIND NAME… --replicas N [-n NAMESPACE] [--current-replicas M]
  flotilla scale KIND/NAME… --replicas N [-n NAMESPACE]

Options:
      --replicas          the new number of replicas (required)
      --current-replicas  only scale if the current number of replicas is this
  -n, --namespace         the namespace (default "default")
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  replicas: { type: 'string' },
  'current-replicas': { type: 'string' },
} as const;

interface Scale {
  metadata?: { resourceVersion?: string };
  spec?: { replicas?: number };
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('scale', argv, OPTIONS), async ({ values, positionals }) => {
    const replicas = parseCount(values.replicas, '--replicas');
    if (replicas === undefined) throw new UsageError('--replicas=COUNT is required, and COUNT must be greater than or equal to 0', 'scale');
    const current = parseCount(values['current-replicas'], '--current-replicas');
    const targets = kindAndNames(positionals, 'scale').flatMap((g) => {
      const kind = kindOrFail(g.kind);
      if (!g.names.length) throw new UsageError(`no name given for ${resourceLabel(kind)} to scale`, 'scale');
      if (!kind.subresources.includes('scale')) throw new CliError(`${resourceLabel(kind)} cannot be scaled: the kind has no scale subresource`);
      return g.names.map((name) => ({ kind, name }));
    });
    const ns = values.namespace || DEFAULT_NAMESPACE;
    await withClient(io, values, async (client) => {
      for (const { kind, name } of targets) {
        const path = resourcePath(kind, kind.namespaced ? ns : '', name, 'scale');
        try {
          if (current !== undefined) {
            // The precondition rides on the resourceVersion: a concurrent change makes the write fail with a Conflict.
            const sc = await client.get<Scale>(path);
            const have = sc.spec?.replicas ?? 0;
            if (have !== current) throw new CliError(`Expected replicas to be ${current}, was ${have}`);
            await client.update(path, { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: ns, resourceVersion: sc.metadata?.resourceVersion }, spec: { replicas } });
          } else {
            await client.patch(path, { spec: { replicas } }, 'application/merge-patch+json');
          }
          io.out(`${objectRef(kind, name)} scaled\n`);
        } catch (e) {
          reportError(io, e instanceof ApiClientError || e instanceof CliError ? e : new CliError((e as Error).message));
        }
      }
    });
  });
}
