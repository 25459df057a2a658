// Pod volumes, mounted for real: each volume is prepared on the host under
// the pod's directory (emptyDir; configMap and secret files written as
// Kubernetes' atomic writer lays them out — the files in a timestamped
// directory, `..data` pointing at it, each key a link through `..data`;
// secrets on a tmpfs, never on disk; emptyDir `medium: Memory` a tmpfs),
// or found on the host (hostPath, a PersistentVolumeClaim's hostPath/local
// PV). Each container then runs in a private mount namespace (`unshare -m`)
// where every volumeMount is bind-mounted at its mountPath (subPath,
// readOnly honoured). The mount points themselves are created on the host
// (there is no container root file system), empty outside the namespace.
// Calling preparePodVolumes again (each periodic pod sync) rewrites the
// configMap, secret and downwardAPI volumes whose content changed, through
// the same atomic swap, so containers see the new files (not through a
// subPath mount, as in Kubernetes).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import type { Pod } from '../../informer/types.ts';
import { ContainerConfigError, fieldRefValue } from './env.ts';
import { parseQuantity } from '../../../api/schema/validate.ts';

export interface VolumeSources {
  configMap(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  secret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** The host directory of the PV a claim is bound to. */
  claimPath(namespace: string, claim: string): Promise<string>;
  /** A ServiceAccount's automountServiceAccountToken (undefined: unset, or no such account). */
  automount?(namespace: string, name: string): Promise<boolean | undefined>;
  /** A token for a serviceAccountToken projection, bound to the pod; undefined when the cluster issues none (the file is left out). */
  serviceAccountToken?(pod: Pod, projection: { audience?: string; expirationSeconds?: number; path: string }): Promise<string | undefined>;
}

/** Where in-cluster clients look for the API's CA bundle, namespace and token. */
export const SERVICE_ACCOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const SERVICE_ACCOUNT_VOLUME = 'kube-api-access-flotilla';
/** The lifetime Kubernetes' admission gives the kube-api-access token (1 h and 7 s). */
const SERVICE_ACCOUNT_TOKEN_SECONDS = 3607;

/**
 * The pod as Kubernetes' ServiceAccount admission would have left it: a
 * projected volume with `token` (a TokenRequest bound to the pod, for the
 * API's audience), `ca.crt` (the namespace's kube-root-ca.crt ConfigMap) and
 * `namespace`, mounted read-only at SERVICE_ACCOUNT_PATH in every container
 * that mounts nothing there — unless automountServiceAccountToken is false on
 * the pod or (when the pod does not say) on its ServiceAccount, or the spec
 * already carries such a volume.
 */
export async function withServiceAccountVolume(pod: Pod, src: VolumeSources): Promise<Pod> {
  const spec = pod.spec as (Pod['spec'] & { volumes?: Volume[]; automountServiceAccountToken?: boolean; serviceAccountName?: string }) | undefined;
  if (!spec) return pod;
  if (spec.automountServiceAccountToken === false) return pod;
  if ((spec.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-'))) return pod;
  if (spec.automountServiceAccountToken === undefined && src.automount) {
    const sa = await src.automount(pod.metadata.namespace ?? 'default', spec.serviceAccountName || 'default');
    if (sa === false) return pod;
  }
  const volume: Volume = {
    name: SERVICE_ACCOUNT_VOLUME,
    projected: {
      defaultMode: 0o644,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: SERVICE_ACCOUNT_TOKEN_SECONDS } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
  type C = { volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] };
  const mount = (c: C): C => (c.volumeMounts ?? []).some((m) => normalize(m.mountPath) === SERVICE_ACCOUNT_PATH)
    ? c
    : { ...c, volumeMounts: [...(c.volumeMounts ?? []), { name: SERVICE_ACCOUNT_VOLUME, mountPath: SERVICE_ACCOUNT_PATH, readOnly: true }] };
  return {
    ...pod,
    spec: {
      ...spec,
      volumes: [...(spec.volumes ?? []), volume],
      containers: spec.containers.map((c) => mount(c as C)),
      ...(spec.initContainers ? { initContainers: (spec.initContainers as C[]).map(mount) } : {}),
    } as unknown as Pod['spec'],
  };
}

export interface Mount {
  src: string;
  dst: string;
  readOnly: boolean;
}

type Volume = Record<string, any> & { name: string };

/** Mounts a tmpfs at dir (once). */
/** An emptyDir's sizeLimit (a quantity such as "1Mi") in bytes; none or unparsable: unlimited (validation refuses a malformed one). */
function memoryLimit(q: unknown): number | undefined {
  if (typeof q !== 'string' && typeof q !== 'number') return undefined;
  let n: number;
  try {
    n = Math.ceil(parseQuantity(q));
  } catch {
    return undefined;
  }
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function tmpfs(dir: string, sizeBytes?: number): void {
  mkdirSync(dir, { recursive: true });
  if (readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir)) return;
  execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0755${sizeBytes ? `,size=${sizeBytes}` : ''}`, 'tmpfs', dir]);
}

/** Kubernetes' atomic writer: files in a new timestamped dir, then `..data` swapped to it by rename. */
export function writeAtomic(dir: string, files: Record<string, { data: string | Buffer; mode: number }>): void {
  mkdirSync(dir, { recursive: true });
  const ts = join(dir, `..${new Date().toISOString().replace(/[:.]/g, '_')}`);
  for (const [path, f] of Object.entries(files)) {
    const p = join(ts, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.data);
    chmodSync(p, f.mode);
  }
  mkdirSync(ts, { recursive: true });
  let previous: string | undefined;
  try {
    previous = readlinkSync(join(dir, '..data'));
  } catch {
    /* the first write */
  }
  const tmp = join(dir, '..data_tmp');
  rmSync(tmp, { force: true });
  symlinkSync(ts.slice(dir.length + 1), tmp);
  renameSync(tmp, join(dir, '..data'));
  const tops = new Set(Object.keys(files).map((p) => p.split('/')[0]));
  for (const top of tops) {
    const link = join(dir, top);
    if (!existsSync(link)) symlinkSync(join('..data', top), link);
  }
  // Links of keys that are gone, and the previous data, go after the swap.
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('..') && !tops.has(name)) rmSync(join(dir, name), { force: true, recursive: true });
  }
  if (previous && previous !== ts.slice(dir.length + 1)) rmSync(join(dir, previous), { recursive: true, force: true });
}

/** Whether a volume directory already holds exactly these files (through ..data). */
function holds(dir: string, files: Record<string, { data: string | Buffer; mode: number }>): boolean {
  try {
    const cur = join(dir, readlinkSync(join(dir, '..data')));
    const want = Object.keys(files);
    const count = (d: string): number => readdirSync(d, { withFileTypes: true }).reduce((a, e) => a + (e.isDirectory() ? count(join(d, e.name)) : 1), 0);
    if (count(cur) !== want.length) return false;
    return want.every((p) => Buffer.compare(readFileSync(join(cur, p)), Buffer.from(files[p].data)) === 0 && (statSync(join(cur, p)).mode & 0o777) === files[p].mode);
  } catch {
    return false;
  }
}

function projected(data: Record<string, string | Buffer>, items: { key: string; path: string; mode?: number }[] | undefined, defaultMode: number, what: string, optional: boolean): Record<string, { data: string | Buffer; mode: number }> {
  const out: Record<string, { data: string | Buffer; mode: number }> = {};
  if (!items?.length) {
    for (const [k, v] of Object.entries(data)) out[k] = { data: v, mode: defaultMode };
    return out;
  }
  for (const it of items) {
    if (!(it.key in data)) {
      if (optional) continue;
      throw new ContainerConfigError(`configuration key "${it.key}" not found in ${what}`);
    }
    out[normalize(it.path)] = { data: data[it.key], mode: it.mode ?? defaultMode };
  }
  return out;
}

/**
 * Prepares every volume of the pod on the host; returns the host directory
 * of each by name. A source that is missing (and not optional) or a kind of
 * volume this agent does not support is a ContainerConfigError.
 */
export async function preparePodVolumes(pod: Pod, podDir: string, src: VolumeSources): Promise<Map<string, string>> {
  const ns = pod.metadata.namespace ?? 'default';
  const out = new Map<string, string>();
  for (const v of ((pod.spec as { volumes?: Volume[] } | undefined)?.volumes ?? [])) {
    const dir = join(podDir, 'volumes', v.name);
    if (v.emptyDir) {
      if (v.emptyDir.medium === 'Memory') tmpfs(dir, memoryLimit(v.emptyDir.sizeLimit));
      else mkdirSync(dir, { recursive: true });
      out.set(v.name, dir);
    } else if (v.configMap) {
      const data = await src.configMap(ns, v.configMap.name);
      if (!data && !v.configMap.optional) throw new ContainerConfigError(`MountVolume.SetUp failed for volume "${v.name}" : configmap "${v.configMap.name}" not found`);
      const files = projected(data ?? {}, v.configMap.items, v.configMap.defaultMode ?? 0o644, `ConfigMap ${ns}/${v.configMap.name}`, !!v.configMap.optional);
      if (!holds(dir, files)) writeAtomic(dir, files);
      out.set(v.name, dir);
    } else if (v.secret) {
      const data = await src.secret(ns, v.secret.secretName);
      if (!data && !v.secret.optional) throw new ContainerConfigError(`MountVolume.SetUp failed for volume "${v.name}" : secret "${v.secret.secretName}" not found`);
      tmpfs(dir);
      const files = projected(data ?? {}, v.secret.items, v.secret.defaultMode ?? 0o644, `Secret ${ns}/${v.secret.secretName}`, !!v.secret.optional);
      if (!holds(dir, files)) writeAtomic(dir, files);
      out.set(v.name, dir);
    } else if (v.downwardAPI) {
      const files: Record<string, { data: string; mode: number }> = {};
      for (const it of v.downwardAPI.items ?? []) {
        if (!it.fieldRef) throw new ContainerConfigError(`volume "${v.name}": only fieldRef items of downwardAPI volumes are supported`);
        files[normalize(it.path)] = { data: fieldRefValue(pod, it.fieldRef.fieldPath), mode: it.mode ?? v.downwardAPI.defaultMode ?? 0o644 };
      }
      if (!holds(dir, files)) writeAtomic(dir, files);
      out.set(v.name, dir);
    } else if (v.projected) {
      // Every source's files in one directory (on a tmpfs when a secret is among them).
      const files: Record<string, { data: string | Buffer; mode: number }> = {};
      const mode = v.projected.defaultMode ?? 0o644;
      let secret = false;
      for (const source of (v.projected.sources ?? []) as Record<string, any>[]) {
        if (source.configMap) {
          const data = await src.configMap(ns, source.configMap.name);
          if (!data && !source.configMap.optional) throw new ContainerConfigError(`MountVolume.SetUp failed for volume "${v.name}" : configmap "${source.configMap.name}" not found`);
          Object.assign(files, projected(data ?? {}, source.configMap.items, mode, `ConfigMap ${ns}/${source.configMap.name}`, !!source.configMap.optional));
        } else if (source.secret) {
          secret = true;
          const data = await src.secret(ns, source.secret.name);
          if (!data && !source.secret.optional) throw new ContainerConfigError(`MountVolume.SetUp failed for volume "${v.name}" : secret "${source.secret.name}" not found`);
          Object.assign(files, projected(data ?? {}, source.secret.items, mode, `Secret ${ns}/${source.secret.name}`, !!source.secret.optional));
        } else if (source.downwardAPI) {
          for (const it of source.downwardAPI.items ?? []) {
            if (!it.fieldRef) throw new ContainerConfigError(`volume "${v.name}": only fieldRef items of downwardAPI projections are supported`);
            files[normalize(it.path)] = { data: fieldRefValue(pod, it.fieldRef.fieldPath), mode: it.mode ?? mode };
          }
        } else if (source.serviceAccountToken) {
          // A credential: the volume goes on a tmpfs. No token (the cluster issues none): the file is left out.
          const token = await src.serviceAccountToken?.(pod, source.serviceAccountToken);
          if (token !== undefined) {
            secret = true;
            files[normalize(source.serviceAccountToken.path)] = { data: token, mode };
          }
        } else {
          throw new ContainerConfigError(`volume "${v.name}": projected source ${Object.keys(source)[0] ?? '(empty)'} is not supported by this node agent`);
        }
      }
      if (secret) tmpfs(dir);
      if (!holds(dir, files)) writeAtomic(dir, files);
      out.set(v.name, dir);
    } else if (v.hostPath) {
      const type = v.hostPath.type ?? '';
      if (type === 'DirectoryOrCreate') mkdirSync(v.hostPath.path, { recursive: true });
      else if (type === 'FileOrCreate' && !existsSync(v.hostPath.path)) writeFileSync(v.hostPath.path, '');
      else if ((type === 'Directory' || type === 'File') && !existsSync(v.hostPath.path)) throw new ContainerConfigError(`MountVolume.SetUp failed for volume "${v.name}" : hostPath type check failed: ${v.hostPath.path} does not exist`);
      out.set(v.name, v.hostPath.path);
    } else if (v.persistentVolumeClaim) {
      out.set(v.name, await src.claimPath(ns, v.persistentVolumeClaim.claimName));
    } else {
      const kind = Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
      throw new ContainerConfigError(`volume "${v.name}": ${kind} volumes are not supported by this node agent`);
    }
  }
  return out;
}

/** The bind mounts of a container (its volumeMounts resolved against the prepared volumes). */
export function containerMounts(c: { volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[] }, volumes: Map<string, string>): Mount[] {
  return (c.volumeMounts ?? []).map((m) => {
    const base = volumes.get(m.name);
    if (!base) throw new ContainerConfigError(`volumeMount "${m.name}" names no volume of the pod`);
    if (m.subPath && (m.subPath.startsWith('/') || m.subPath.split('/').includes('..'))) throw new ContainerConfigError(`subPath "${m.subPath}" must be a relative path without ".."`);
    const src = m.subPath ? join(base, m.subPath) : base;
    // Kubernetes creates a missing subPath as a directory.
    if (m.subPath && !existsSync(src)) mkdirSync(src, { recursive: true });
    return { src, dst: m.mountPath, readOnly: !!m.readOnly };
  });
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Shell lines that make the mounts inside a fresh mount namespace (files bind onto files, directories onto directories). */
export function mountScript(mounts: Mount[]): string {
  const lines = ['mount --make-rprivate / || exit 125'];
  for (const m of mounts) {
    const isFile = existsSync(m.src) && !statSync(m.src).isDirectory();
    lines.push(isFile ? `mkdir -p ${q(dirname(m.dst))} && { [ -e ${q(m.dst)} ] || : > ${q(m.dst)}; } || exit 125` : `mkdir -p ${q(m.dst)} || exit 125`);
    lines.push(`mount --bind ${q(m.src)} ${q(m.dst)} || exit 125`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(m.dst)} || exit 125`);
  }
  return lines.join('\n');
}

/** Unmounts the pod's tmpfs volumes and removes its volume directories (not hostPath or PV data). */
export function cleanupPodVolumes(podDir: string): void {
  const vols = join(podDir, 'volumes');
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const mnt = line.split(' ')[1];
    if (mnt?.startsWith(`${vols}/`)) {
      try {
        execFileSync('umount', ['-l', mnt]);
      } catch {
        /* already gone */
      }
    }
  }
  rmSync(vols, { recursive: true, force: true });
}

/** Bytes a directory tree takes on disk (allocated blocks, as `du`); what cannot be read counts as nothing. */
export function diskUsage(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      total += Number(st.blocks) * 512;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return total;
}

/**
 * The first disk-backed emptyDir of the pod over its sizeLimit, as the
 * kubelet's eviction manager finds it (its message), or undefined. A Memory
 * emptyDir needs no check: its tmpfs is that size.
 */
export function emptyDirOverLimit(pod: Pod, volumes: ReadonlyMap<string, string>): string | undefined {
  for (const v of ((pod.spec as { volumes?: Volume[] } | undefined)?.volumes ?? [])) {
    if (!v.emptyDir || v.emptyDir.medium === 'Memory' || v.emptyDir.sizeLimit === undefined) continue;
    const limit = memoryLimit(v.emptyDir.sizeLimit);
    const dir = volumes.get(v.name);
    if (limit === undefined || !dir) continue;
    if (diskUsage(dir) > limit) return `Usage of EmptyDir volume "${v.name}" exceeds the limit "${String(v.emptyDir.sizeLimit)}". `;
  }
  return undefined;
}
