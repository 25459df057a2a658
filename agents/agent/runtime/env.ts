// A container's environment, built as the kubelet builds it
// (kubelet_pods.go makeEnvironmentVariables): the Service variables of the
// pod's namespace first, then envFrom sources (with their prefix; keys that
// are not valid names are skipped), then env entries in order — each value
// $(VAR)-expanded against what is defined so far — with valueFrom reading
// ConfigMap and Secret keys through the API and the downward API from the pod.
// A missing non-optional source is a CreateContainerConfigError.
import { parseQuantity } from '../../../api/schema/validate.ts';
import type { Pod, Service } from '../../informer/types.ts';
import { expand } from './expand.ts';

export class ContainerConfigError extends Error {
  override name = 'ContainerConfigError';
}

export interface EnvSources {
  configMap(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Decoded values. */
  secret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Services visible to the pod (its namespace, plus default/kubernetes). */
  services(namespace: string): Promise<Service[]>;
  /** Node allocatable (limits default to it for resourceFieldRef), base units. */
  allocatable: Record<string, number>;
}

export interface EnvContainer {
  name: string;
  env?: { name: string; value?: string; valueFrom?: Record<string, any> }[];
  envFrom?: { prefix?: string; configMapRef?: { name: string; optional?: boolean }; secretRef?: { name: string; optional?: boolean } }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  [k: string]: unknown;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Kubernetes' service link variables (pkg/kubelet/envvars) for the Services given. */
export function serviceEnv(services: Service[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of services) {
    const ip = s.spec?.clusterIP;
    if (!ip || ip === 'None') continue;
    const ports = s.spec?.ports ?? [];
    if (!ports.length) continue;
    const name = s.metadata.name.toUpperCase().replace(/-/g, '_');
    out[`${name}_SERVICE_HOST`] = ip;
    out[`${name}_SERVICE_PORT`] = String(ports[0].port);
    for (const p of ports) if (p.name) out[`${name}_SERVICE_PORT_${p.name.toUpperCase().replace(/-/g, '_')}`] = String(p.port);
    const proto = (ports[0].protocol ?? 'TCP').toLowerCase();
    out[`${name}_PORT`] = `${proto}://${ip}:${ports[0].port}`;
    for (const p of ports) {
      const pr = (p.protocol ?? 'TCP').toLowerCase();
      const prefix = `${name}_PORT_${p.port}_${pr.toUpperCase()}`;
      out[prefix] = `${pr}://${ip}:${p.port}`;
      out[`${prefix}_PROTO`] = pr;
      out[`${prefix}_PORT`] = String(p.port);
      out[`${prefix}_ADDR`] = ip;
    }
  }
  return out;
}

/** The value of a downward-API fieldRef. */
export function fieldRefValue(pod: Pod, path: string): string {
  const m = pod.metadata;
  const sub = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(path);
  if (sub) return (sub[1] === 'labels' ? m.labels : m.annotations)?.[sub[2]] ?? '';
  switch (path) {
    case 'metadata.name': return m.name;
    case 'metadata.namespace': return m.namespace ?? '';
    case 'metadata.uid': return m.uid ?? '';
    case 'metadata.labels': return Object.entries(m.labels ?? {}).map(([k, v]) => `${k}="${v}"`).join('\n');
    case 'metadata.annotations': return Object.entries(m.annotations ?? {}).map(([k, v]) => `${k}="${v}"`).join('\n');
    case 'spec.nodeName': return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName': return String((pod.spec as Record<string, unknown>)?.serviceAccountName ?? '');
    case 'status.hostIP': return String(pod.status?.hostIP ?? '');
    case 'status.hostIPs': return String(pod.status?.hostIP ?? '');
    case 'status.podIP': return String(pod.status?.podIP ?? '');
    case 'status.podIPs': return String(pod.status?.podIP ?? '');
    default: throw new ContainerConfigError(`unsupported fieldRef fieldPath "${path}"`);
  }
}

/** A downward-API resourceFieldRef: the container's request/limit (limits default to node allocatable) over the divisor, rounded up. */
export function resourceFieldValue(c: EnvContainer, ref: { resource: string; divisor?: string | number }, allocatable: Record<string, number>): string {
  const [kind, res] = ref.resource.split('.', 2) as ['limits' | 'requests', string];
  if ((kind !== 'limits' && kind !== 'requests') || !res) throw new ContainerConfigError(`unsupported resourceFieldRef resource "${ref.resource}"`);
  const raw = c.resources?.[kind]?.[res] ?? (kind === 'requests' ? c.resources?.limits?.[res] : undefined);
  let v = raw !== undefined ? parseQuantity(raw) : kind === 'limits' ? allocatable[res] ?? 0 : 0;
  const divisor = ref.divisor !== undefined ? parseQuantity(ref.divisor) : 1;
  if (divisor <= 0) throw new ContainerConfigError(`invalid divisor for ${ref.resource}`);
  v = Math.ceil(v / divisor - 1e-9);
  return String(v);
}

/**
 * The container's Kubernetes environment (without the runtime's own
 * variables such as PATH and POD_IP, which the caller adds underneath).
 */
export async function containerEnv(pod: Pod, c: EnvContainer, src: EnvSources): Promise<Record<string, string>> {
  const ns = pod.metadata.namespace ?? 'default';
  const env: Record<string, string> = {};
  const enableLinks = (pod.spec as Record<string, unknown>)?.enableServiceLinks !== false;
  const services = (await src.services(ns)).filter((s) => enableLinks ? (s.metadata.namespace === ns || (s.metadata.namespace === 'default' && s.metadata.name === 'kubernetes')) : (s.metadata.namespace === 'default' && s.metadata.name === 'kubernetes'));
  Object.assign(env, serviceEnv(services));
  for (const from of c.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let data: Record<string, string> | undefined;
    if (from.configMapRef) {
      data = await src.configMap(ns, from.configMapRef.name);
      if (!data && !from.configMapRef.optional) throw new ContainerConfigError(`configmap "${from.configMapRef.name}" not found`);
    } else if (from.secretRef) {
      data = await src.secret(ns, from.secretRef.name);
      if (!data && !from.secretRef.optional) throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
    }
    for (const [k, v] of Object.entries(data ?? {})) if (ENV_NAME.test(prefix + k)) env[prefix + k] = v;
  }
  for (const e of c.env ?? []) {
    let value: string | undefined;
    const vf = e.valueFrom;
    if (vf?.configMapKeyRef) {
      const r = vf.configMapKeyRef;
      const data = await src.configMap(ns, r.name);
      if (!data) {
        if (r.optional) continue;
        throw new ContainerConfigError(`configmap "${r.name}" not found`);
      }
      if (!(r.key in data)) {
        if (r.optional) continue;
        throw new ContainerConfigError(`couldn't find key ${r.key} in ConfigMap ${ns}/${r.name}`);
      }
      value = data[r.key];
    } else if (vf?.secretKeyRef) {
      const r = vf.secretKeyRef;
      const data = await src.secret(ns, r.name);
      if (!data) {
        if (r.optional) continue;
        throw new ContainerConfigError(`secret "${r.name}" not found`);
      }
      if (!(r.key in data)) {
        if (r.optional) continue;
        throw new ContainerConfigError(`couldn't find key ${r.key} in Secret ${ns}/${r.name}`);
      }
      value = data[r.key];
    } else if (vf?.fieldRef) {
      value = fieldRefValue(pod, vf.fieldRef.fieldPath);
    } else if (vf?.resourceFieldRef) {
      value = resourceFieldValue(c, vf.resourceFieldRef, src.allocatable);
    } else {
      value = expand(e.value ?? '', (n) => env[n]);
    }
    env[e.name] = value;
  }
  return env;
}
