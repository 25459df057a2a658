// A pod's status from what the runtime knows of its containers, as the
// kubelet computes it (kubelet_pods.go getPhase, status/generate.go): phase,
// the PodScheduled/Initialized/ContainersReady/Ready conditions, container
// statuses with state, lastState, ready, started and restartCount.
import type { Pod } from '../informer/types.ts';

export interface Terminated {
  exitCode: number;
  reason: string;
  message?: string;
  signal?: number;
  startedAt: string;
  finishedAt: string;
  containerID?: string;
}

export interface ContainerRuntimeState {
  name: string;
  image: string;
  restartCount: number;
  /** Set while the process runs. */
  running?: { startedAt: string; containerID: string };
  waiting?: { reason: string; message?: string };
  terminated?: Terminated;
  lastTerminated?: Terminated;
  ready: boolean;
  started: boolean;
  /** A restartable init container (sidecar). */
  restartable?: boolean;
  /** A sidecar that has been started once: the init sequence went past it for good. */
  everStarted?: boolean;
}

export interface PodRuntimeView {
  pod: Pod;
  init: ContainerRuntimeState[];
  containers: ContainerRuntimeState[];
  hostIP: string;
  podIP?: string;
  startTime: string;
}

type Phase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export function containerStatus(c: ContainerRuntimeState): Record<string, unknown> {
  const state: Record<string, unknown> = c.running
    ? { running: { startedAt: c.running.startedAt } }
    : c.terminated
      ? { terminated: c.terminated }
      : { waiting: c.waiting ?? { reason: 'ContainerCreating' } };
  return {
    name: c.name, image: c.image, imageID: '', containerID: c.running?.containerID ?? c.terminated?.containerID,
    ready: c.ready, started: c.started, restartCount: c.restartCount,
    state, lastState: c.lastTerminated ? { terminated: c.lastTerminated } : {},
  };
}

/** Whether the init containers have all completed (exit 0). */
export function initialized(v: PodRuntimeView): boolean {
  return v.init.every(initDone);
}

/** A regular init container is done when it exited 0; a sidecar once it has been up (it may restart later). */
function initDone(c: ContainerRuntimeState): boolean {
  return c.restartable ? !!c.everStarted : c.terminated?.exitCode === 0;
}

export function podPhase(v: PodRuntimeView): Phase {
  const policy = v.pod.spec?.restartPolicy ?? 'Always';
  if (!initialized(v)) {
    const failed = v.init.some((c) => !c.restartable && c.terminated && c.terminated.exitCode !== 0);
    return failed && policy === 'Never' ? 'Failed' : 'Pending';
  }
  let waiting = 0;
  let running = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of v.containers) {
    if (c.running) running++;
    else if (c.terminated) {
      stopped++;
      if (c.terminated.exitCode === 0) succeeded++;
    } else if (c.lastTerminated) {
      // Waiting to restart: counted by how it last ended.
      stopped++;
      if (c.lastTerminated.exitCode === 0) succeeded++;
    } else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (policy === 'Never') return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

function condition(type: string, ok: boolean, reason?: string, message?: string): Record<string, unknown> {
  return { type, status: ok ? 'True' : 'False', ...(ok ? {} : { reason, message }) };
}

/** The status to write (lastTransitionTime carried over from `prev` while a condition keeps its status). */
export function podStatus(v: PodRuntimeView, prev: Record<string, any> | undefined, now: string): Record<string, unknown> {
  const phase = podPhase(v);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const notInit = v.init.filter((c) => !initDone(c)).map((c) => c.name);
  // Sidecars count for readiness like the containers.
  const unready = [...v.init.filter((c) => c.restartable), ...v.containers].filter((c) => !c.ready).map((c) => c.name);
  const conds = [
    condition('PodScheduled', true),
    condition('Initialized', !notInit.length, 'ContainersNotInitialized', `containers with incomplete status: [${notInit.join(' ')}]`),
    terminal
      ? condition('ContainersReady', false, 'PodCompleted', '')
      : condition('ContainersReady', !unready.length, 'ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`),
    terminal
      ? condition('Ready', false, 'PodCompleted', '')
      : condition('Ready', !unready.length, 'ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`),
  ].map((c) => {
    const old = (prev?.conditions as Record<string, unknown>[] | undefined)?.find((o) => o.type === c.type);
    const { message, ...rest } = c as Record<string, unknown>;
    return { ...rest, ...(message ? { message } : {}), lastProbeTime: null, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now };
  });
  const out: Record<string, unknown> = {
    phase,
    conditions: conds,
    hostIP: v.hostIP,
    hostIPs: [{ ip: v.hostIP }],
    startTime: v.startTime,
    containerStatuses: v.containers.map(containerStatus),
  };
  if (v.init.length) out.initContainerStatuses = v.init.map(containerStatus);
  if (v.podIP) {
    out.podIP = v.podIP;
    out.podIPs = [{ ip: v.podIP }];
  }
  return out;
}
