// `flotilla secrets rotate`: re-encrypts every Secret under the servers'
// current write key (the first key of their EncryptionConfiguration), as
// `kubectl get secrets -A -o json | kubectl replace -f -` does for
// Kubernetes: each Secret is written back unchanged through the API, and the
// server seals it again. A Secret already sealed under the write key is a
// no-op write (its resourceVersion stays), so running it twice is harmless.
// Every server must run with the new configuration before this is run.
import { ApiClientError, resourcePath } from '../../agents/client/api.ts';
import type { KubeObject } from '../../agents/informer/types.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, UsageError, parseCommand } from './args.ts';
import { CliError, type Io, kindOrFail, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const USAGE = `Manage how Secrets are stored.

Usage:
  flotilla secrets rotate

Commands:
  rotate   write every Secret again, so the servers seal it under the first key of
           their --encryption-provider-config; afterwards older keys can be removed
           from that file (restart the servers with it first)
${CONNECTION_HELP}`;

const OPTIONS = { ...COMMON_OPTIONS } as const;

/** Writes of one Secret that lost a race with another writer before we give up on it. */
const MAX_CONFLICTS = 5;

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('secrets', argv, OPTIONS), async ({ values, positionals }) => {
    if (positionals[0] !== 'rotate' || positionals.length > 1) throw new UsageError(positionals.length ? `unknown command "${positionals.join(' ')}"` : 'a command is required: rotate', 'secrets');
    const secrets = kindOrFail('secrets');
    await withClient(io, values, async (client) => {
      const list = await client.list<KubeObject>(resourcePath(secrets));
      let rewritten = 0;
      let current = 0;
      let failed = 0;
      for (const item of list.items) {
        const ns = String(item.metadata?.namespace ?? '');
        const name = String(item.metadata?.name ?? '');
        const path = resourcePath(secrets, ns, name);
        let obj: KubeObject | undefined = item;
        try {
          for (let attempt = 0; obj; attempt++) {
            try {
              const out = await client.update<KubeObject>(path, obj);
              if (out.metadata?.resourceVersion === obj.metadata?.resourceVersion) current++;
              else rewritten++;
              break;
            } catch (e) {
              // Changed since we read it: that write was sealed by the server already; write the new version back all the same.
              if (!(e instanceof ApiClientError && e.code === 409) || attempt >= MAX_CONFLICTS) throw e;
              obj = await client.get<KubeObject>(path);
            }
          }
        } catch (e) {
          if (e instanceof ApiClientError && e.code === 404) continue; // deleted meanwhile: nothing left to re-encrypt
          failed++;
          reportError(io, e instanceof ApiClientError ? e : new CliError(`secret ${ns}/${name}: ${(e as Error).message}`));
        }
      }
      io.out(`${rewritten + current} Secrets re-encrypted under the current write key (${rewritten} rewritten, ${current} already under it)${failed ? `; ${failed} failed` : ''}\n`);
      if (failed) throw new CliError(`${failed} Secret(s) could not be rewritten; the old key is still needed`);
    });
  });
}
