// Finalizer names with a meaning to the server and the controllers
// (metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents,
// v1.FinalizerKubernetes).

/** On an object being deleted: its dependents are orphaned (their reference to it removed) before it goes. */
export const FINALIZER_ORPHAN = 'orphan';
/** On an object being deleted: it goes after its blocking dependents (foreground cascading deletion). */
export const FINALIZER_FOREGROUND = 'foregroundDeletion';
/** In a Namespace's spec.finalizers: the namespace controller has not emptied it yet. */
export const NAMESPACE_FINALIZER = 'kubernetes';
