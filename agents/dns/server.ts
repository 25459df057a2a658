// The DNS server: UDP and TCP on one address and port, answering names in the
// cluster zone from the caches (records.ts) and forwarding the rest to the
// upstream resolvers unchanged. The wire format is dns-packet's (a well-kept
// codec: hand-written DNS parsing is where servers get crashed); a query that
// does not decode gets FORMERR when its header can be read, and is dropped
// otherwise — never a throw.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type Answer as WireAnswer, type Packet } from 'dns-packet';
import type { Logger } from '../informer/stream.ts';
import { silentLogger } from '../informer/stream.ts';
import { type Answer, type ClusterView, DEFAULT_TTL, type Lookup, inZone, lookup } from './records.ts';

export interface DnsServerOptions {
  view: ClusterView;
  /** The cluster domain (default cluster.local). */
  zone?: string;
  /** Upstream resolvers for names outside the zone, "host[:port]" (empty: answer REFUSED). */
  upstreams?: string[];
  /** How long to wait for an upstream (ms). */
  upstreamTimeoutMs?: number;
  ttl?: number;
  logger?: Logger;
  /** Counts each answer: source (cluster, forward) and rcode. */
  onAnswer?: (source: 'cluster' | 'forward' | 'invalid', rcode: string) => void;
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** A client that sends no EDNS option can take 512 bytes over UDP. */
const CLASSIC_UDP_SIZE = 512;
/** Largest TCP message accepted (a query is a few hundred bytes). */
const MAX_TCP_MESSAGE = 65_535;

function parseHostPort(s: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`invalid address "${s}"`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defaultPort };
}

export class DnsServer {
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  private readonly zone: string;
  private readonly ttl: number;
  private readonly log: Logger;
  private readonly upstreams: { host: string; port: number }[];
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly o: DnsServerOptions) {
    this.zone = (o.zone ?? 'cluster.local').toLowerCase().replace(/\.$/, '');
    this.ttl = o.ttl ?? DEFAULT_TTL;
    this.log = o.logger ?? silentLogger;
    this.upstreams = (o.upstreams ?? []).map((u) => parseHostPort(u, 53));
  }

  /** Listens on UDP and TCP; resolves with the port (useful with port 0: TCP's port is reused for UDP). */
  async listen(host: string, port: number): Promise<number> {
    const tcp = net.createServer((s) => this.serveTcp(s));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => resolve());
    });
    this.tcp = tcp;
    const bound = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(bound, host, () => resolve());
    });
    udp.on('error', (e) => this.log.warn({ err: e.message }, 'udp socket error'));
    udp.on('message', (msg, rinfo) => {
      void this.answer(msg, 'udp').then((out) => {
        if (out) udp.send(out, rinfo.port, rinfo.address);
      });
    });
    this.udp = udp;
    return bound;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const [udp, tcp] = [this.udp, this.tcp];
    this.udp = undefined;
    this.tcp = undefined;
    await Promise.all([
      new Promise<void>((r) => (udp ? udp.close(() => r()) : r())),
      new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r())),
    ]);
  }

  private serveTcp(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    s.setTimeout(10_000, () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len > MAX_TCP_MESSAGE || len < 12) {
          s.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.answer(msg, 'tcp').then((out) => {
          if (!out || s.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(out.length);
          s.write(Buffer.concat([head, out]));
        });
      }
    });
  }

  /** The reply to one message, or undefined to stay silent. Never throws. */
  async answer(msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let q: Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      this.o.onAnswer?.('invalid', 'FORMERR');
      return formErr(msg);
    }
    try {
      // Never answer an answer (a forged or looped response would bounce between servers).
      if (q.type === 'response') return undefined;
      const question = q.questions?.[0];
      if (!question || (q.questions?.length ?? 0) > 1 || (q.flags ?? 0) & 0x7800) {
        // Responses, empty questions, several questions, or an opcode other than QUERY.
        this.o.onAnswer?.('invalid', 'FORMERR');
        return this.reply(q, 'FORMERR', [], [], transport);
      }
      if (inZone(question.name, this.zone)) {
        const r = lookup(this.o.view, this.zone, question.name, question.type, this.ttl);
        this.o.onAnswer?.('cluster', r.rcode);
        return this.reply(q, r.rcode, r.answers, r.additional, transport);
      }
      if (!this.upstreams.length) {
        this.o.onAnswer?.('forward', 'REFUSED');
        return this.reply(q, 'REFUSED', [], [], transport);
      }
      const forwarded = await this.forward(msg);
      if (!forwarded) {
        this.o.onAnswer?.('forward', 'SERVFAIL');
        return this.reply(q, 'SERVFAIL', [], [], transport);
      }
      this.o.onAnswer?.('forward', 'NOERROR');
      return forwarded;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'answering a query failed');
      this.o.onAnswer?.('invalid', 'SERVFAIL');
      return this.reply(q, 'SERVFAIL', [], [], transport);
    }
  }

  private reply(q: Packet, rcode: keyof typeof RCODE | Lookup['rcode'], answers: Answer[], additional: Answer[], transport: 'udp' | 'tcp'): Buffer {
    const rd = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    let flags = rd | dnsPacket.RECURSION_AVAILABLE | RCODE[rcode];
    const cluster = rcode === 'NOERROR' || rcode === 'NXDOMAIN';
    if (cluster) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
    const soa: WireAnswer[] = cluster && !answers.length ? [this.soa()] : [];
    const packet = (ans: Answer[], add: Answer[], extra = 0): Buffer => dnsPacket.encode({
      type: 'response', id: q.id, flags: flags | extra, questions: q.questions ?? [],
      answers: ans.map(toWire), authorities: soa, additionals: add.map(toWire),
    });
    const out = packet(answers, additional);
    if (transport === 'tcp') return out;
    const opt = (q.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = Math.max(CLASSIC_UDP_SIZE, Math.min(opt?.udpPayloadSize ?? CLASSIC_UDP_SIZE, 4096));
    if (out.length <= limit) return out;
    // Too large for UDP: drop the additional section, then say truncated (the client retries over TCP).
    const lean = packet(answers, []);
    return lean.length <= limit ? lean : packet([], [], dnsPacket.TRUNCATED_RESPONSE);
  }

  private soa(): WireAnswer {
    return {
      type: 'SOA', name: this.zone, ttl: this.ttl,
      data: { mname: `ns.dns.${this.zone}`, rname: `hostmaster.${this.zone}`, serial: Math.floor(Date.now() / 1000) >>> 0, refresh: 7200, retry: 1800, expire: 86400, minimum: this.ttl },
    } as WireAnswer;
  }

  /** Sends the query as it came to each upstream in turn; the first answer is relayed unchanged. */
  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const u of this.upstreams) {
      const got = await new Promise<Buffer | undefined>((resolve) => {
        const sock = dgram.createSocket(u.host.includes(':') ? 'udp6' : 'udp4');
        let finished = false;
        const done = (b?: Buffer) => {
          if (finished) return;
          finished = true;
          clearTimeout(timer);
          sock.close();
          resolve(b);
        };
        const timer = setTimeout(() => done(undefined), this.o.upstreamTimeoutMs ?? 2000);
        // Connected, so an upstream that is down (ICMP port unreachable) fails at once instead of timing out.
        sock.on('error', () => done(undefined));
        sock.on('message', (b) => {
          // Only the reply to this query (same id) counts.
          if (b.length >= 2 && msg.length >= 2 && b.readUInt16BE(0) === msg.readUInt16BE(0)) done(b);
        });
        sock.connect(u.port, u.host, () => {
          sock.send(msg, (e) => {
            if (e) done(undefined);
          });
        });
      });
      if (got) return got;
    }
    return undefined;
  }
}

function toWire(a: Answer): WireAnswer {
  return { type: a.type, name: a.name, ttl: a.ttl, class: 'IN', data: a.data } as WireAnswer;
}

/** FORMERR for a message whose header (id) can be read; silence otherwise. */
function formErr(msg: Buffer): Buffer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(2) & 0x8000) return undefined;
  const out = Buffer.alloc(12);
  out.writeUInt16BE(msg.readUInt16BE(0), 0);
  out.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x0100) | RCODE.FORMERR, 2);
  return out;
}

/** The nameservers /etc/resolv.conf names (the host's resolver), for forwarding. */
export function hostNameservers(resolvConf: string): string[] {
  return resolvConf.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((x): x is string => !!x);
}
