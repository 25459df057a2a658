// The root CA publisher (Kubernetes' root-ca-cert-publisher): every Active
// namespace has the ConfigMap "kube-root-ca.crt" whose "ca.crt" is the CA
// bundle clients in pods use to verify the API servers; changed or deleted,
// it is put back. Flotilla's API serves plain HTTP for now, so the bundle is
// whatever --root-ca-file gives, empty without it (see README).
import { readFileSync } from 'node:fs';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';

const CONFIG_MAPS = resolveKind('configmaps')!;

export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';
export const ROOT_CA_KEY = 'ca.crt';
const DESCRIPTION = 'Contains a CA bundle that can be used to verify the API servers when using internal endpoints such as the internal service IP or kubernetes.default.svc. Empty while the Flotilla API serves plain HTTP.';

type ConfigMap = KubeObject & { data?: Record<string, string> };

/** The bundle to publish: the file's PEM text, or "" when no file is configured. */
export function readRootCA(file: string): string {
  if (!file) return '';
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--root-ca-file ${file}: ${(e as Error).message}`);
  }
}

export class RootCAPublisher extends QueueController {
  private readonly namespaces = this.ctx.informers.informer<KubeObject>('namespaces');
  private readonly configMaps = this.ctx.informers.informer<ConfigMap>('configmaps');
  private readonly ca: string;

  constructor(ctx: ControllerContext) {
    super(ctx, 'root-ca-cert-publisher');
    this.ca = readRootCA(ctx.config.rootCAFile);
    this.handle(this.namespaces, { onAdd: (ns) => this.enqueue(ns), onUpdate: (_o, ns) => this.enqueue(ns) });
    const mine = (cm: ConfigMap) => {
      if (cm.metadata?.name === ROOT_CA_CONFIGMAP) this.enqueue(cm.metadata.namespace ?? '');
    };
    this.handle(this.configMaps, { onUpdate: (_o, cm) => mine(cm), onDelete: mine });
  }

  protected async reconcile(ns: string): Promise<void> {
    if (!ns) return;
    const namespace = this.namespaces.get('', ns);
    if (!namespace || namespace.metadata?.deletionTimestamp) return;
    const cur = this.configMaps.get(ns, ROOT_CA_CONFIGMAP);
    const data = { [ROOT_CA_KEY]: this.ca };
    try {
      if (!cur) {
        await this.ctx.client.create(resourcePath(CONFIG_MAPS, ns), {
          apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ROOT_CA_CONFIGMAP, namespace: ns, annotations: { 'kubernetes.io/description': DESCRIPTION } }, data,
        });
        return;
      }
      if (JSON.stringify(cur.data ?? {}) === JSON.stringify(data)) return;
      // Someone changed it: only our key is put back, with the cached version as precondition.
      await this.ctx.client.update(resourcePath(CONFIG_MAPS, ns, ROOT_CA_CONFIGMAP), { ...cur, data });
    } catch (e) {
      if (e instanceof ApiClientError && (e.code === 409 || e.code === 403 || e.code === 404)) {
        // A conflict means our cache is behind: the update event brings us back.
        if (e.code === 409 && cur) this.enqueueAfter(ns, 500);
        return;
      }
      throw e;
    }
  }
}
