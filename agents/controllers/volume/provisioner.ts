// The local-path provisioner (flotilla.io/local-path): for each claim whose
// class names it and that the binder handed to it (the storage-provisioner
// annotation) — and, when binding waits for the first consumer, once the
// scheduler chose a node — makes a directory under --volume-dir and a
// hostPath volume pre-bound to the claim; the binder then completes the
// binding. Released volumes it provisioned with reclaim policy Delete lose
// their directory and are deleted.
//
// Like k3s' bundled local-path StorageClass, the leader makes sure a default
// class served by this provisioner exists (--default-storage-class, "" for
// none), so a claim without a class (a StatefulSet's volumeClaimTemplates as
// most manifests write them) is provisioned out of the box. It is created
// only when no class of that name and no other default class exists: a user
// who deletes it or prefers another default keeps that choice until restart.
import { mkdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { DEFAULT_CLASS_ANNOTATION, isDefaultStorageClass } from '../../../api/kinds/storage.ts';
import { ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, HOSTNAME_LABEL, LOCAL_PATH_PROVISIONER } from './annotations.ts';
import type { StorageClass } from './binder.ts';
import { type PersistentVolume, type PersistentVolumeClaim, claimClass } from './matching.ts';

const PVS = resolveKind('persistentvolumes')!;

const CLAIM = 'pvc:';
const DEFAULT_CLASS = 'default-class';
const STORAGE_CLASSES = resolveKind('storageclasses')!;
const VOLUME = 'pv:';

/** The name of the volume provisioned for a claim (Kubernetes': "pvc-" + the claim's uid). */
export const provisionedVolumeName = (c: PersistentVolumeClaim): string => `pvc-${c.metadata.uid}`;

/** Whether `dir` lies strictly inside `root` (a volume's path is only ever removed there). */
export function isInside(root: string, dir: string): boolean {
  const rel = relative(resolve(root), resolve(dir));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** The volume a claim gets: its size and modes, the class's policy and options, node affinity to the selected node. */
export function volumeForClaim(c: PersistentVolumeClaim, sc: StorageClass, dir: string): PersistentVolume {
  const node = c.metadata.annotations?.[ANN_SELECTED_NODE];
  const pv: PersistentVolume = {
    apiVersion: 'v1', kind: 'PersistentVolume',
    metadata: { name: provisionedVolumeName(c), annotations: { [ANN_PROVISIONED_BY]: sc.provisioner } },
    spec: {
      capacity: { storage: String(c.spec.resources?.requests?.storage) },
      accessModes: [...(c.spec.accessModes ?? [])],
      persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? 'Delete',
      storageClassName: sc.metadata.name,
      volumeMode: c.spec.volumeMode ?? 'Filesystem',
      claimRef: { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: c.metadata.namespace, name: c.metadata.name, uid: c.metadata.uid, resourceVersion: c.metadata.resourceVersion },
      hostPath: { path: dir, type: 'DirectoryOrCreate' },
    },
  };
  if (sc.mountOptions?.length) pv.spec.mountOptions = [...sc.mountOptions];
  if (node) {
    pv.spec.nodeAffinity = { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: HOSTNAME_LABEL, operator: 'In', values: [node] }] }] } };
  }
  return pv;
}

export class LocalPathProvisioner extends QueueController {
  private readonly volumes: Informer<PersistentVolume>;
  private readonly claims: Informer<PersistentVolumeClaim>;
  private readonly classes: Informer<StorageClass>;
  readonly root: string;

  constructor(ctx: ControllerContext, readonly provisioner = LOCAL_PATH_PROVISIONER) {
    super(ctx, 'local-path-provisioner');
    this.root = resolve(ctx.config.volumeDir);
    this.volumes = ctx.informers.informer<PersistentVolume>('persistentvolumes');
    this.claims = ctx.informers.informer<PersistentVolumeClaim>('persistentvolumeclaims');
    this.classes = ctx.informers.informer<StorageClass>('storageclasses');
    const claim = (c: PersistentVolumeClaim) => this.enqueue(`${CLAIM}${c.metadata.namespace}/${c.metadata.name}`);
    this.handle(this.claims, { onAdd: claim, onUpdate: (_o, c) => claim(c) });
    const volume = (v: PersistentVolume) => this.enqueue(`${VOLUME}${v.metadata.name}`);
    this.handle(this.volumes, { onAdd: volume, onUpdate: (_o, v) => volume(v) });
  }

  override async run(signal: AbortSignal): Promise<void> {
    if (this.ctx.config.defaultStorageClass) this.enqueue(DEFAULT_CLASS);
    await super.run(signal);
  }

  protected async reconcile(key: string): Promise<void> {
    if (key === DEFAULT_CLASS) return this.ensureDefaultClass(this.ctx.config.defaultStorageClass);
    if (key.startsWith(CLAIM)) {
      const [ns, name] = key.slice(CLAIM.length).split('/');
      const c = this.claims.get(ns, name);
      if (c) await this.provision(c);
    } else if (key.startsWith(VOLUME)) {
      const v = this.volumes.get('', key.slice(VOLUME.length));
      if (v) await this.deleteReleased(v);
    }
  }

  private async provision(c: PersistentVolumeClaim): Promise<void> {
    if (c.spec.volumeName || c.metadata.deletionTimestamp) return;
    if (c.metadata.annotations?.[ANN_STORAGE_PROVISIONER] !== this.provisioner) return;
    const sc = this.classes.get('', claimClass(c));
    if (!sc || sc.provisioner !== this.provisioner) return;
    if (sc.volumeBindingMode === 'WaitForFirstConsumer' && !c.metadata.annotations?.[ANN_SELECTED_NODE]) return;
    const name = provisionedVolumeName(c);
    if (this.volumes.get('', name)) return;
    const dir = join(this.root, name);
    this.recorder.event(c, 'Normal', 'Provisioning', `External provisioner is provisioning volume for claim "${c.metadata.namespace}/${c.metadata.name}"`);
    await mkdir(dir, { recursive: true, mode: 0o777 });
    try {
      await this.ctx.client.create(resourcePath(PVS), volumeForClaim(c, sc, dir));
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 409) return;
      this.recorder.event(c, 'Warning', 'ProvisioningFailed', `failed to provision volume with StorageClass "${sc.metadata.name}": ${(e as Error).message}`);
      throw e;
    }
    this.log.info({ claim: `${c.metadata.namespace}/${c.metadata.name}`, volume: name, dir }, 'volume provisioned');
    this.recorder.event(c, 'Normal', 'ProvisioningSucceeded', `Successfully provisioned volume ${name}`);
  }

  private async ensureDefaultClass(name: string): Promise<void> {
    const classes = this.classes.list();
    if (classes.some((c) => c.metadata.name === name || isDefaultStorageClass(c))) return;
    try {
      await this.ctx.client.create(resourcePath(STORAGE_CLASSES), {
        apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass',
        metadata: { name, annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } },
        provisioner: this.provisioner, reclaimPolicy: 'Delete', volumeBindingMode: 'WaitForFirstConsumer',
      });
      this.log.info({ storageClass: name }, 'default StorageClass created');
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 409)) throw e;
    }
  }

  private async deleteReleased(v: PersistentVolume): Promise<void> {
    if (v.metadata.annotations?.[ANN_PROVISIONED_BY] !== this.provisioner) return;
    if (v.status?.phase !== 'Released' || v.spec.persistentVolumeReclaimPolicy !== 'Delete' || v.metadata.deletionTimestamp) return;
    const dir = v.spec.hostPath?.path;
    if (!dir || !isInside(this.root, dir)) {
      // Never remove a path outside the volume directory, whatever the object says.
      this.recorder.event(v, 'Warning', 'VolumeFailedDelete', `path "${dir ?? ''}" is not inside the provisioner's directory ${this.root}; not deleting it`);
      return;
    }
    await rm(dir, { recursive: true, force: true });
    try {
      await this.ctx.client.delete(resourcePath(PVS, '', v.metadata.name), { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: v.metadata.uid } });
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 404)) throw e;
    }
    this.log.info({ volume: v.metadata.name, dir }, 'released volume and its directory deleted');
  }
}
