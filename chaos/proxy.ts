// A fault-injecting TCP proxy for one directed Raft peer link (a → b).
// Each member reaches each other member through its own proxy, so a
// partition is a set of links cut. The proxy knows the transport's framing
// (4-byte big-endian length + protobuf message), so it drops and delays
// whole messages, as a lossy network would, never bytes in the middle of one.
import { type Server, type Socket, connect, createServer } from 'node:net';
import type { Rng } from '../harness/rng.ts';

export interface LinkFaults {
  /** No connection gets through; existing ones are closed. */
  cut: boolean;
  /** Probability of dropping each message. */
  dropRate: number;
  /** Added one-way latency per message. */
  delayMs: number;
}

export class LinkProxy {
  private server?: Server;
  private readonly conns = new Set<Socket>();
  private faults: LinkFaults = { cut: false, dropRate: 0, delayMs: 0 };
  port = 0;
  stats = { forwarded: 0, dropped: 0, refused: 0 };

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly target: { host: string; port: number },
    private readonly rng: Rng,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
  }

  setFaults(f: Partial<LinkFaults>): void {
    this.faults = { ...this.faults, ...f };
    if (this.faults.cut) for (const c of this.conns) c.destroy();
  }

  get current(): LinkFaults {
    return { ...this.faults };
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private accept(client: Socket): void {
    if (this.faults.cut) {
      this.stats.refused++;
      client.destroy();
      return;
    }
    const upstream = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    client.setNoDelay(true);
    this.conns.add(client);
    const close = () => {
      this.conns.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    // Peers never write back on a connection they accepted; pass anything through.
    upstream.on('data', (d) => client.write(d));

    let buf: Buffer = Buffer.alloc(0);
    let releaseAt = 0;
    client.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (buf.length < 4 + len) break;
        const frame = buf.subarray(0, 4 + len);
        buf = buf.subarray(4 + len);
        if (this.faults.dropRate > 0 && this.rng.next() < this.faults.dropRate) {
          this.stats.dropped++;
          continue;
        }
        this.stats.forwarded++;
        if (this.faults.delayMs <= 0 && releaseAt <= Date.now()) {
          upstream.write(frame);
        } else {
          // Keep order: a message never overtakes the one before it.
          releaseAt = Math.max(releaseAt, Date.now() + this.faults.delayMs);
          const copy = Buffer.from(frame);
          setTimeout(() => {
            if (!upstream.destroyed) upstream.write(copy);
          }, releaseAt - Date.now());
        }
      }
    });
  }
}
