// `flotilla apply -f FILE|DIR|-`: makes the cluster match the manifests.
//
// Client-side (the default), as kubectl does it: the manifest applied is kept
// in the object's last-applied-configuration annotation, and the next apply
// sends a JSON merge patch computed three-way (last applied, manifest, live),
// so fields dropped from the manifest are deleted while fields set by others
// (defaults, controllers, `scale`) are kept. With --server-side the manifest
// goes to the server as an apply patch and field ownership decides instead.
import type { ApiClient } from '../../agents/client/api.ts';
import { ApiClientError, resourcePath } from '../../agents/client/api.ts';
import { type KindDef, kindForObject, objectRef } from '../../agents/client/kinds.ts';
import { semanticEqual, threeWayMergePatch } from '../../agents/client/merge-patch.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, parseCommand } from './args.ts';
import { type Manifest, readManifests } from './manifests.ts';
import { formatObjects, hideManagedFields, parseOutputFormat, sortKeys } from './printers.ts';
import { CliError, type Io, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';
const CLIENT_SIDE_MANAGER = 'flotilla-client-side-apply';
const SERVER_SIDE_MANAGER = 'flotilla';

export const USAGE = `Apply a configuration to resources from files, directories or stdin.

Usage:
  flotilla apply -f FILE|DIR|- [-f …] [-R] [-n NAMESPACE] [--server-side [--force-conflicts]] [-o name|json|yaml]

Options:
  -f, --filename         a manifest file (YAML or JSON, several documents allowed), a directory of
                         *.yaml, *.yml and *.json files, or - for stdin; repeatable
  -R, --recursive        also read the subdirectories of directories given with -f
  -n, --namespace        namespace for objects that do not name one (default "default")
      --server-side      send the manifests as server-side apply patches
      --force-conflicts  with --server-side: take over fields owned by other managers
      --field-manager    the field manager to record (default: flotilla-client-side-apply, or flotilla with --server-side)
  -o, --output           name, json or yaml instead of "kind/name created|configured|unchanged"
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  'server-side': { type: 'boolean' },
  'force-conflicts': { type: 'boolean' },
  'field-manager': { type: 'string' },
  output: { type: 'string', short: 'o' },
} as const;

export type ApplyAction = 'created' | 'configured' | 'unchanged' | 'serverside-applied';

export interface ApplyResult {
  action: ApplyAction;
  object: KubeObject;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('apply', argv, OPTIONS), async ({ values, positionals }) => {
    if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(' ')} (apply reads manifests from -f)`, 'apply');
    const files = values.filename ?? [];
    if (!files.length) throw new UsageError('must specify -f (a file, a directory or - for stdin)', 'apply');
    if (values['force-conflicts'] && !values['server-side']) throw new UsageError('--force-conflicts only works with --server-side', 'apply');
    const format = parseOutputFormat(values.output, ['table', 'name', 'json', 'yaml']);
    const manifests = await readManifests(files, { recursive: values.recursive, stdin: io.stdin, verb: 'apply' });

    await withClient(io, values, async (client) => {
      const applied: KubeObject[] = [];
      for (const m of manifests) {
        try {
          const kind = kindOf(m);
          const ns = namespaceFor(kind, m.obj, values.namespace);
          const r = values['server-side']
            ? await applyServerSide(client, kind, ns, m.obj, { manager: values['field-manager'] ?? SERVER_SIDE_MANAGER, force: !!values['force-conflicts'] })
            : await applyClientSide(client, kind, ns, m.obj, { manager: values['field-manager'] ?? CLIENT_SIDE_MANAGER, io });
          const ref = objectRef(kind, String(m.obj.metadata!.name));
          if (format === 'table') io.out(`${ref} ${r.action}\n`);
          else if (format === 'name') io.out(`${ref}\n`);
          else applied.push(hideManagedFields(r.object));
        } catch (e) {
          // One bad object does not stop the others (as with kubectl); the exit code tells.
          reportError(io, inContext(e, m));
        }
      }
      if ((format === 'json' || format === 'yaml') && applied.length) {
        io.out(formatObjects(applied, format, applied.length === 1, () => ''));
      }
    });
  });
}

function kindOf(m: Manifest): KindDef {
  const kind = kindForObject(String(m.obj.apiVersion), String(m.obj.kind));
  if (!kind) {
    throw new CliError(
      `resource mapping not found for name: "${m.obj.metadata?.name}" namespace: "${m.obj.metadata?.namespace ?? ''}" from "${m.source}": `
      + `no matches for kind "${m.obj.kind}" in version "${m.obj.apiVersion}"`,
    );
  }
  return kind;
}

/**
 * The namespace an object goes to: its own, else -n, else "default"; an
 * object naming a different namespace than an explicit -n is refused, since
 * one of the two is a mistake.
 */
export function namespaceFor(kind: Pick<KindDef, 'namespaced'>, obj: KubeObject, flag: string | undefined): string {
  if (!kind.namespaced) return '';
  const own = obj.metadata?.namespace;
  if (own && flag && own !== flag) {
    throw new CliError(`the namespace from the provided object "${own}" does not match the namespace "${flag}". You must pass '--namespace=${own}' to perform this operation.`);
  }
  return own || flag || DEFAULT_NAMESPACE;
}

/**
 * The manifest as it will be stored: namespace filled in, the annotation
 * holding the manifest itself. The recorded JSON is written the way kubectl
 * writes it (keys sorted, an `annotations` map always present) so that
 * kubectl and flotilla applying the same manifest agree it is unchanged.
 */
export function withLastApplied(obj: KubeObject, ns: string): { modified: KubeObject; recorded: KubeObject } {
  const recorded = structuredClone(obj);
  recorded.metadata = { ...(recorded.metadata ?? {}) };
  if (ns) recorded.metadata.namespace = ns;
  const annotations = { ...(recorded.metadata.annotations ?? {}) };
  delete annotations[LAST_APPLIED_ANNOTATION];
  recorded.metadata.annotations = annotations;
  const modified = structuredClone(recorded);
  // kubectl ends the recorded JSON with a newline; so do we, byte for byte.
  modified.metadata!.annotations = { ...annotations, [LAST_APPLIED_ANNOTATION]: `${JSON.stringify(sortKeys(recorded))}\n` };
  return { modified, recorded };
}

function lastApplied(current: KubeObject): KubeObject | undefined {
  const text = current.metadata?.annotations?.[LAST_APPLIED_ANNOTATION];
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as KubeObject) : undefined;
  } catch {
    return undefined;
  }
}

export async function applyClientSide(
  client: ApiClient,
  kind: KindDef,
  ns: string,
  manifest: KubeObject,
  opts: { manager: string; io?: Io },
): Promise<ApplyResult> {
  const name = String(manifest.metadata!.name);
  const path = resourcePath(kind, ns, name);
  const { modified, recorded } = withLastApplied(manifest, ns);
  // Twice at most: a create that loses a race to another creator patches what won instead.
  for (let attempt = 0; ; attempt++) {
    let current: KubeObject | undefined;
    try {
      current = await client.get(path);
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 404 && e.reason === 'NotFound')) throw e;
    }
    if (!current) {
      try {
        const created = await client.create(resourcePath(kind, ns), modified, { fieldManager: opts.manager });
        return { action: 'created', object: created };
      } catch (e) {
        if (attempt === 0 && e instanceof ApiClientError && e.reason === 'AlreadyExists') continue;
        throw tagged(e, 'creating');
      }
    }
    const original = lastApplied(current);
    if (!original) {
      opts.io?.err(`Warning: ${kind.plural}/${name} has no ${LAST_APPLIED_ANNOTATION} annotation (it was not created by apply); it will be added now, and fields removed from the manifest before this apply are not deleted.\n`);
    }
    if (original && semanticEqual(original, recorded)) {
      // Same manifest, recorded by another client with other formatting: keep its text rather than churn.
      modified.metadata!.annotations![LAST_APPLIED_ANNOTATION] = current.metadata!.annotations![LAST_APPLIED_ANNOTATION];
    }
    const patch = threeWayMergePatch(original, modified, current);
    if (!Object.keys(patch).length) return { action: 'unchanged', object: current };
    try {
      const updated = await client.patch(path, patch, 'application/merge-patch+json', { fieldManager: opts.manager });
      return { action: 'configured', object: updated };
    } catch (e) {
      throw tagged(e, 'patching');
    }
  }
}

export async function applyServerSide(
  client: ApiClient,
  kind: KindDef,
  ns: string,
  manifest: KubeObject,
  opts: { manager: string; force: boolean },
): Promise<ApplyResult> {
  const obj = structuredClone(manifest);
  if (ns) obj.metadata = { ...(obj.metadata ?? {}), namespace: ns };
  const path = resourcePath(kind, ns, String(obj.metadata!.name));
  try {
    // JSON is YAML, and keeps numbers and strings exactly as parsed from the manifest.
    const object = await client.patch(path, JSON.stringify(obj), 'application/apply-patch+yaml', {
      fieldManager: opts.manager, force: opts.force ? 'true' : undefined,
    });
    return { action: 'serverside-applied', object };
  } catch (e) {
    throw tagged(e, 'applying');
  }
}

/** Marks which step failed, for the message (`error when creating "FILE": …`). */
class StepError extends Error {
  constructor(readonly step: string, readonly inner: unknown) {
    super((inner as Error)?.message);
  }
}

function tagged(e: unknown, step: string): unknown {
  return e instanceof ApiClientError ? new StepError(step, e) : e;
}

/** kubectl's `Error from server (Reason): error when creating "FILE": message`. */
function inContext(e: unknown, m: Manifest): unknown {
  if (!(e instanceof StepError) || !(e.inner instanceof ApiClientError)) return e;
  const inner = e.inner;
  return new ApiClientError({ ...inner.status, message: `error when ${e.step} "${m.source}": ${inner.message}` }, inner.method, inner.path);
}
