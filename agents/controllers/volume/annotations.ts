// The annotations through which the binder, the provisioner and the
// scheduler coordinate (Kubernetes' names, so tools that know them work).

/** On a claim: the binder finished binding it (a bound claim that loses its volume becomes Lost). */
export const ANN_BIND_COMPLETED = 'pv.kubernetes.io/bind-completed';
/** On a claim or volume: the binding was made by the controller (not pre-bound by a user). */
export const ANN_BOUND_BY_CONTROLLER = 'pv.kubernetes.io/bound-by-controller';
/** On a volume: the provisioner that created it (and must delete it). */
export const ANN_PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
/** On a claim: the provisioner asked to create a volume for it. */
export const ANN_STORAGE_PROVISIONER = 'volume.kubernetes.io/storage-provisioner';
export const ANN_BETA_STORAGE_PROVISIONER = 'volume.beta.kubernetes.io/storage-provisioner';
/** On a claim: the node the scheduler chose for its first consumer (WaitForFirstConsumer). */
export const ANN_SELECTED_NODE = 'volume.kubernetes.io/selected-node';
/** The claim's class before spec.storageClassName existed; wins over the field when present. */
export const ANN_BETA_STORAGE_CLASS = 'volume.beta.kubernetes.io/storage-class';

/** The provisioner of this project: hostPath-style directories under the controllers' --volume-dir. */
export const LOCAL_PATH_PROVISIONER = 'flotilla.io/local-path';
/** The node label a provisioned volume's node affinity names. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
