// Peer transport: Raft messages over TCP, or mutual TLS (PeerTlsOptions).
//
// Wire format: a stream of frames, each [u32 BE length][protobuf Message]
// (see proto/raft.proto). Each member opens ONE outbound connection per peer
// and only writes to it; it only reads from the connections peers open to
// it. So there is no request/response pairing and no handshake: every
// message names its sender in `from`.
//
// Delivery is best effort by design. Raft tolerates loss, duplication and
// reordering across reconnects, and retransmits on its own (heartbeats,
// App retries, vote retries); what it cannot tolerate is a transport that
// blocks the node or grows without bound. So send() never blocks or throws,
// and a message that cannot be written soon (peer down, socket backed up) is
// dropped and counted, not buffered indefinitely.
//
// With PeerTlsOptions every connection is mutual TLS with certificates of one
// CA, and both ends check that the other is the member it claims to be: the
// certificate's common name is `flotilla-member-<id>` (memberCommonName), as
// etcd's --peer-cert-allowed-cn checks a CN. The listener refuses a
// connection that does not complete a handshake in time, presents no
// certificate, one of another CA, or one that does not name a current member
// (counted per reason, logged once a minute per source address), before it
// reads a single frame; then every frame on that connection must come `from`
// the member its certificate names. The dialer refuses a server whose
// certificate does not name the member it meant to reach. Addresses are not
// checked (no hostname verification): a member is who its certificate says,
// wherever it listens.
import { type KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { pino, type Logger } from 'pino';
import { decodeMessage, encodeMessage } from './codec.ts';
import { MessageType, type Message, type NodeId } from './types.ts';

export interface TransportOptions {
  id: NodeId;
  /** host:port to listen on; port 0 picks a free port (see `address`). */
  listen: string;
  /** Peer id -> host:port. Copied; change it later with setPeer/removePeer. */
  peers: Map<NodeId, string>;
  /**
   * The cluster this member belongs to: stamped on every message sent, and a
   * received message of another cluster is dropped (stats.foreignCluster).
   * Undefined while a joining member does not know it yet: it then adopts the
   * cluster of the first message from a known peer (onClusterId).
   */
  clusterId?: string;
  /** The cluster ID was learned from a peer (only when clusterId was undefined). */
  onClusterId?: (id: string) => void;
  /** Called once per received message, synchronously, in arrival order per connection. */
  onMessage: (m: Message) => void;
  /** An inbound connection that carried messages from `id` closed (the peer may have died). */
  onPeerDisconnected?: (id: NodeId) => void;
  logger?: Logger;
  /** Largest frame accepted or sent. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * Bytes allowed to wait per peer: queued while a connection is being
   * established, or unsent in the socket once connected. Default 4 MiB.
   * One send() larger than this still goes out if nothing else is waiting.
   */
  maxQueueBytes?: number;
  /** Mutual TLS between members; plain TCP without it. */
  tls?: PeerTlsOptions;
}

/** PEM key, certificate and CA of mutual TLS between members (see the head of this file). */
export interface PeerTlsOptions {
  key: string | Buffer;
  /** This member's certificate: CN memberCommonName(id), serverAuth and clientAuth, issued by `ca`. */
  cert: string | Buffer;
  /** The CA every member's certificate must chain to (and only it: the system roots are not trusted). */
  ca: string | Buffer;
  /** How long an inbound connection may take to complete its handshake. Default 10 s. */
  handshakeTimeoutMs?: number;
}

/** The prefix of a member certificate's common name. */
export const MEMBER_CN_PREFIX = 'flotilla-member-';

/** The common name of member `id`'s peer certificate. */
export function memberCommonName(id: NodeId): string {
  return `${MEMBER_CN_PREFIX}${id}`;
}

/** The member a certificate's common name names, or undefined. */
export function memberOfCommonName(cn: unknown): NodeId | undefined {
  if (typeof cn !== 'string' || !cn.startsWith(MEMBER_CN_PREFIX) || cn.length === MEMBER_CN_PREFIX.length) return undefined;
  return cn.slice(MEMBER_CN_PREFIX.length);
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Why the listener refused an inbound connection before reading from it (TLS only). */
export type TlsRefusal = 'tls-handshake' | 'handshake-timeout' | 'no-certificate' | 'untrusted-certificate' | 'not-a-member';

export interface TransportStats {
  /** Messages handed to a connected socket. */
  sent: number;
  /** Messages delivered to onMessage. */
  received: number;
  /** Inbound frames that did not decode, carried a local-only type, or had an oversized length. */
  badFrames: number;
  /** Outbound messages dropped: unknown peer, peer unreachable, queue full, too large. */
  dropped: number;
  /** Connection attempts after a failed or closed one. */
  reconnects: number;
  /** Inbound messages addressed to another member (e.g. a stale address); dropped. */
  misrouted: number;
  /** Inbound messages of another cluster (or none while this member has one); dropped. */
  foreignCluster: number;
  /** Inbound messages whose sender is not a known peer (or claims to be this member); dropped. */
  unknownSender: number;
  /** Inbound connections closed because a frame stopped arriving halfway (PARTIAL_FRAME_TIMEOUT_MS). */
  stalledFrames: number;
  /** Inbound connections refused because MAX_INBOUND were open. */
  refusedConnections: number;
  /** TLS: inbound connections refused before any frame was read, by reason. */
  tlsRefused: Record<TlsRefusal, number>;
  /** TLS: inbound frames whose `from` is not the member the connection's certificate names; dropped. */
  identityMismatch: number;
  /** TLS: outbound connections given up because the server's certificate did not name the member dialed. */
  wrongPeerIdentity: number;
}

const DEFAULT_MAX_FRAME = 64 * 1024 * 1024;
const DEFAULT_MAX_QUEUE = 4 * 1024 * 1024;
const BACKOFF_MIN_MS = 20;
const BACKOFF_MAX_MS = 1000;
/** A connection that lived this long counts as healthy: the next failure restarts the backoff. */
const HEALTHY_AFTER_MS = 1000;
/** Give up on a connect that neither succeeds nor fails (e.g. packets silently dropped). */
const CONNECT_TIMEOUT_MS = 5000;
/** A socket that has not drained for this long while we drop messages for it is presumed dead. */
const STALL_TIMEOUT_MS = 5000;
const KEEPALIVE_MS = 5000;
/**
 * The peer listener's time limit: a connection that started a frame and
 * then sends nothing for this long is closed (it holds up to maxFrameBytes
 * of buffer). An idle connection between frames is left alone: a member
 * that is not leading may have nothing to say for a long time.
 */
const PARTIAL_FRAME_TIMEOUT_MS = 30_000;
/** Inbound connections at most: each member needs one per peer; anything beyond a generous margin is refused. */
const MAX_INBOUND = 256;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A refused source (address) is logged at most once per this interval; the metric counts every refusal. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Sources remembered for that rate limit; beyond it the memory starts over (logging a little more, never growing). */
const REFUSAL_LOG_SOURCES = 1024;

/** Splits "host:port" or "[v6]:port". */
export function parseHostPort(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]*):(\d+)$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`invalid address "${addr}" (expected host:port)`);
  return { host: m[1] || '127.0.0.1', port };
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class TcpTransport {
  readonly id: NodeId;
  readonly stats: TransportStats = {
    sent: 0, received: 0, badFrames: 0, dropped: 0, reconnects: 0, misrouted: 0, foreignCluster: 0, unknownSender: 0,
    stalledFrames: 0, refusedConnections: 0,
    tlsRefused: { 'tls-handshake': 0, 'handshake-timeout': 0, 'no-certificate': 0, 'untrusted-certificate': 0, 'not-a-member': 0 },
    identityMismatch: 0, wrongPeerIdentity: 0,
  };

  private readonly listenAddr: string;
  private readonly onMessage: (m: Message) => void;
  private cluster: string | undefined;
  private readonly onClusterId?: (id: string) => void;
  private readonly onPeerDisconnected?: (id: NodeId) => void;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  /** What the per-peer connections share with the transport. */
  private readonly ctx: PeerContext;
  private readonly peers = new Map<NodeId, Peer>();
  /** Open inbound connections, and (with TLS) the member each one's certificate names. */
  private readonly inbound = new Map<net.Socket, NodeId | undefined>();
  private server?: net.Server;
  private readonly tls?: PeerTlsOptions;
  /** Source address → when a refusal from it was last logged. */
  private readonly refusalLogged = new Map<string, number>();
  private bound?: string;
  private stopped = false;

  constructor(opts: TransportOptions) {
    this.id = opts.id;
    this.listenAddr = opts.listen;
    this.onMessage = opts.onMessage;
    this.cluster = opts.clusterId || undefined;
    this.onClusterId = opts.onClusterId;
    this.onPeerDisconnected = opts.onPeerDisconnected;
    this.log = (opts.logger ?? pino({ name: 'raft-transport', level: 'warn' }, pino.destination(2)))
      .child({ member: opts.id });
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    if (opts.tls) checkOwnCertificate(opts.id, opts.tls);
    this.tls = opts.tls;
    this.ctx = { stats: this.stats, log: this.log, maxQueueBytes: opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE, tls: opts.tls };
    for (const [id, addr] of opts.peers) this.setPeer(id, addr);
  }

  /** The cluster this transport belongs to ('' while still to be learned). */
  get clusterId(): string {
    return this.cluster ?? '';
  }

  /** The address actually listened on (host:port), once start() resolved. */
  get address(): string {
    if (!this.bound) throw new Error('transport not started');
    return this.bound;
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('transport already started');
    const { host, port } = parseHostPort(this.listenAddr);
    const server = this.tls ? this.tlsServer(this.tls) : net.createServer((socket) => this.accept(socket));
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
    } catch (e) {
      this.server = undefined;
      throw new Error(`raft transport cannot listen on ${this.listenAddr}: ${(e as Error).message}`, { cause: e });
    }
    server.on('error', (e) => this.log.error({ err: e }, 'raft transport server error'));
    const a = server.address() as net.AddressInfo;
    this.bound = formatHostPort(a.address, a.port);
  }

  /** Sends best effort; synchronous and never throws. Messages to one peer go out in order. */
  send(msgs: Message[]): void {
    if (this.stopped) {
      this.stats.dropped += msgs.length;
      return;
    }
    // Group per destination so each peer gets one write per call.
    let byPeer: Map<Peer, Uint8Array[]> | undefined;
    for (const m of msgs) {
      const peer = this.peers.get(m.to);
      if (!peer) {
        this.stats.dropped++;
        this.log.debug({ to: m.to, type: MessageType[m.type] }, 'dropping message to unknown peer');
        continue;
      }
      let body: Uint8Array;
      try {
        m.clusterId = this.cluster;
        body = encodeMessage(m);
      } catch (e) {
        this.stats.dropped++;
        this.log.error({ err: e, to: m.to, type: MessageType[m.type] }, 'cannot encode raft message; dropped');
        continue;
      }
      if (body.length > this.maxFrameBytes) {
        this.stats.dropped++;
        this.log.warn({ to: m.to, bytes: body.length, max: this.maxFrameBytes }, 'raft message larger than maxFrameBytes; dropped');
        continue;
      }
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(body.length, 0);
      byPeer ??= new Map();
      let parts = byPeer.get(peer);
      if (!parts) byPeer.set(peer, (parts = []));
      parts.push(header, body);
    }
    if (!byPeer) return;
    for (const [peer, parts] of byPeer) {
      try {
        peer.write(Buffer.concat(parts), parts.length / 2);
      } catch (e) {
        // Should not happen; send() must not throw into the Raft loop.
        this.stats.dropped += parts.length / 2;
        this.log.error({ err: e, to: peer.id }, 'raft transport write failed');
      }
    }
  }

  /** Adds a peer or changes its address (the old connection is closed). */
  setPeer(id: NodeId, addr: string): void {
    parseHostPort(addr); // validate now, not on first send
    if (this.stopped) return;
    const old = this.peers.get(id);
    if (old?.addr === addr) return;
    old?.close();
    this.peers.set(id, new Peer(this.ctx, id, addr));
  }

  removePeer(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
    // A removed member's certificate no longer opens this port.
    for (const [socket, member] of this.inbound) if (member === id) socket.destroy();
  }

  /** Closes the listener, all connections and timers. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    for (const s of this.inbound.keys()) s.destroy();
    this.inbound.clear();
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * The listener of mutual TLS: the handshake has a deadline, and a
   * connection is handed to accept() only once its certificate proved it is
   * a current member (nothing is read from it before).
   */
  private tlsServer(o: PeerTlsOptions): tls.Server {
    const server = tls.createServer({
      key: o.key, cert: o.cert, ca: o.ca, minVersion: 'TLSv1.2',
      // Verified here rather than by rejectUnauthorized, to tell the reasons apart; nothing is read before.
      requestCert: true, rejectUnauthorized: false,
      handshakeTimeout: o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    }, (socket) => {
      const member = this.checkMember(socket);
      if (member !== undefined) this.accept(socket, member);
    });
    // Connections still in their handshake count too: at most MAX_INBOUND in all.
    server.maxConnections = MAX_INBOUND;
    server.on('drop', (d?: { remoteAddress?: string }) => {
      this.stats.refusedConnections++;
      if (this.stats.refusedConnections % 100 === 1) this.log.warn({ remote: d?.remoteAddress, max: MAX_INBOUND }, 'refusing raft connection: too many open');
    });
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      const reason: TlsRefusal = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'tls-handshake';
      this.refuse(socket, reason, err.message);
    });
    return server;
  }

  /** The member a TLS connection's certificate names, or undefined after refusing the connection. */
  private checkMember(socket: tls.TLSSocket): NodeId | undefined {
    if (this.stopped) {
      socket.destroy();
      return undefined;
    }
    const cert = socket.getPeerCertificate();
    if (!cert || !cert.raw) return this.refuse(socket, 'no-certificate', 'no client certificate');
    if (!socket.authorized) return this.refuse(socket, 'untrusted-certificate', String(socket.authorizationError), cert.subject?.CN);
    const member = memberOfCommonName(cert.subject?.CN);
    const eku = cert.ext_key_usage ?? [];
    if (member === undefined || member === this.id || !this.peers.has(member)) {
      return this.refuse(socket, 'not-a-member', 'the certificate does not name a member of this cluster', cert.subject?.CN);
    }
    if (!eku.includes(SERVER_AUTH) || !eku.includes(CLIENT_AUTH)) {
      // A member certificate serves and dials; a client certificate that happens to carry the name is not one.
      return this.refuse(socket, 'not-a-member', 'the certificate is not a peer certificate (serverAuth and clientAuth)', cert.subject?.CN);
    }
    return member;
  }

  /** Counts and closes a refused inbound connection; logs it once a minute per source address. */
  private refuse(socket: net.Socket, reason: TlsRefusal, detail: string, name?: unknown): undefined {
    this.stats.tlsRefused[reason]++;
    const source = socket.remoteAddress ?? '?';
    const now = Date.now();
    const last = this.refusalLogged.get(source);
    if (last === undefined || now - last >= REFUSAL_LOG_INTERVAL_MS) {
      if (this.refusalLogged.size >= REFUSAL_LOG_SOURCES) this.refusalLogged.clear();
      this.refusalLogged.set(source, now);
      this.log.warn({ remote: `${source}:${socket.remotePort}`, reason, detail, name, refused: this.stats.tlsRefused[reason] },
        'refusing raft connection: %s (logged once a minute per source)', reason);
    }
    socket.destroy();
    return undefined;
  }

  /** `member`: the member a TLS connection's certificate names (every frame must come from it). */
  private accept(socket: net.Socket, member?: NodeId): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.inbound.size >= MAX_INBOUND) {
      this.stats.refusedConnections++;
      if (this.stats.refusedConnections % 100 === 1) this.log.warn({ remote, open: this.inbound.size }, 'refusing raft connection: too many open');
      socket.destroy();
      return;
    }
    this.inbound.set(socket, member);
    const reader = new FrameReader(this.maxFrameBytes);
    socket.setTimeout(PARTIAL_FRAME_TIMEOUT_MS, () => {
      if (!reader.partial) return;
      this.stats.stalledFrames++;
      this.log.warn({ remote }, 'closing raft connection: a frame stopped arriving halfway');
      socket.destroy();
    });
    let badLogged = 0;
    /** Who sends on this connection (peers connect out to us to send). */
    let peer: NodeId | undefined;
    socket.setKeepAlive(true, KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      reader.push(chunk);
      for (;;) {
        let frame: Buffer | undefined;
        try {
          frame = reader.next();
        } catch (e) {
          // An absurd length: either not our protocol or a desynchronised
          // stream. Nothing after it can be trusted; drop this connection.
          this.stats.badFrames++;
          this.log.warn({ remote, err: (e as Error).message }, 'closing raft connection: oversized frame');
          socket.destroy();
          return;
        }
        if (!frame) return;
        const from = this.deliver(frame, remote, () => badLogged++ % 100 === 0, member);
        if (from !== undefined) peer = from;
      }
    });
    socket.on('error', (e) => this.log.debug({ remote, err: e.message }, 'inbound raft connection error'));
    socket.on('close', () => {
      this.inbound.delete(socket);
      if (peer !== undefined && !this.stopped) this.onPeerDisconnected?.(peer);
    });
  }

  /** Decodes and hands one frame on; returns the sender of a good frame. */
  private deliver(frame: Buffer, remote: string, shouldLog: () => boolean, member?: NodeId): NodeId | undefined {
    let m: Message;
    try {
      m = decodeMessage(frame);
      if (m.type === MessageType.Hup || m.type === MessageType.Beat) {
        // Local-only types would let anyone who can connect trigger an
        // election or heartbeat round; they never travel between members.
        throw new Error(`local-only message type ${MessageType[m.type]} on the wire`);
      }
    } catch (e) {
      // A frame boundary was intact (the length was sane), so the stream is
      // still in sync: drop this frame and keep the connection.
      this.stats.badFrames++;
      if (shouldLog()) this.log.warn({ remote, bytes: frame.length, err: (e as Error).message }, 'dropping bad raft frame');
      return;
    }
    if (member !== undefined && m.from !== member) {
      // A member speaks for itself only: its certificate, not `from`, says who it is.
      this.stats.identityMismatch++;
      if (shouldLog()) this.log.warn({ remote, from: m.from, certificate: member }, 'dropping raft message whose sender is not the member of the connection\'s certificate');
      return;
    }
    if (m.to !== this.id) {
      this.stats.misrouted++;
      if (shouldLog()) this.log.warn({ remote, from: m.from, to: m.to }, 'dropping raft message addressed to another member');
      return;
    }
    if (this.cluster === undefined && m.clusterId && this.peers.has(m.from)) {
      // A joining member learns its cluster from the first message a peer it
      // was told about sends it (trust on first use; persisted by the caller).
      this.cluster = m.clusterId;
      this.log.info({ cluster: m.clusterId, from: m.from }, 'learned the raft cluster ID from a peer');
      this.onClusterId?.(m.clusterId);
    }
    if (m.clusterId !== this.cluster || this.cluster === undefined) {
      this.stats.foreignCluster++;
      if (shouldLog()) {
        this.log.warn({ remote, from: m.from, cluster: m.clusterId ?? '', ours: this.cluster ?? '' }, 'dropping raft message of another cluster');
      }
      return;
    }
    if (!this.peers.has(m.from)) {
      // Not a member we know (a removed member, a stray process): Raft
      // trusts `from`, so only known peers may speak.
      this.stats.unknownSender++;
      if (shouldLog()) this.log.warn({ remote, from: m.from, type: MessageType[m.type] }, 'dropping raft message from an unknown sender');
      return;
    }
    this.stats.received++;
    try {
      this.onMessage(m);
    } catch (e) {
      this.log.error({ err: e, from: m.from, type: MessageType[m.type] }, 'raft onMessage handler threw');
    }
    return m.from;
  }
}

/**
 * Incremental frame parser. Keeps received chunks in a list and copies each
 * byte at most once (only frames that straddle chunks are copied), so many
 * small frames per chunk and one huge frame over many chunks are both linear.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  /** Read offset into chunks[0]. */
  private head = 0;
  /** Unread bytes across all chunks. */
  private size = 0;
  /** Length of the frame being read, or -1 while waiting for its header. */
  private need = -1;

  constructor(private readonly maxFrameBytes: number) {}

  /** Whether part of a frame (its length or some of its body) has arrived and the rest has not. */
  get partial(): boolean {
    return this.need >= 0 || this.size > 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next complete frame body, or undefined; throws if a length exceeds maxFrameBytes. */
  next(): Buffer | undefined {
    if (this.need < 0) {
      if (this.size < 4) return undefined;
      const len = this.take(4).readUInt32BE(0);
      if (len > this.maxFrameBytes) throw new Error(`frame length ${len} exceeds ${this.maxFrameBytes}`);
      this.need = len;
    }
    if (this.size < this.need) return undefined;
    const frame = this.take(this.need);
    this.need = -1;
    return frame;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (n === 0) return Buffer.alloc(0);
    if (first.length - this.head >= n) {
      // Fast path: inside one chunk, no copy.
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - filled, c.length - this.head);
      c.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.advance(k);
    }
    return out;
  }

  private advance(n: number): void {
    this.size -= n;
    this.head += n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}

type PeerState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

interface PeerContext {
  stats: TransportStats;
  log: Logger;
  maxQueueBytes: number;
  tls?: PeerTlsOptions;
}

/** Fails unless `o.cert` is member `id`'s peer certificate issued by `o.ca` (a wrong file stops the member at start). */
export function checkOwnCertificate(id: NodeId, o: PeerTlsOptions): void {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(o.cert);
    ca = new X509Certificate(o.ca);
  } catch (e) {
    throw new Error(`raft peer TLS: cannot read the certificate or the CA: ${(e as Error).message}`, { cause: e });
  }
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  if (cn !== memberCommonName(id)) throw new Error(`raft peer TLS: the certificate's common name is "${cn ?? ''}", not "${memberCommonName(id)}" (this member)`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error('raft peer TLS: the certificate was not issued by the trusted CA');
  if (!cert.checkPrivateKey(createPrivateKeyOrThrow(o.key))) throw new Error('raft peer TLS: the key does not belong to the certificate');
  const eku = cert.keyUsage ?? [];
  if (!eku.includes(SERVER_AUTH) || !eku.includes(CLIENT_AUTH)) throw new Error('raft peer TLS: the certificate must allow both serverAuth and clientAuth (a peer certificate)');
}

function createPrivateKeyOrThrow(key: string | Buffer): KeyObject {
  try {
    return createPrivateKey(key);
  } catch (e) {
    throw new Error(`raft peer TLS: cannot read the key: ${(e as Error).message}`, { cause: e });
  }
}

/** The outbound side for one peer: a single lazily (re)connected socket. */
class Peer {
  private state: PeerState = 'idle';
  private socket?: net.Socket;
  private timer?: NodeJS.Timeout;
  /** Writes waiting for the connection being established. */
  private queue: Buffer[] = [];
  private queueMsgs = 0;
  private queueBytes = 0;
  private attempts = 0;
  private everConnected = false;
  private connectedAt = 0;
  /** Messages were dropped during backoff: reconnect as soon as the timer allows. */
  private wanted = false;
  /** When we started dropping because the connected socket did not drain. */
  private stalledSince = 0;
  /** A TLS failure to this peer was logged; quiet until it connects again. */
  private tlsWarned = false;

  constructor(private readonly t: PeerContext, readonly id: NodeId, readonly addr: string) {}

  write(buf: Buffer, msgs: number): void {
    const stats = this.t.stats;
    switch (this.state) {
      case 'connected': {
        const socket = this.socket!;
        const pending = socket.writableLength;
        if (pending > 0 && pending + buf.length > this.t.maxQueueBytes) {
          // The peer (or the network) is not keeping up. Buffering more
          // would only delay fresher messages; Raft will resend. (A write
          // bigger than the budget still goes out when nothing is pending.)
          stats.dropped += msgs;
          const now = Date.now();
          if (!this.stalledSince) this.stalledSince = now;
          else if (now - this.stalledSince > STALL_TIMEOUT_MS) {
            this.t.log.warn({ peer: this.id, addr: this.addr }, 'raft connection stalled; reconnecting');
            socket.destroy();
          }
          return;
        }
        socket.write(buf);
        stats.sent += msgs;
        return;
      }
      case 'idle':
        this.connect();
        this.enqueue(buf, msgs);
        return;
      case 'connecting':
        this.enqueue(buf, msgs);
        return;
      case 'backoff':
        stats.dropped += msgs;
        this.wanted = true;
        return;
      case 'closed':
        stats.dropped += msgs;
        return;
    }
  }

  /** Holds a write until the connection being established is up (bounded). */
  private enqueue(buf: Buffer, msgs: number): void {
    if (this.queueBytes > 0 && this.queueBytes + buf.length > this.t.maxQueueBytes) {
      this.t.stats.dropped += msgs;
      return;
    }
    this.queue.push(buf);
    this.queueBytes += buf.length;
    this.queueMsgs += msgs;
  }

  private connect(): void {
    if (this.everConnected || this.attempts > 0) this.t.stats.reconnects++;
    this.state = 'connecting';
    this.wanted = false;
    const { host, port } = parseHostPort(this.addr);
    const o = this.t.tls;
    const socket = o
      ? tls.connect({
        host, port, key: o.key, cert: o.cert, ca: o.ca, minVersion: 'TLSv1.2',
        // The server must be the member meant, whatever address it answers on.
        checkServerIdentity: (_host, cert) => {
          if (memberOfCommonName(cert.subject?.CN) === this.id) return undefined;
          this.t.stats.wrongPeerIdentity++;
          return new Error(`the server at ${this.addr} presented "${String(cert.subject?.CN)}", not member ${this.id}'s certificate`);
        },
      })
      : net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_MS });
    if (o) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_MS);
    }
    this.socket = socket;
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error('connect timeout')));
    socket.once(o ? 'secureConnect' : 'connect', () => {
      if (this.socket !== socket) return;
      socket.setTimeout(0);
      this.state = 'connected';
      this.everConnected = true;
      this.tlsWarned = false;
      this.connectedAt = Date.now();
      this.stalledSince = 0;
      this.t.log.debug({ peer: this.id, addr: this.addr }, 'raft connection up');
      if (this.queue.length) {
        // One writev for everything that waited.
        socket.cork();
        for (const b of this.queue) socket.write(b);
        socket.uncork();
        this.t.stats.sent += this.queueMsgs;
      }
      this.clearQueue();
    });
    socket.on('drain', () => { this.stalledSince = 0; });
    // Peers never write to this connection; reading keeps us informed of
    // their FIN/RST promptly and discards anything unexpected.
    socket.resume();
    socket.on('error', (e: Error & { code?: string }) => {
      if (this.socket !== socket) return;
      // A TLS failure (a wrong certificate on either side) is a configuration problem worth one warning per peer until it connects.
      const tlsProblem = o && (e.code?.startsWith('ERR_SSL') || e.code?.startsWith('ERR_TLS') || /certificate|ssl|tls|presented/i.test(e.message));
      if (tlsProblem && !this.tlsWarned) {
        this.tlsWarned = true;
        this.t.log.warn({ peer: this.id, addr: this.addr, err: e.message }, 'raft TLS connection to a peer failed');
      } else this.t.log.debug({ peer: this.id, addr: this.addr, err: e.message }, 'raft connection error');
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.disconnected();
    });
  }

  private disconnected(): void {
    if (this.state === 'closed') return;
    if (this.queueMsgs) {
      this.t.stats.dropped += this.queueMsgs;
      this.clearQueue();
    }
    if (this.connectedAt && Date.now() - this.connectedAt > HEALTHY_AFTER_MS) this.attempts = 0;
    this.connectedAt = 0;
    // Exponential backoff with jitter (so members restarting together do not
    // reconnect in lockstep): 20 ms, 40 ms, ... capped at 1 s, each * [0.5, 1).
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempts);
    const delay = ceiling * (0.5 + Math.random() / 2);
    this.attempts++;
    this.state = 'backoff';
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== 'backoff') return;
      this.state = 'idle';
      // Reconnect only if someone wanted to talk meanwhile; otherwise the
      // next send() will (lazy connect).
      if (this.wanted) this.connect();
    }, delay);
  }

  private clearQueue(): void {
    this.queue = [];
    this.queueBytes = 0;
    this.queueMsgs = 0;
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.t.stats.dropped += this.queueMsgs;
    this.clearQueue();
    const s = this.socket;
    this.socket = undefined;
    s?.destroy();
  }
}
