// core/v1 NodeSelector matching (a PersistentVolume's node affinity, a pod's
// required node affinity): terms are ORed, a term's requirements ANDed.
// matchFields supports metadata.name only, as Kubernetes does.

export interface NodeSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface NodeSelector {
  nodeSelectorTerms?: NodeSelectorTerm[];
}

function requirementMatches(r: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In': return value !== undefined && values.includes(value);
    case 'NotIn': return value === undefined || !values.includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    case 'Gt':
    case 'Lt': {
      // One integer value; a label that is not an integer never matches.
      if (value === undefined || values.length !== 1 || !/^-?\d+$/.test(value) || !/^-?\d+$/.test(values[0])) return false;
      return r.operator === 'Gt' ? Number(value) > Number(values[0]) : Number(value) < Number(values[0]);
    }
    default: return false;
  }
}

function termMatches(t: NodeSelectorTerm, name: string, labels: Record<string, string>): boolean {
  const exprs = t.matchExpressions ?? [];
  const fields = t.matchFields ?? [];
  // An empty term matches no node.
  if (!exprs.length && !fields.length) return false;
  return exprs.every((r) => requirementMatches(r, Object.hasOwn(labels, r.key) ? labels[r.key] : undefined))
    && fields.every((r) => r.key === 'metadata.name' && requirementMatches(r, name));
}

/** Whether a node (its name and labels) satisfies the selector; a selector without terms matches nothing. */
export function nodeSelectorMatches(sel: NodeSelector | undefined, node: { name: string; labels?: Record<string, string> }): boolean {
  return (sel?.nodeSelectorTerms ?? []).some((t) => termMatches(t, node.name, node.labels ?? {}));
}
