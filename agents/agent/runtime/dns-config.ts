// A pod's /etc/resolv.conf and /etc/hosts, as the kubelet writes them, so
// ordinary programs in the pod resolve Service names ("web", "web.default")
// through the cluster DNS. dnsPolicy ClusterFirst (the default): the cluster
// DNS with the search path <ns>.svc.<zone> svc.<zone> <zone> and ndots:5;
// Default: the host's resolv.conf (no file of our own); None: only
// spec.dnsConfig. dnsConfig's nameservers, searches and options are added
// in every case, as Kubernetes does. hostNetwork pods keep the host's files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ClusterDns {
  /** The cluster DNS server's address (IPv4; port 53, as resolv.conf cannot name another). */
  server: string;
  /** The cluster domain (cluster.local). */
  domain: string;
}

interface PodDnsView {
  metadata: { name: string; namespace?: string };
  spec?: {
    dnsPolicy?: string;
    hostNetwork?: boolean;
    hostname?: string;
    subdomain?: string;
    dnsConfig?: { nameservers?: string[]; searches?: string[]; options?: { name: string; value?: string }[] };
    hostAliases?: { ip: string; hostnames?: string[] }[];
  };
}

/** The resolv.conf text for a pod, or undefined when it keeps the host's. */
export function resolvConf(pod: PodDnsView, dns: ClusterDns | undefined): string | undefined {
  const spec = pod.spec ?? {};
  const policy = spec.dnsPolicy ?? 'ClusterFirst';
  const cfg = spec.dnsConfig ?? {};
  let nameservers: string[] = [];
  let searches: string[] = [];
  const options = new Map<string, string | undefined>();
  if ((policy === 'ClusterFirst' && !spec.hostNetwork) || policy === 'ClusterFirstWithHostNet') {
    // Without a cluster DNS the pod resolves as the node does (the kubelet without --cluster-dns).
    if (!dns) return undefined;
    const ns = pod.metadata.namespace ?? 'default';
    nameservers = [dns.server];
    searches = [`${ns}.svc.${dns.domain}`, `svc.${dns.domain}`, dns.domain];
    options.set('ndots', '5');
  } else if (policy === 'None') {
    // Only what dnsConfig says.
  } else {
    // Default (or ClusterFirst with hostNetwork): the node's resolution.
    return undefined;
  }
  nameservers = [...new Set([...nameservers, ...(cfg.nameservers ?? [])])].slice(0, 3);
  searches = [...new Set([...searches, ...(cfg.searches ?? [])])].slice(0, 32);
  for (const o of cfg.options ?? []) options.set(o.name, o.value);
  const lines = nameservers.map((n) => `nameserver ${n}`);
  if (searches.length) lines.push(`search ${searches.join(' ')}`);
  if (options.size) lines.push(`options ${[...options].map(([k, v]) => (v === undefined ? k : `${k}:${v}`)).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The pod's /etc/hosts: localhost, its own name(s) at its IP, and spec.hostAliases (the kubelet's managed hosts file). */
export function hostsFile(pod: PodDnsView, podIP: string, dns: ClusterDns | undefined): string {
  const spec = pod.spec ?? {};
  const host = spec.hostname || pod.metadata.name;
  const fqdn = spec.subdomain && dns ? `${host}.${spec.subdomain}.${pod.metadata.namespace ?? 'default'}.svc.${dns.domain}` : undefined;
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${podIP}\t${fqdn ? `${fqdn}\t` : ''}${host}`,
  ];
  const aliases = (spec.hostAliases ?? []).filter((a) => a.ip && a.hostnames?.length);
  if (aliases.length) {
    lines.push('', '# Entries added by HostAliases.');
    for (const a of aliases) lines.push(`${a.ip}\t${a.hostnames!.join('\t')}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes the pod's files under its directory and returns the bind mounts
 * that put them at /etc/resolv.conf and /etc/hosts (none for a pod that
 * keeps the host's).
 */
export function writePodDnsFiles(podDir: string, pod: PodDnsView, podIP: string, dns: ClusterDns | undefined): { src: string; dst: string; readOnly: boolean }[] {
  if (pod.spec?.hostNetwork) return [];
  const dir = join(podDir, 'etc');
  mkdirSync(dir, { recursive: true });
  const mounts: { src: string; dst: string; readOnly: boolean }[] = [];
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, hostsFile(pod, podIP, dns));
  mounts.push({ src: hosts, dst: '/etc/hosts', readOnly: false });
  const conf = resolvConf(pod, dns);
  if (conf !== undefined) {
    const file = join(dir, 'resolv.conf');
    writeFileSync(file, conf);
    mounts.push({ src: file, dst: '/etc/resolv.conf', readOnly: false });
  }
  return mounts;
}
