// The controllers `flotilla controllers` runs, by name, and how
// `--controllers` selects them (kube-controller-manager's syntax: "*" for
// all, "name" to enable, "-name" to disable; later items win).
import type { ControllerContext } from './context.ts';
import type { Controller } from './controller.ts';
import { EndpointsController } from './endpoints/controller.ts';
import { EndpointSliceController } from './endpointslice/controller.ts';
import { NodeIpamController } from './nodeipam/controller.ts';
import { NodeLifecycleController } from './nodelifecycle/controller.ts';
import { TaintEvictionController } from './nodelifecycle/taint-eviction.ts';
import { EventTTLController } from './eventttl/controller.ts';
import { GarbageCollector } from './garbagecollector/controller.ts';
import { KubernetesServiceController } from './kubernetesservice/controller.ts';
import { PodGCController } from './podgc/controller.ts';
import { NamespaceController } from './namespace/controller.ts';
import { RootCAPublisher } from './serviceaccount/rootca.ts';
import { ServiceAccountsController } from './serviceaccount/serviceaccounts.ts';
import { DisruptionController } from './disruption/controller.ts';
import { HorizontalPodAutoscalerController } from './hpa/controller.ts';
import { ResourceQuotaController } from './resourcequota/controller.ts';
import { PersistentVolumeBinder } from './volume/binder.ts';
import { LocalPathProvisioner } from './volume/provisioner.ts';
import { ReplicaSetController } from './replicaset/controller.ts';
import { JobController } from './job/controller.ts';
import { TTLAfterFinishedController } from './ttlafterfinished/controller.ts';
import { DeploymentController } from './deployment/controller.ts';
import { CronJobController } from './cronjob/controller.ts';
import { StatefulSetController } from './statefulset/controller.ts';
import { DaemonSetController } from './daemonset/controller.ts';

export interface ControllerDescriptor {
  /** The name `--controllers` uses (kube-controller-manager's where one exists). */
  name: string;
  create(ctx: ControllerContext): Controller;
}

/** Every controller, in start order. Append new ones at the end. */
export const CONTROLLERS: ControllerDescriptor[] = [
  { name: 'endpoint', create: (ctx) => new EndpointsController(ctx) },
  { name: 'endpointslice', create: (ctx) => new EndpointSliceController(ctx) },
  { name: 'nodelifecycle', create: (ctx) => new NodeLifecycleController(ctx) },
  { name: 'taint-eviction-controller', create: (ctx) => new TaintEvictionController(ctx) },
  { name: 'nodeipam', create: (ctx) => new NodeIpamController(ctx) },
  { name: 'garbagecollector', create: (ctx) => new GarbageCollector(ctx) },
  { name: 'namespace', create: (ctx) => new NamespaceController(ctx) },
  { name: 'serviceaccount', create: (ctx) => new ServiceAccountsController(ctx) },
  { name: 'root-ca-cert-publisher', create: (ctx) => new RootCAPublisher(ctx) },
  { name: 'kubernetes-service', create: (ctx) => new KubernetesServiceController(ctx) },
  { name: 'eventttl', create: (ctx) => new EventTTLController(ctx) },
  { name: 'podgc', create: (ctx) => new PodGCController(ctx) },
  { name: 'persistentvolume-binder', create: (ctx) => new PersistentVolumeBinder(ctx) },
  { name: 'local-path-provisioner', create: (ctx) => new LocalPathProvisioner(ctx) },
  { name: 'horizontal-pod-autoscaler', create: (ctx) => new HorizontalPodAutoscalerController(ctx) },
  { name: 'disruption', create: (ctx) => new DisruptionController(ctx) },
  { name: 'resourcequota', create: (ctx) => new ResourceQuotaController(ctx) },
  { name: 'replicaset', create: (ctx) => new ReplicaSetController(ctx) },
  { name: 'job', create: (ctx) => new JobController(ctx) },
  { name: 'ttl-after-finished', create: (ctx) => new TTLAfterFinishedController(ctx) },
  { name: 'deployment', create: (ctx) => new DeploymentController(ctx) },
  { name: 'cronjob', create: (ctx) => new CronJobController(ctx) },
  { name: 'statefulset', create: (ctx) => new StatefulSetController(ctx) },
  { name: 'daemonset', create: (ctx) => new DaemonSetController(ctx) },
];

/** The descriptors `spec` ("*", "a,b", "*,-a") selects; throws for a name that is not a controller. */
export function selectControllers(spec: string, all: readonly ControllerDescriptor[] = CONTROLLERS): ControllerDescriptor[] {
  const known = new Set(all.map((c) => c.name));
  const on = new Set<string>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (raw === '*') {
      for (const n of known) on.add(n);
      continue;
    }
    const off = raw.startsWith('-');
    const name = off ? raw.slice(1) : raw;
    if (!known.has(name)) throw new Error(`--controllers: unknown controller "${name}" (known: ${[...known].join(', ') || 'none'})`);
    if (off) on.delete(name);
    else on.add(name);
  }
  return all.filter((c) => on.has(c.name));
}
