// The system under test: real nats-server and flotilla server processes on
// loopback, every directed Raft peer link through its own LinkProxy.
import { splitHostPort } from '../raft/peers.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { LinkProxy } from './proxy.ts';
import type { Rng } from '../harness/rng.ts';

export interface ChaosClusterOptions {
  servers: number;
  natsServers: number;
  /** Extra `flotilla server` flags (debug flags for the planted-bug test). */
  serverArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export class ChaosCluster {
  private constructor(
    readonly servers: FlotillaCluster,
    readonly nats: NatsServers,
    /** `${from}->${to}` → proxy. */
    readonly links: Map<string, LinkProxy>,
  ) {}

  static async start(o: ChaosClusterOptions, rng: Rng): Promise<ChaosCluster> {
    const nats = await NatsServers.start(o.natsServers);
    const servers = await FlotillaCluster.plan(o.servers, {
      args: [
        '--nats', nats.url,
        // Keep every change in the watch history for the whole run: the
        // checkers compare members' histories with the event stream. The
        // history is bounded by count, bytes and age: lift all three.
        '--watch-history-events', '2000000', '--watch-history-bytes', '4Gi', '--watch-history-seconds', '86400',
        '--snapshot-entries', '20000',
        ...(o.serverArgs ?? []),
      ],
    });
    const links = new Map<string, LinkProxy>();
    for (const a of servers.members) {
      for (const b of servers.members) {
        if (a === b) continue;
        const [host, port] = splitHostPort(b.peer);
        const p = new LinkProxy(a.id, b.id, { host, port }, rng);
        await p.start();
        links.set(`${a.id}->${b.id}`, p);
      }
    }
    servers.peersFor = (id) => servers.members
      .map((m) => `${m.id}=${m.id === id ? m.peer : links.get(`${id}->${m.id}`)?.address ?? m.peer}`)
      .join(',');
    // Generous: on a loaded 2-core machine (CI runs two test files at once) a first election can be slow.
    await servers.startAll(90_000);
    return new ChaosCluster(servers, nats, links);
  }

  get ids(): string[] {
    return this.servers.members.map((m) => m.id);
  }

  /** Cuts (or restores) every link between the two groups, both directions. */
  partition(groups: string[][]): void {
    const side = new Map<string, number>();
    groups.forEach((g, i) => g.forEach((id) => side.set(id, i)));
    for (const p of this.links.values()) {
      const a = side.get(p.from);
      const b = side.get(p.to);
      p.setFaults({ cut: a !== undefined && b !== undefined && a !== b });
    }
  }

  /** Cuts exactly these undirected pairs (a bridge: both sides still see the middle). */
  cutPairs(pairs: [string, string][]): void {
    const cut = new Set(pairs.flatMap(([a, b]) => [`${a}->${b}`, `${b}->${a}`]));
    for (const [k, p] of this.links) p.setFaults({ cut: cut.has(k) });
  }

  heal(): void {
    for (const p of this.links.values()) p.setFaults({ cut: false, dropRate: 0, delayMs: 0 });
  }

  async stop(): Promise<void> {
    await this.servers.stop();
    await this.nats.stop();
    for (const p of this.links.values()) await p.stop();
  }
}
