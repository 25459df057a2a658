// On the leader: the default RBAC policy is created, or reconciled when it
// carries autoupdate "true" (missing rules, labels and subjects are added;
// nothing is removed, as Kubernetes' reconciliation at start), and ClusterRole
// aggregation keeps every aggregated role's rules the union of the rules of
// the ClusterRoles its selectors match.
import type pino from 'pino';
import { labelSelectorMatches } from '../../api/selectors.ts';
import { kindByResource } from '../../api/kinds/index.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { ApiError } from '../errors.ts';
import type { Registry } from '../registry.ts';
import type { StoreEvent } from '../store.ts';
import { AUTOUPDATE, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, clusterRoleBindingObject, clusterRoleObject } from './bootstrap-policy.ts';
import { RBAC, RES } from './rbac.ts';
import type { PolicyRule } from './rules.ts';

type Ctx = Parameters<Registry['create']>[3];
const CLUSTER_ROLE = kindByResource(RBAC, 'v1', 'clusterroles')!;
const CLUSTER_ROLE_BINDING = kindByResource(RBAC, 'v1', 'clusterrolebindings')!;

interface RoleObj extends KubeObject {
  rules?: PolicyRule[];
  aggregationRule?: { clusterRoleSelectors?: Parameters<typeof labelSelectorMatches>[0][] };
  subjects?: { kind: string; name: string }[];
}

const key = (x: unknown) => JSON.stringify(x);

async function ensure(registry: Registry, kind: typeof CLUSTER_ROLE, want: RoleObj, ctx: Ctx, merge: (cur: RoleObj) => boolean): Promise<void> {
  const name = want.metadata!.name!;
  const cur = registry.store.get(`${RBAC}/${kind.plural}`, '', name);
  if (!cur) {
    kind.default(want);
    await registry.create(kind, '', want, ctx);
    return;
  }
  const obj = JSON.parse(cur.json) as RoleObj;
  if (obj.metadata?.annotations?.[AUTOUPDATE] !== 'true') return; // the administrator owns it now
  const probe = structuredClone(obj);
  if (!merge(probe)) return;
  await registry.update(kind, '', name, (o) => { merge(o as RoleObj); return o; }, ctx);
}

export async function reconcileBootstrapPolicy(registry: Registry, ctx: Ctx): Promise<void> {
  for (const spec of CLUSTER_ROLES) {
    const want = clusterRoleObject(spec) as RoleObj;
    await ensure(registry, CLUSTER_ROLE, want, ctx, (o) => {
      let changed = false;
      const labels = (o.metadata!.labels ??= {});
      for (const [k, v] of Object.entries(want.metadata!.labels ?? {})) if (labels[k] !== v) { labels[k] = v; changed = true; }
      if (want.aggregationRule && key(o.aggregationRule) !== key(want.aggregationRule)) { o.aggregationRule = want.aggregationRule; changed = true; }
      if (!want.aggregationRule) {
        const have = new Set((o.rules ?? []).map(key));
        for (const r of want.rules ?? []) if (!have.has(key(r))) { (o.rules ??= []).push(r); changed = true; }
      }
      return changed;
    });
  }
  for (const b of CLUSTER_ROLE_BINDINGS) {
    const want = clusterRoleBindingObject(b) as RoleObj;
    await ensure(registry, CLUSTER_ROLE_BINDING, want, ctx, (o) => {
      let changed = false;
      const have = new Set((o.subjects ?? []).map((s) => `${s.kind}/${s.name}`));
      for (const s of want.subjects ?? []) if (!have.has(`${s.kind}/${s.name}`)) { (o.subjects ??= []).push(s); changed = true; }
      return changed;
    });
  }
}

/** The rules an aggregated role should hold: those of every other ClusterRole a selector matches, without duplicates, by role name. */
export function aggregatedRules(role: RoleObj, all: RoleObj[]): PolicyRule[] {
  const out: PolicyRule[] = [];
  const seen = new Set<string>();
  const sorted = [...all].sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  for (const other of sorted) {
    if (other.metadata!.name === role.metadata!.name) continue;
    if (!(role.aggregationRule?.clusterRoleSelectors ?? []).some((s) => labelSelectorMatches(s, other.metadata?.labels as Record<string, string>))) continue;
    for (const r of other.rules ?? []) {
      const k = key(r);
      if (!seen.has(k)) { seen.add(k); out.push(r); }
    }
  }
  return out;
}

/** ClusterRole aggregation, run while `isLeader()`: a pass after any ClusterRole changes. */
export class AggregationController {
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;

  constructor(private readonly registry: Registry, private readonly log: pino.Logger, private readonly ctx: Ctx, private readonly isLeader: () => boolean) {
    registry.store.on('event', (e: StoreEvent) => { if (e.res === RES.clusterRoles) this.schedule(); });
  }

  schedule(): void {
    if (!this.isLeader() || this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.pass(); }, 20);
  }

  private async pass(): Promise<void> {
    if (this.running) { this.again = true; return; }
    this.running = true;
    try {
      const all = this.registry.store.list(RES.clusterRoles, undefined).map(({ obj }) => JSON.parse(obj.json) as RoleObj);
      for (const role of all) {
        if (!role.aggregationRule) continue;
        const rules = aggregatedRules(role, all);
        if (key(rules) === key(role.rules ?? [])) continue;
        await this.registry.update(CLUSTER_ROLE, '', role.metadata!.name!, (o) => { (o as RoleObj).rules = rules; return o; }, this.ctx);
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.reason === 'NotFound')) this.log.warn({ err: (e as Error).message }, 'ClusterRole aggregation failed; retrying');
      this.again = true;
    } finally {
      this.running = false;
      if (this.again) { this.again = false; setTimeout(() => this.schedule(), 250); }
    }
  }
}
