// Minimal TypeScript shapes of the kinds consumers watch most. They name the
// fields controllers read and keep everything else open (index signatures),
// so that an Informer<Pod> reads naturally without pretending to be a full
// API binding. The server's schemas (api/kinds/) stay the authority.
import type { KubeObject, ObjectMeta } from '../../api/schema/types.ts';

export type { KubeObject, ObjectMeta };

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown' | string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  [k: string]: unknown;
}

/** An object whose metadata (name at least) is always present, as the server returns them. */
export interface Stored extends KubeObject {
  metadata: ObjectMeta & { name: string };
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; [k: string]: unknown }[];
  ports?: { containerPort: number; name?: string; protocol?: string }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  [k: string]: unknown;
}

export interface PodTemplate {
  metadata?: ObjectMeta;
  spec?: PodSpec;
}

export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  containers: Container[];
  initContainers?: Container[];
  restartPolicy?: string;
  schedulerName?: string;
  tolerations?: { key?: string; operator?: string; value?: string; effect?: string }[];
  [k: string]: unknown;
}

export interface Pod extends Stored {
  spec?: PodSpec;
  status?: {
    phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown' | string;
    conditions?: Condition[];
    podIP?: string;
    hostIP?: string;
    containerStatuses?: { name: string; ready: boolean; restartCount: number; [k: string]: unknown }[];
    [k: string]: unknown;
  };
}

export interface Node extends Stored {
  spec?: { unschedulable?: boolean; taints?: { key: string; value?: string; effect: string }[]; [k: string]: unknown };
  status?: {
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    conditions?: Condition[];
    addresses?: { type: string; address: string }[];
    [k: string]: unknown;
  };
}

export interface Namespace extends Stored {
  status?: { phase?: 'Active' | 'Terminating' | string };
}

export interface ConfigMap extends Stored {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
  immutable?: boolean;
}

export interface Secret extends Stored {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export interface Service extends Stored {
  spec?: {
    type?: string;
    selector?: Record<string, string>;
    clusterIP?: string;
    ports?: { port: number; targetPort?: number | string; nodePort?: number; name?: string; protocol?: string }[];
    [k: string]: unknown;
  };
}

export interface Endpoints extends Stored {
  subsets?: {
    addresses?: { ip: string; nodeName?: string; targetRef?: Record<string, unknown> }[];
    notReadyAddresses?: { ip: string; nodeName?: string; targetRef?: Record<string, unknown> }[];
    ports?: { port: number; name?: string; protocol?: string }[];
  }[];
}

interface WorkloadSpec {
  replicas?: number;
  selector?: LabelSelector;
  template?: PodTemplate;
  [k: string]: unknown;
}

export interface Deployment extends Stored {
  spec?: WorkloadSpec & { strategy?: Record<string, unknown>; revisionHistoryLimit?: number; paused?: boolean };
  status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number; observedGeneration?: number; conditions?: Condition[]; [k: string]: unknown };
}

export interface ReplicaSet extends Stored {
  spec?: WorkloadSpec;
  status?: { replicas?: number; readyReplicas?: number; availableReplicas?: number; fullyLabeledReplicas?: number; observedGeneration?: number; [k: string]: unknown };
}

export interface DaemonSet extends Stored {
  spec?: Omit<WorkloadSpec, 'replicas'>;
  status?: Record<string, unknown>;
}

export interface StatefulSet extends Stored {
  spec?: WorkloadSpec & { serviceName?: string };
  status?: Record<string, unknown>;
}

export interface Job extends Stored {
  spec?: { parallelism?: number; completions?: number; backoffLimit?: number; template?: PodTemplate; selector?: LabelSelector; [k: string]: unknown };
  status?: { active?: number; succeeded?: number; failed?: number; conditions?: Condition[]; [k: string]: unknown };
}

export interface Lease extends Stored {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}
