// Server-side printing: the meta.k8s.io Table that `kubectl get` asks for,
// with each kind's columns (priority 1 columns appear with -o wide).
import type { IncomingMessage } from 'node:http';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';

export function wantsTable(req: IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

/** Table version the client asked for (kubectl asks v1, falls back to v1beta1). */
function tableApiVersion(req?: IncomingMessage): string {
  const a = req?.headers.accept ?? '';
  return /as=Table;v=v1;/.test(a) || /as=Table;v=v1$/.test(a) || !/v1beta1/.test(a) ? 'meta.k8s.io/v1' : 'meta.k8s.io/v1beta1';
}

export function tableFor(kind: KindDef, objs: KubeObject[], q: URLSearchParams, listMeta: Record<string, unknown>, req?: IncomingMessage): Record<string, unknown> {
  const now = Date.now();
  const includeObject = q.get('includeObject') ?? 'Metadata';
  // Kinds that place the name themselves (Events, as in Kubernetes) get no leading Name column.
  const ownName = kind.columns.some((c) => c.format === 'name');
  const columnDefinitions = [
    ...(ownName ? [] : [{ name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 }]),
    ...kind.columns.map((c) => ({ name: c.name, type: c.type === 'date' ? 'string' : c.type, format: c.format ?? (c.type === 'date' ? 'date' : ''), description: c.description, priority: c.priority })),
  ];
  const rows = objs.map((o) => {
    const row: Record<string, unknown> = {
      cells: [...(ownName ? [] : [o.metadata?.name ?? '']), ...kind.columns.map((c) => c.cell(o, now))],
    };
    if (includeObject === 'Object') row.object = o;
    else if (includeObject !== 'None') {
      row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata ?? {} };
    }
    return row;
  });
  const meta = Object.fromEntries(Object.entries(listMeta).filter(([, v]) => v !== undefined));
  return { kind: 'Table', apiVersion: tableApiVersion(req), metadata: meta, columnDefinitions, rows };
}
