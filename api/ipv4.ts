// IPv4 addresses and CIDRs as numbers: what the service IP allocator (in the
// server's state machine) and node IPAM (in the controller manager) share.

export interface Cidr { base: number; bits: number }

/** "a.b.c.d" as a number, or undefined when it is not a dotted-quad IPv4 address. */
export function parseIPv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((a, o) => a * 256 + o, 0);
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Parses "a.b.c.d/n" (IPv4); throws a clear error otherwise. */
export function parseCidr(text: string): Cidr {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  const ip = m ? parseIPv4(m[1]!) : undefined;
  const bits = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(bits <= 32)) throw new Error(`invalid IPv4 CIDR "${text}" (expected a.b.c.d/n)`);
  const size = 2 ** (32 - bits);
  return { base: ip - (ip % size), bits };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.bits}`;
}

/** How many addresses a CIDR holds. */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.bits);
}

/** Whether `inner` lies within `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.bits >= outer.bits && inner.base >= outer.base && inner.base + cidrSize(inner) <= outer.base + cidrSize(outer);
}
