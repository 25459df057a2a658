// A `medium: Memory` emptyDir is a tmpfs of its sizeLimit (a quantity such as
// "1Mi"): a write past it fails with ENOSPC, as the kernel enforces it.
// Mounts on the host (root can), unmounted by cleanupPodVolumes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cleanupPodVolumes, preparePodVolumes } from '../agents/agent/runtime/volumes.ts';
import { tempDir } from '../harness/procs.ts';

const canMount = process.getuid?.() === 0;

t.test('a Memory emptyDir is a tmpfs limited to its sizeLimit', { skip: canMount ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const podDir = tempDir('memory-emptydir');
  t.teardown(() => cleanupPodVolumes(podDir));
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: 'u' },
    spec: { containers: [], volumes: [{ name: 'small', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }, { name: 'open', emptyDir: { medium: 'Memory' } }] },
  };
  const none = async () => undefined;
  const vols = await preparePodVolumes(pod as never, podDir, { configMap: none, secret: none, claimPath: async () => '', serviceAccountToken: none } as never);
  const mount = (dir: string) => readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === dir) ?? '';
  t.match(mount(vols.get('small')!), /^tmpfs \S+ tmpfs \S*size=1024k/, 'mounted as a 1Mi tmpfs');
  t.throws(() => writeFileSync(join(vols.get('small')!, 'big'), Buffer.alloc(2 * 2 ** 20)), /ENOSPC/, 'a 2 MiB write does not fit');
  t.match(mount(vols.get('open')!), /^tmpfs /, 'without sizeLimit: a tmpfs too');
  t.notMatch(mount(vols.get('open')!), /size=1024k/, 'not limited to 1Mi');
});
