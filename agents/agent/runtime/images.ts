// Images cannot be pulled on this machine: the process runtime runs a
// container's `command` on the host. This small table maps the few image
// names the examples use to the program their entrypoint would be; any other
// image needs a `command`, and without one the container waits with
// ErrImageNeverPull (as the kubelet does for an image it may not pull).
import { dirname } from 'node:path';

export interface ImageEntry {
  /** The entrypoint's program (used when the container has no `command`). */
  entrypoint: string[];
  /** What the image's default CMD is, when neither command nor args are given. */
  defaultArgs: string[];
}

/** Image table (documented in the README): name (before ":tag"/"@digest") → entrypoint. */
export function imageEntry(image: string | undefined): ImageEntry | undefined {
  const name = (image ?? '').replace(/@.*$/, '').replace(/:[^/:]*$/, '').replace(/^(docker\.io\/)?(library\/)?/, '');
  if (name === 'node') return { entrypoint: [process.execPath], defaultArgs: [] };
  if (name === 'busybox' || name === 'alpine') return { entrypoint: ['/bin/sh'], defaultArgs: [] };
  return undefined;
}

/** Directories put first on a container's PATH (the node image's binary). */
export const IMAGE_PATH = [dirname(process.execPath)];

/** The argv of a container, or why it cannot run (the waiting reason and message). */
export function containerArgv(c: { image?: string; command?: string[]; args?: string[] }): { argv: string[] } | { reason: string; message: string } {
  const entry = imageEntry(c.image);
  if (c.command?.length) return { argv: [...c.command, ...(c.args ?? [])] };
  if (!entry) {
    return {
      reason: 'ErrImageNeverPull',
      message: `Container image "${c.image ?? ''}" cannot be pulled on this node and is not in the agent's image table (node, busybox, alpine): give the container a command`,
    };
  }
  const args = c.args ?? entry.defaultArgs;
  return { argv: [...entry.entrypoint, ...args] };
}
