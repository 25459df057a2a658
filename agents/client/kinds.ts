// Kind resolution for clients. The CLI and the agents are built from the same
// tree as the server, so they resolve names against the server's own kind
// registry instead of fetching discovery documents on every invocation (one
// round trip less per command, and no chance of disagreeing with the server
// about short names).
import { KINDS, kindByApiVersion, kindByName } from '../../api/kinds/index.ts';
import type { KindDef } from '../../api/schema/types.ts';

export type { KindDef };

/** "po", "pods", "pod", "Pod", "deploy", "deployments.apps"…; undefined when unknown. */
export function resolveKind(name: string): KindDef | undefined {
  return kindByName(name.trim());
}

/** The kind of a manifest from its apiVersion ("apps/v1") and kind ("Deployment"). */
export function kindForObject(apiVersion: string, kind: string): KindDef | undefined {
  return kindByApiVersion(apiVersion, kind);
}

/** Every kind the server serves (for messages listing what exists). */
export function allKinds(): readonly KindDef[] {
  return KINDS;
}

/** How kubectl names a kind in output: "deployment.apps", "pod". */
export function kindLabel(k: Pick<KindDef, 'kind' | 'group'>): string {
  return k.group ? `${k.kind.toLowerCase()}.${k.group}` : k.kind.toLowerCase();
}

/** How kubectl names an object: "deployment.apps/web", "pod/x". */
export function objectRef(k: Pick<KindDef, 'kind' | 'group'>, name: string): string {
  return `${kindLabel(k)}/${name}`;
}

/** How the server names a resource in messages: "deployments.apps", "pods". */
export function resourceLabel(k: Pick<KindDef, 'plural' | 'group'>): string {
  return k.group ? `${k.plural}.${k.group}` : k.plural;
}
