// networking.k8s.io/v1: Ingress and IngressClass, with the validation rules
// of pkg/apis/networking/validation (hosts, path types, backends, TLS).

import { atomic, int, obj, oneOf, str, strings } from '../schema/dsl.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import {
  child, forbidden, immutable, index, invalid, invalidEach, isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidIP, isValidPortName,
  isValidPortNum, notSupported, required,
} from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, entries, list, rec } from './common.ts';

const N = (n: string) => `io.k8s.api.networking.v1.${n}`;

export const PATH_TYPES = ['Exact', 'Prefix', 'ImplementationSpecific'] as const;
/** The annotation that makes an IngressClass the default for Ingresses without a class. */
export const DEFAULT_INGRESS_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

const TypedLocalObjectReference = obj({ apiGroup: str(), kind: str(), name: str() }, { name: 'io.k8s.api.core.v1.TypedLocalObjectReference', required: ['kind', 'name'] });
const ServiceBackendPort = obj({ name: str(), number: int() }, { name: N('ServiceBackendPort') });
const IngressBackend = obj({
  service: obj({ name: str(), port: ServiceBackendPort }, { name: N('IngressServiceBackend'), required: ['name'] }),
  resource: TypedLocalObjectReference,
}, { name: N('IngressBackend') });
const LB_INGRESS = obj({
  ip: str(), hostname: str(),
  ports: atomic(obj({ port: int(), protocol: oneOf('TCP', 'UDP', 'SCTP'), error: str() }, { name: N('IngressPortStatus'), required: ['port', 'protocol'] })),
}, { name: N('IngressLoadBalancerIngress') });

function validateBackend(b: unknown, path: string): Cause[] {
  const be = rec(b);
  if (!be) return [];
  const out: Cause[] = [];
  const svc = rec(be.service);
  const res = rec(be.resource);
  if (svc && res) return [invalid(path, '', 'cannot set both resource and service backends')];
  if (!svc && !res) return [invalid(path, '', 'resource or service backend is required')];
  if (svc) {
    const p = child(path, 'service');
    if (!svc.name) out.push(required(child(p, 'name')));
    else out.push(...invalidEach(child(p, 'name'), svc.name, isDNS1123Label(String(svc.name))));
    const port = rec(svc.port);
    const pp = child(p, 'port');
    if (!port || (!port.name && !port.number)) out.push(invalid(pp, '', 'port name or number is required'));
    else if (port.name && port.number) out.push(invalid(pp, '', 'cannot set both port name & port number'));
    else if (port.name) out.push(...invalidEach(child(pp, 'name'), port.name, isValidPortName(String(port.name))));
    else if (typeof port.number === 'number') out.push(...invalidEach(child(pp, 'number'), port.number, isValidPortNum(port.number)));
  }
  if (res && !res.kind) out.push(required(child(path, 'resource.kind')));
  if (res && !res.name) out.push(required(child(path, 'resource.name')));
  return out;
}

/** A host: a DNS subdomain, optionally with one leading "*." wildcard label; never an IP. */
function validateHost(host: string, path: string): Cause[] {
  if (isValidIP(host)) return [invalid(path, host, 'must be a DNS name, not an IP address')];
  if (host.startsWith('*.')) {
    const errs = isDNS1123Subdomain(host.slice(2));
    return errs.length ? [invalid(path, host, `a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)] : [];
  }
  return invalidEach(path, host, isDNS1123Subdomain(host));
}

function validateIngressSpec(spec: Obj): Cause[] {
  const out: Cause[] = [];
  if (!rec(spec.defaultBackend) && !list(spec.rules).length) out.push(invalid('spec', spec, 'either `defaultBackend` or `rules` must be specified'));
  if (spec.defaultBackend) out.push(...validateBackend(spec.defaultBackend, 'spec.defaultBackend'));
  if (spec.ingressClassName) out.push(...invalidEach('spec.ingressClassName', spec.ingressClassName, isDNS1123Subdomain(String(spec.ingressClassName))));
  for (const [rule, i] of entries(spec.rules)) {
    const rp = index('spec.rules', i);
    if (rule.host) out.push(...validateHost(String(rule.host), child(rp, 'host')));
    const http = rec(rule.http);
    if (!http) continue;
    const paths = list(http.paths);
    if (!paths.length) out.push(required(child(rp, 'http.paths')));
    for (const [p, j] of entries(http.paths)) {
      const pp = index(child(rp, 'http.paths'), j);
      if (!p.pathType) out.push(required(child(pp, 'pathType'), 'pathType must be specified'));
      else if (!PATH_TYPES.includes(p.pathType)) out.push(notSupported(child(pp, 'pathType'), p.pathType, PATH_TYPES));
      if (p.pathType === 'Exact' || p.pathType === 'Prefix') {
        const path = String(p.path ?? '');
        if (!path.startsWith('/')) out.push(invalid(child(pp, 'path'), p.path ?? '', 'must be an absolute path'));
        else if (/\/\/|\/\.\.?(\/|$)/.test(path)) out.push(invalid(child(pp, 'path'), path, "must not contain '//', '/./' or '/../'"));
      } else if (p.path !== undefined && !String(p.path).startsWith('/')) {
        out.push(invalid(child(pp, 'path'), p.path, 'must be an absolute path'));
      }
      if (!rec(p.backend)) out.push(required(child(pp, 'backend')));
      else out.push(...validateBackend(p.backend, child(pp, 'backend')));
    }
  }
  for (const [tls, i] of entries(spec.tls)) {
    const tp = index('spec.tls', i);
    (list(tls.hosts) as unknown as string[]).forEach((h, j) => out.push(...validateHost(String(h), index(child(tp, 'hosts'), j))));
    if (tls.secretName) out.push(...invalidEach(child(tp, 'secretName'), tls.secretName, isDNS1123Subdomain(String(tls.secretName))));
  }
  return out;
}

const hostsOf = (ing: Obj) => {
  const hosts = list(ing.spec?.rules).map((r) => r.host).filter(Boolean) as string[];
  if (!hosts.length) return '*';
  return hosts.length > 4 ? `${hosts.slice(0, 4).join(',')} + ${hosts.length - 4} more...` : hosts.join(',');
};
const addressOf = (o: Obj) => list(o.status?.loadBalancer?.ingress).map((i) => i.ip || i.hostname).filter(Boolean).join(',');

export const ingress = defineKind({
  group: 'networking.k8s.io', version: 'v1', kind: 'Ingress', plural: 'ingresses', shortNames: ['ing'], subresources: ['status'],
  description: 'Ingress is a collection of rules that allow inbound connections to reach the endpoints defined by a backend.',
  fields: {
    spec: obj({
      ingressClassName: str(),
      defaultBackend: IngressBackend,
      tls: atomic(obj({ hosts: strings(), secretName: str() }, { name: N('IngressTLS') })),
      rules: atomic(obj({
        host: str(),
        http: obj({
          paths: atomic(obj({ path: str(), pathType: oneOf(...PATH_TYPES), backend: IngressBackend }, { name: N('HTTPIngressPath'), required: ['pathType', 'backend'] })),
        }, { name: N('HTTPIngressRuleValue'), required: ['paths'] }),
      }, { name: N('IngressRule') })),
    }, { name: N('IngressSpec') }),
    status: obj({ loadBalancer: obj({ ingress: atomic(LB_INGRESS) }, { name: N('IngressLoadBalancerStatus') }) }, { name: N('IngressStatus') }),
  },
  validate(ing) {
    return validateIngressSpec(rec(ing.spec) ?? {});
  },
  columns: [
    column('Class', (i) => i.spec?.ingressClassName ?? '<none>', { description: 'The name of the IngressClass resource' }),
    column('Hosts', hostsOf, { description: 'The hosts the Ingress routes' }),
    column('Address', addressOf, { description: 'The address the Ingress is served on' }),
    column('Ports', (i) => (list(i.spec?.tls).length ? '80, 443' : '80'), { description: 'The ports the Ingress is served on' }),
    ageColumn,
  ],
});

export const ingressClass = defineKind({
  group: 'networking.k8s.io', version: 'v1', kind: 'IngressClass', plural: 'ingressclasses', namespaced: false,
  description: 'IngressClass represents the class of the Ingress, referenced by the Ingress Spec.',
  fields: {
    spec: obj({
      controller: str(),
      parameters: obj({ apiGroup: str(), kind: str(), name: str(), namespace: str(), scope: oneOf('Cluster', 'Namespace') }, { name: N('IngressClassParametersReference'), required: ['kind', 'name'] }),
    }, { name: N('IngressClassSpec') }),
  },
  validate(ic, old) {
    const spec: Obj = rec(ic.spec) ?? {};
    const out: Cause[] = [];
    if (!spec.controller) out.push(required('spec.controller'));
    else {
      const c = String(spec.controller);
      // A domain-prefixed path such as "example.com/ingress-controller" (validateIngressClassController).
      const slash = c.indexOf('/');
      if (slash < 0) out.push(invalid('spec.controller', c, "must be a domain-prefixed path (such as \"acme.io/foo\")"));
      else out.push(...invalidEach('spec.controller', c, isDNS1123Subdomain(c.slice(0, slash))));
      if (c.length > 250) out.push(invalid('spec.controller', c, 'must be no more than 250 characters'));
    }
    if (old && rec(old.spec)?.controller !== undefined && spec.controller !== rec(old.spec)?.controller) out.push(immutable('spec.controller', spec.controller));
    const params = rec(spec.parameters);
    if (params) {
      if (params.scope === 'Namespace' && !params.namespace) out.push(required('spec.parameters.namespace', '`parameters.scope` is set to "Namespace"'));
      if (params.scope !== 'Namespace' && params.namespace) out.push(forbidden('spec.parameters.namespace', '`parameters.scope` is set to "Cluster"'));
      if (params.apiGroup) out.push(...invalidEach('spec.parameters.apiGroup', params.apiGroup, isDNS1123Subdomain(String(params.apiGroup))));
      if (params.kind) out.push(...invalidEach('spec.parameters.kind', params.kind, isQualifiedName(String(params.kind))));
    }
    return out;
  },
  columns: [
    column('Controller', (c) => c.spec?.controller ?? '', { description: 'Controller that implements the IngressClass' }),
    column('Parameters', (c) => (c.spec?.parameters ? `${c.spec.parameters.kind}/${c.spec.parameters.name}` : '<none>'), { description: 'A reference to a resource with additional parameters' }),
    ageColumn,
  ],
});

export const NETWORKING_KINDS: KindDef[] = [ingress, ingressClass];
