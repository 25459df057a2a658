// Whether the real kubectl is there for the tests that drive it. Outside CI a
// missing kubectl skips them, loudly; in CI (CI=true), where the bootstrap
// installs it (scripts/bootstrap.mjs: Debian's kubernetes-client), a missing
// kubectl is a failure, never a silent skip.
import { spawn, spawnSync } from 'node:child_process';

export const inCI = /^(true|1)$/i.test(process.env.CI ?? '');

export const hasKubectl = spawnSync('sh', ['-c', 'command -v kubectl'], { stdio: 'ignore' }).status === 0;

const REASON = 'kubectl is not installed (npm test installs Debian\'s kubernetes-client when run as root)';

/**
 * undefined when kubectl is there; otherwise the reason to skip, after
 * failing `t` when in CI and warning on stderr otherwise.
 */
export function kubectlMissing(t: { fail(msg: string): void }): string | undefined {
  if (hasKubectl) return undefined;
  if (inCI) t.fail(`${REASON}, and CI=true: in CI the kubectl tests must run, not be skipped`);
  else process.stderr.write(`\n*** ${REASON}: the kubectl tests are SKIPPED (they fail when CI=true) ***\n\n`);
  return REASON;
}

/** Runs the real kubectl against a kubeconfig; resolves with its exit code and output (never rejects). */
export function runKubectl(kubeconfig: string, cacheDir: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}
