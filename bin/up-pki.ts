// The PKI of a `flotilla up` cluster, in <dir>/pki: made once by the first
// `up` and reused by every later one on the same directory (agents/pki never
// overwrites a file; an existing CA is never made again). One CA; a serving
// certificate per API server; a client certificate and a kubeconfig per
// component identity, each of which the RBAC bootstrap policy (or the Node
// authorizer) gives only its own rights; and the admin's, which `up` writes
// as <dir>/kubeconfig.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LeafSpec, ensureCA, ensureLeaf, ensurePeerCert, fileNameFor, pairPaths } from '../agents/pki/pki.ts';
import { kubeconfigYaml } from '../agents/client/kubeconfig.ts';

/**
 * The ClusterIP of the in-cluster kubernetes Service: the first address of the
 * servers' default --service-cluster-ip-range (127.1.0.0/16), which that
 * Service is given, as in Kubernetes. test/up-secure.test.ts checks the two agree.
 */
export const KUBERNETES_SERVICE_IP = '127.1.0.1';

/** The names a serving certificate covers besides its listen addresses (the in-cluster Service's, as kubeadm's). */
const SERVICE_NAMES = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

/** The admin: in system:masters, as kubeadm's kubernetes-admin was. */
export const ADMIN_USER = 'flotilla-admin';
/** One process speaks for every hollow node (see README: "Hollow nodes"). */
export const HOLLOW_USER = 'system:flotilla-hollow-nodes';

export interface UpPki {
  dir: string;
  ca: string;
  /** Serving certificate and key of each server, by member id. */
  servers: Map<string, { cert: string; key: string }>;
  /** The kubeconfig of each identity, by component key (controllers, scheduler, dns, ingress, hollow, node:<name>, admin). */
  kubeconfigs: Map<string, string>;
  /** The admin's client pair (for `up`'s own checks). */
  admin: { cert: string; key: string };
  /** Each server's Raft peer certificate (CN flotilla-member-<id>), by member id. */
  peers: Map<string, { cert: string; key: string }>;
  /** The identity the servers present to node agents (kube-apiserver-kubelet-client, the only user the agents' endpoints take). */
  agentClient: { cert: string; key: string };
  /** Each process node agent's pair: serving its endpoint (its address and name) and its client identity, by node name. */
  nodes: Map<string, { cert: string; key: string }>;
}

/** The user the node agents' endpoints accept (agents/agent/endpoint-auth.ts' default). */
export const AGENT_CLIENT_USER = 'kube-apiserver-kubelet-client';

export interface UpPkiOptions {
  dir: string;
  /** https:// URL of the stable (balanced) API address; the kubeconfigs name it. */
  server: string;
  /** The servers: id and the host they listen on. */
  members: { id: string; host: string }[];
  /** Hosts the balancer answers on. */
  balancerHosts: string[];
  /** Process node agents: name and the loopback address each serves on. */
  nodes: { name: string; address: string }[];
  hollow: boolean;
  controllers: boolean;
  schedulers: boolean;
  dns: boolean;
  ingress: boolean;
}

/** Makes what is missing of the cluster's PKI and writes a kubeconfig per identity; returns where everything is. */
export async function ensureUpPki(o: UpPkiOptions): Promise<UpPki> {
  const dir = o.dir;
  const { ca } = await ensureCA(dir, 'flotilla-ca');
  const caFile = pairPaths(dir, 'ca').cert;
  const servers = new Map<string, { cert: string; key: string }>();
  for (const m of o.members) {
    // Its address, the balancer's, loopback and the in-cluster kubernetes Service's ClusterIP (up runs the servers with the default range).
    const hosts = [...new Set([m.host, ...o.balancerHosts, '127.0.0.1', KUBERNETES_SERVICE_IP])];
    const name = `apiserver-${m.id}`;
    // serverAuth and clientAuth: a server is also a client of the others (forwarded membership changes).
    await ensureLeaf(dir, name, ca, {
      commonName: `system:flotilla-server:${m.id}`, usages: ['server', 'client'],
      ips: hosts.filter((h) => /^[\d.]+$|:/.test(h)), dnsNames: [...SERVICE_NAMES, ...hosts.filter((h) => !/^[\d.]+$|:/.test(h))],
    });
    servers.set(m.id, pairPaths(dir, name));
  }
  const identities: [string, LeafSpec][] = [[ 'admin', { commonName: ADMIN_USER, organizations: ['system:masters'], usages: ['client'] }]];
  if (o.controllers) identities.push(['controllers', { commonName: 'system:kube-controller-manager', usages: ['client'] }]);
  if (o.schedulers) identities.push(['scheduler', { commonName: 'system:kube-scheduler', usages: ['client'] }]);
  if (o.dns) identities.push(['dns', { commonName: 'system:flotilla-dns', usages: ['client'] }]);
  if (o.ingress) identities.push(['ingress', { commonName: 'system:flotilla-ingress', usages: ['client'] }]);
  if (o.hollow) identities.push(['hollow', { commonName: HOLLOW_USER, organizations: ['system:masters'], usages: ['client'] }]);
  // A node's pair is also its endpoint's serving certificate (the API server checks it against the CA when it proxies logs and exec).
  for (const n of o.nodes) identities.push([`node:${n.name}`, { commonName: `system:node:${n.name}`, organizations: ['system:nodes'], usages: ['server', 'client'], ips: [n.address], dnsNames: [n.name] }]);
  const kubeconfigs = new Map<string, string>();
  let admin = { cert: '', key: '' };
  for (const [key, spec] of identities) {
    const name = fileNameFor(key === 'admin' ? 'admin' : spec.commonName);
    await ensureLeaf(dir, name, ca, spec);
    const p = pairPaths(dir, name);
    if (key === 'admin') admin = p;
    const file = join(dir, `${name}.kubeconfig`);
    writeFileSync(file, kubeconfigYaml({ server: o.server, ca: caFile, cert: p.cert, key: p.key, user: spec.commonName }), { mode: 0o600 });
    kubeconfigs.set(key, file);
  }
  const peers = new Map<string, { cert: string; key: string }>();
  for (const m of o.members) peers.set(m.id, (await ensurePeerCert(dir, ca, m.id)).paths);
  await ensureLeaf(dir, fileNameFor(AGENT_CLIENT_USER), ca, { commonName: AGENT_CLIENT_USER, usages: ['client'] });
  const nodes = new Map(o.nodes.map((n) => [n.name, pairPaths(dir, fileNameFor(`system:node:${n.name}`))]));
  return { dir, ca: caFile, servers, kubeconfigs, admin, peers, agentClient: pairPaths(dir, fileNameFor(AGENT_CLIENT_USER)), nodes };
}
