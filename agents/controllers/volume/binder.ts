// The PersistentVolume binder (Kubernetes' persistentvolume-binder): binds
// each claim to the best-fitting volume by writing both halves of the link
// (volume.spec.claimRef, claim.spec.volumeName) and the phases; asks the
// class's provisioner for a volume when none fits; marks claims Lost and
// volumes Released when the other side disappears, and reclaims Released
// volumes (Retain: kept; Delete: removed — by their provisioner when they
// were provisioned).
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { KubeObject, Node } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import {
  ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER,
} from './annotations.ts';
import {
  type PersistentVolume, type PersistentVolumeClaim, accessModesFit, capacityOf, claimClass, findBestMatch, isVolumeBoundToClaim, requestOf,
  volumeClass,
} from './matching.ts';

const PVS = resolveKind('persistentvolumes')!;
const PVCS = resolveKind('persistentvolumeclaims')!;

export interface StorageClass extends KubeObject {
  metadata: { name: string; [k: string]: unknown };
  provisioner: string;
  reclaimPolicy?: string;
  volumeBindingMode?: string;
  mountOptions?: string[];
  parameters?: Record<string, string>;
}

const CLAIM = 'pvc:';
const VOLUME = 'pv:';

const claimKey = (ns: string, name: string) => `${CLAIM}${ns}/${name}`;
const volumeKey = (name: string) => `${VOLUME}${name}`;

export class PersistentVolumeBinder extends QueueController {
  private readonly volumes: Informer<PersistentVolume>;
  private readonly claims: Informer<PersistentVolumeClaim>;
  private readonly classes: Informer<StorageClass>;
  private readonly nodes: Informer<Node>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'persistentvolume-binder');
    this.volumes = ctx.informers.informer<PersistentVolume>('persistentvolumes');
    this.claims = ctx.informers.informer<PersistentVolumeClaim>('persistentvolumeclaims');
    this.classes = ctx.informers.informer<StorageClass>('storageclasses');
    this.nodes = ctx.informers.informer<Node>('nodes');
    const claimChanged = (c: PersistentVolumeClaim) => this.enqueue(claimKey(c.metadata.namespace ?? '', c.metadata.name));
    this.handle(this.claims, {
      onAdd: claimChanged,
      onUpdate: (_o, c) => claimChanged(c),
      // The volume bound to a deleted claim is released (and maybe reclaimed).
      onDelete: (c) => {
        if (c.spec?.volumeName) this.enqueue(volumeKey(c.spec.volumeName));
        for (const v of this.volumes.list()) if (v.spec?.claimRef?.uid === c.metadata.uid) this.enqueue(volumeKey(v.metadata.name));
      },
    });
    // A new or changed volume may be what a pending claim waits for.
    const volumeChanged = (v: PersistentVolume) => {
      this.enqueue(volumeKey(v.metadata.name));
      this.enqueuePendingClaims();
    };
    this.handle(this.volumes, {
      onAdd: volumeChanged,
      onUpdate: (_o, v) => volumeChanged(v),
      onDelete: (v) => {
        const r = v.spec?.claimRef;
        if (r?.namespace && r.name) this.enqueue(claimKey(r.namespace, r.name));
      },
    });
    this.handle(this.classes, { onAdd: () => this.enqueuePendingClaims(), onUpdate: () => this.enqueuePendingClaims() });
    // A claim waiting on a selected node whose labels were not known yet.
    this.handle(this.nodes, {
      onAdd: (n) => {
        for (const c of this.claims.list()) {
          if (!c.spec?.volumeName && c.metadata.annotations?.[ANN_SELECTED_NODE] === n.metadata.name) this.enqueue(claimKey(c.metadata.namespace ?? '', c.metadata.name));
        }
      },
    });
  }

  private enqueuePendingClaims(): void {
    for (const c of this.claims.list()) if (!c.spec?.volumeName) this.enqueue(claimKey(c.metadata.namespace ?? '', c.metadata.name));
  }

  protected async reconcile(key: string): Promise<void> {
    if (key.startsWith(CLAIM)) {
      const [ns, name] = key.slice(CLAIM.length).split('/');
      const c = this.claims.get(ns, name);
      if (c) await this.syncClaim(structuredClone(c));
    } else if (key.startsWith(VOLUME)) {
      const v = this.volumes.get('', key.slice(VOLUME.length));
      if (v) await this.syncVolume(structuredClone(v));
    }
  }

  // ---------------------------------------------------------------- claims

  private async syncClaim(c: PersistentVolumeClaim): Promise<void> {
    c.metadata.annotations ??= {};
    if (c.metadata.annotations[ANN_BIND_COMPLETED] === undefined) return this.syncUnboundClaim(c);
    return this.syncBoundClaim(c);
  }

  private async syncUnboundClaim(c: PersistentVolumeClaim): Promise<void> {
    if (c.spec.volumeName) return this.syncPreboundClaim(c);
    const className = claimClass(c);
    const sc = className ? this.classes.get('', className) : undefined;
    const selected = c.metadata.annotations?.[ANN_SELECTED_NODE];
    if (sc?.volumeBindingMode === 'WaitForFirstConsumer' && !selected) {
      this.recorder.event(c, 'Normal', 'WaitForFirstConsumer', 'waiting for first consumer to be created before binding');
      return this.setClaimPhase(c, 'Pending');
    }
    const nodeObj = selected ? this.nodes.get('', selected) : undefined;
    const node = selected ? { name: selected, labels: nodeObj?.metadata.labels ?? {} } : undefined;
    const v = findBestMatch(this.volumes.list(), c, { node });
    if (v) return this.bind(structuredClone(v), c);
    if (!className) {
      this.recorder.event(c, 'Normal', 'FailedBinding', 'no persistent volumes available for this claim and no storage class is set');
    } else if (!sc) {
      this.recorder.event(c, 'Warning', 'ProvisioningFailed', `storageclass.storage.k8s.io "${className}" not found`);
    } else {
      await this.requestProvisioning(c, sc);
      this.recorder.event(c, 'Normal', 'ExternalProvisioning',
        `Waiting for a volume to be created either by the external provisioner '${sc.provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.`);
    }
    await this.setClaimPhase(c, 'Pending');
  }

  /** Names the class's provisioner on the claim: the provisioner acts on claims that carry its name. */
  private async requestProvisioning(c: PersistentVolumeClaim, sc: StorageClass): Promise<void> {
    const a = c.metadata.annotations ?? {};
    if (a[ANN_STORAGE_PROVISIONER] === sc.provisioner && a[ANN_BETA_STORAGE_PROVISIONER] === sc.provisioner) return;
    c.metadata.annotations = { ...a, [ANN_STORAGE_PROVISIONER]: sc.provisioner, [ANN_BETA_STORAGE_PROVISIONER]: sc.provisioner };
    Object.assign(c, await this.ctx.client.update<PersistentVolumeClaim>(resourcePath(PVCS, c.metadata.namespace, c.metadata.name), c));
  }

  /** The user named the volume (spec.volumeName): bind to it if it is free and fits, else stay Pending. */
  private async syncPreboundClaim(c: PersistentVolumeClaim): Promise<void> {
    const v = this.volumes.get('', c.spec.volumeName!);
    if (!v) return this.setClaimPhase(c, 'Pending');
    if (!v.spec.claimRef) {
      const why = unsatisfied(v, c);
      if (why) {
        this.recorder.event(c, 'Warning', 'VolumeMismatch', `Cannot bind to requested volume "${v.metadata.name}": ${why}`);
        return this.setClaimPhase(c, 'Pending');
      }
      return this.bind(structuredClone(v), c);
    }
    if (isVolumeBoundToClaim(v, c)) return this.bind(structuredClone(v), c);
    if (c.metadata.annotations?.[ANN_BOUND_BY_CONTROLLER] === undefined) {
      this.recorder.event(c, 'Warning', 'FailedBinding', `volume "${v.metadata.name}" already bound to a different claim.`);
    }
    await this.setClaimPhase(c, 'Pending');
  }

  private async syncBoundClaim(c: PersistentVolumeClaim): Promise<void> {
    if (!c.spec.volumeName) {
      return this.lose(c, 'ClaimLost', 'Bound claim has lost reference to PersistentVolume. Data on the volume is lost!');
    }
    const v = this.volumes.get('', c.spec.volumeName);
    if (!v) return this.lose(c, 'ClaimLost', 'Bound claim has lost its PersistentVolume. Data on the volume is lost!');
    if (!v.spec.claimRef || v.spec.claimRef.uid === c.metadata.uid) return this.bind(structuredClone(v), c);
    return this.lose(c, 'ClaimMisbound', 'Two claims are bound to the same volume, this one is bound incorrectly');
  }

  private async lose(c: PersistentVolumeClaim, reason: string, message: string): Promise<void> {
    if (c.status?.phase === 'Lost') return;
    this.recorder.event(c, 'Warning', reason, message);
    await this.setClaimPhase(c, 'Lost');
  }

  /**
   * Writes whatever part of the binding is missing, in Kubernetes' order:
   * volume.claimRef, volume phase, claim.volumeName (+ bind-completed), claim
   * phase. Each step is skipped when done, so a retry resumes where a
   * conflict stopped it.
   */
  private async bind(v: PersistentVolume, c: PersistentVolumeClaim): Promise<void> {
    const ns = c.metadata.namespace ?? '';
    const ref = v.spec.claimRef;
    if (!ref || ref.uid !== c.metadata.uid || ref.namespace !== ns || ref.name !== c.metadata.name) {
      const byController = !ref;
      v.spec.claimRef = {
        kind: 'PersistentVolumeClaim', namespace: ns, name: c.metadata.name, uid: c.metadata.uid, apiVersion: 'v1', resourceVersion: c.metadata.resourceVersion,
      };
      if (byController) v.metadata.annotations = { ...v.metadata.annotations, [ANN_BOUND_BY_CONTROLLER]: 'yes' };
      v = await this.ctx.client.update<PersistentVolume>(resourcePath(PVS, '', v.metadata.name), v);
    }
    if (v.status?.phase !== 'Bound') v = await this.setVolumePhase(v, 'Bound');
    const a = c.metadata.annotations ?? {};
    if (c.spec.volumeName !== v.metadata.name || a[ANN_BIND_COMPLETED] === undefined) {
      const byController = !c.spec.volumeName;
      c.spec.volumeName = v.metadata.name;
      c.metadata.annotations = { ...a, [ANN_BIND_COMPLETED]: 'yes', ...(byController ? { [ANN_BOUND_BY_CONTROLLER]: 'yes' } : {}) };
      c = await this.ctx.client.update<PersistentVolumeClaim>(resourcePath(PVCS, ns, c.metadata.name), c);
    }
    const st = c.status ?? {};
    if (st.phase !== 'Bound' || JSON.stringify(st.capacity) !== JSON.stringify(v.spec.capacity) || JSON.stringify(st.accessModes) !== JSON.stringify(v.spec.accessModes)) {
      c.status = { ...st, phase: 'Bound', capacity: v.spec.capacity, accessModes: v.spec.accessModes };
      await this.ctx.client.update(resourcePath(PVCS, ns, c.metadata.name, 'status'), c);
      this.log.info({ claim: `${ns}/${c.metadata.name}`, volume: v.metadata.name }, 'claim bound');
    }
  }

  private async setClaimPhase(c: PersistentVolumeClaim, phase: string): Promise<void> {
    if (c.status?.phase === phase) return;
    c.status = { ...c.status, phase };
    await this.ctx.client.update(resourcePath(PVCS, c.metadata.namespace, c.metadata.name, 'status'), c);
  }

  // ---------------------------------------------------------------- volumes

  private async syncVolume(v: PersistentVolume): Promise<void> {
    if (v.metadata.deletionTimestamp) return;
    const ref = v.spec.claimRef;
    // Unclaimed, or pre-bound by a user to a claim that may not exist yet.
    if (!ref || !ref.uid) {
      await this.setVolumePhase(v, 'Available');
      return;
    }
    const c = await this.claimOf(ref);
    if (!c) {
      if (v.status?.phase !== 'Released' && v.status?.phase !== 'Failed') v = await this.setVolumePhase(v, 'Released');
      return this.reclaim(v);
    }
    if (!c.spec.volumeName) {
      // The binding is half done (or undone by a user): the claim's sync completes it.
      this.enqueue(claimKey(ref.namespace ?? '', ref.name ?? ''));
      return;
    }
    if (c.spec.volumeName === v.metadata.name) {
      await this.setVolumePhase(v, 'Bound');
      return;
    }
    // The claim is bound to another volume.
    const provisioned = v.metadata.annotations?.[ANN_PROVISIONED_BY] !== undefined;
    if (provisioned && v.spec.persistentVolumeReclaimPolicy === 'Delete') {
      if (v.status?.phase !== 'Released' && v.status?.phase !== 'Failed') v = await this.setVolumePhase(v, 'Released');
      return this.reclaim(v);
    }
    if (v.metadata.annotations?.[ANN_BOUND_BY_CONTROLLER] !== undefined) {
      // The controller chose this volume but the claim went elsewhere: undo our half.
      delete v.spec.claimRef;
      delete v.metadata.annotations[ANN_BOUND_BY_CONTROLLER];
      v = await this.ctx.client.update<PersistentVolume>(resourcePath(PVS, '', v.metadata.name), v);
    }
    await this.setVolumePhase(v, 'Available');
  }

  /** The claim a volume's claimRef names, with the same uid; asks the server when the cache lacks it (it may be newer than the cache). */
  private async claimOf(ref: NonNullable<PersistentVolume['spec']['claimRef']>): Promise<PersistentVolumeClaim | undefined> {
    let c = this.claims.get(ref.namespace ?? '', ref.name ?? '');
    if (!c) {
      try {
        c = await this.ctx.client.get<PersistentVolumeClaim>(resourcePath(PVCS, ref.namespace, ref.name));
      } catch (e) {
        if (e instanceof ApiClientError && e.code === 404) return undefined;
        throw e;
      }
    }
    return c.metadata.uid === ref.uid ? c : undefined;
  }

  /** What happens to a Released volume: its reclaim policy. */
  private async reclaim(v: PersistentVolume): Promise<void> {
    switch (v.spec.persistentVolumeReclaimPolicy ?? 'Retain') {
      case 'Retain':
        // Kept with its data until an administrator deals with it.
        return;
      case 'Delete':
        // A provisioned volume is deleted by its provisioner (it owns the storage behind it).
        if (v.metadata.annotations?.[ANN_PROVISIONED_BY] !== undefined) return;
        try {
          await this.ctx.client.delete(resourcePath(PVS, '', v.metadata.name), { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: v.metadata.uid } });
          this.log.info({ volume: v.metadata.name }, 'released volume deleted (reclaim policy Delete)');
        } catch (e) {
          if (!(e instanceof ApiClientError && e.code === 404)) throw e;
        }
        return;
      default:
        if (v.status?.phase === 'Failed') return;
        this.recorder.event(v, 'Warning', 'VolumeFailedRecycle', `reclaim policy ${v.spec.persistentVolumeReclaimPolicy} is not supported; use Retain or Delete`);
        v.status = { ...v.status, phase: 'Failed', message: `reclaim policy ${v.spec.persistentVolumeReclaimPolicy} is not supported` };
        await this.ctx.client.update(resourcePath(PVS, '', v.metadata.name, 'status'), v);
    }
  }

  private async setVolumePhase(v: PersistentVolume, phase: string): Promise<PersistentVolume> {
    if (v.status?.phase === phase) return v;
    v.status = { ...v.status, phase, lastPhaseTransitionTime: new Date(this.ctx.now()).toISOString().replace(/\.\d+Z$/, 'Z') };
    delete v.status.message;
    delete v.status.reason;
    return this.ctx.client.update<PersistentVolume>(resourcePath(PVS, '', v.metadata.name, 'status'), v);
  }
}

/** Why a volume the user named cannot serve the claim (checkVolumeSatisfyClaim), or undefined. */
export function unsatisfied(v: PersistentVolume, c: PersistentVolumeClaim): string | undefined {
  if (capacityOf(v) < requestOf(c)) return 'requested PV is too small';
  if (volumeClass(v) !== claimClass(c)) return 'storageClassName does not match';
  if ((v.spec.volumeMode ?? 'Filesystem') !== (c.spec.volumeMode ?? 'Filesystem')) return 'incompatible volumeMode';
  if (!accessModesFit(v, c)) return 'incompatible accessMode';
  return undefined;
}
