// The `flotilla` command: dispatches a subcommand to the module that owns it.
const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<void> }>> = {
  'raft-kv': () => import('../raft/examples/kv/main.ts'),
  server: () => import('../apiserver/main.ts'),
  controllers: () => import('../agents/controllers/main.ts'),
  dns: () => import('../agents/dns/main.ts'),
  ingress: () => import('../agents/ingress/main.ts'),
  proxy: () => import('../agents/proxy/main.ts'),
  scheduler: () => import('../agents/scheduler/main.ts'),
  agent: () => import('../agents/agent/main.ts'),
  up: () => import('./up.ts'),
  down: () => import('./up-lifecycle.ts'),
  // Client verbs (bin/commands/): talk to a cluster over its HTTP API.
  apply: () => import('./commands/apply.ts'),
  get: () => import('./commands/get.ts'),
  delete: () => import('./commands/delete.ts'),
  scale: () => import('./commands/scale.ts'),
  rollout: () => import('./commands/rollout.ts'),
  cluster: () => import('./commands/cluster.ts'),
  events: () => import('./commands/events.ts'),
  describe: () => import('./commands/describe.ts'),
  cordon: async () => ({ main: (await import('./commands/node.ts')).commandFor('cordon') }),
  uncordon: async () => ({ main: (await import('./commands/node.ts')).commandFor('uncordon') }),
  drain: async () => ({ main: (await import('./commands/node.ts')).commandFor('drain') }),
  logs: () => import('./commands/logs.ts'),
  secrets: () => import('./commands/secrets.ts'),
  certs: () => import('./commands/certs.ts'),
};

const [cmd, ...rest] = process.argv.slice(2);
const load = cmd ? commands[cmd] : undefined;
if (!load) {
  process.stderr.write(
    `usage: flotilla <command> [options]\n\ncommands:\n${Object.keys(commands).map((c) => `  ${c}`).join('\n')}\n`,
  );
  process.exit(cmd ? 2 : 0);
}
// Started by `flotilla up`: exit when it is gone (its pid is no longer our
// parent), gracefully first, so no orphans keep ports and data directories.
const parent = Number(process.env.FLOTILLA_PARENT_PID);
if (parent) {
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => process.exit(1), 10_000).unref();
  }, 1000);
  watch.unref();
}
const mod = await load();
try {
  await mod.main(rest);
} catch (e) {
  process.stderr.write(`flotilla ${cmd}: ${(e as Error).message}\n`);
  process.exit(1);
}
