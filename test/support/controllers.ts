// Runs controllers in the test process against a real cluster: one context
// (shared informers, recorder), the controllers built from it, informers
// synced before the workers start; stop() ends all of it.
import { type ApiClient } from '../../agents/client/api.ts';
import { type ControllerConfig, newControllerContext, stopControllerContext } from '../../agents/controllers/context.ts';
import type { ControllerContext } from '../../agents/controllers/context.ts';
import type { Controller } from '../../agents/controllers/controller.ts';

export interface RunningControllers {
  ctx: ControllerContext;
  controllers: Controller[];
  stop(): Promise<void>;
}

export async function runControllers(
  client: ApiClient, nats: string, make: ((ctx: ControllerContext) => Controller)[], config: Partial<ControllerConfig> = {},
): Promise<RunningControllers> {
  const ctx = newControllerContext({ client, nats, config });
  const controllers = make.map((m) => m(ctx));
  await ctx.informers.start();
  await ctx.informers.waitForSync(20_000);
  const abort = new AbortController();
  const runs = controllers.map((c) => c.run(abort.signal));
  return {
    ctx,
    controllers,
    async stop() {
      abort.abort();
      await Promise.allSettled(runs);
      await stopControllerContext(ctx);
    },
  };
}
