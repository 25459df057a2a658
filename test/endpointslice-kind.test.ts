// discovery.k8s.io/v1 EndpointSlice: defaulting, validation and kubectl's columns.
import t from 'tap';
import { kindByName, validateObject } from '../api/kinds/index.ts';
import type { KubeObject } from '../api/schema/types.ts';

const kind = kindByName('endpointslices.discovery.k8s.io')!;
const NOW = Date.parse('2026-01-01T00:00:00Z');

function slice(over: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'web-x1', namespace: 'default', creationTimestamp: new Date(NOW - 65_000).toISOString() },
    addressType: 'IPv4', endpoints: [{ addresses: ['127.64.0.2'] }], ports: [{ name: 'http', port: 80 }],
    ...over,
  };
}

const causes = (o: KubeObject, old?: KubeObject) => {
  kind.default(o);
  return validateObject(kind, o, old).map((c) => `${c.reason} ${c.field}`);
};

t.test('defaults: port name "" and protocol TCP; missing endpoints become []', async (t) => {
  const o = slice({ endpoints: undefined, ports: [{ port: 80 }] });
  kind.default(o);
  t.same(o.ports, [{ port: 80, name: '', protocol: 'TCP' }]);
  t.same(o.endpoints, []);
});

t.test('validation facts', async (t) => {
  const many = (n: number, f: (i: number) => unknown) => Array.from({ length: n }, (_, i) => f(i));
  const cases: [string, KubeObject, string[]][] = [
    ['valid IPv4 slice', slice(), []],
    ['addressType is required', slice({ addressType: undefined }), ['FieldValueRequired addressType']],
    ['addressType must be IPv4, IPv6 or FQDN', slice({ addressType: 'IPX' }), ['FieldValueNotSupported addressType']],
    ['an IPv4 slice holds IPv4 addresses only', slice({ endpoints: [{ addresses: ['::1'] }] }), ['FieldValueInvalid endpoints[0].addresses[0]']],
    ['an IPv6 slice holds IPv6 addresses only', slice({ addressType: 'IPv6', endpoints: [{ addresses: ['127.0.0.1'] }] }), ['FieldValueInvalid endpoints[0].addresses[0]']],
    ['FQDN addresses are DNS subdomains', slice({ addressType: 'FQDN', endpoints: [{ addresses: ['Not_A_Host'] }] }), ['FieldValueInvalid endpoints[0].addresses[0]']],
    ['an endpoint needs an address', slice({ endpoints: [{ addresses: [] }] }), ['FieldValueRequired endpoints[0].addresses']],
    ['at most 1000 endpoints', slice({ endpoints: many(1001, (i) => ({ addresses: [`127.64.${i >> 8}.${i & 255}`] })) }), ['FieldValueTooMany endpoints']],
    ['1000 endpoints are fine', slice({ endpoints: many(1000, (i) => ({ addresses: [`127.64.${i >> 8}.${i & 255}`] })) }), []],
    ['port names are unique', slice({ ports: [{ name: 'a', port: 1 }, { name: 'a', port: 2 }] }), ['FieldValueDuplicate ports[1].name']],
    ['port names are DNS labels', slice({ ports: [{ name: 'A_B', port: 1 }] }), ['FieldValueInvalid ports[0].name']],
    ['protocols are TCP, UDP or SCTP', slice({ ports: [{ name: 'a', port: 1, protocol: 'ICMP' }] }), ['FieldValueNotSupported ports[0].protocol']],
    ['port numbers are in range', slice({ ports: [{ name: 'a', port: 70000 }] }), ['FieldValueInvalid ports[0].port']],
    ['hostname is a DNS label', slice({ endpoints: [{ addresses: ['127.64.0.2'], hostname: 'a.b' }] }), ['FieldValueInvalid endpoints[0].hostname']],
  ];
  for (const [name, o, want] of cases) t.same(causes(o), want, name);
  const old = slice();
  kind.default(old);
  t.same(causes(slice({ addressType: 'IPv6', endpoints: [] }), old), ['FieldValueInvalid addressType'], 'addressType is immutable');
});

t.test('table columns as kubectl prints them', async (t) => {
  const cells = (o: KubeObject) => Object.fromEntries(kind.columns.map((c) => [c.name, c.cell(o, NOW)]));
  t.same(cells(slice()), { AddressType: 'IPv4', Ports: '80', Endpoints: '127.64.0.2', Age: '65s' });
  t.same(cells(slice({ endpoints: [], ports: [] })), { AddressType: 'IPv4', Ports: '<unset>', Endpoints: '<unset>', Age: '65s' });
  const eps = ['127.64.0.2', '127.64.0.3', '127.64.0.4', '127.64.0.5', '127.64.0.6'].map((a) => ({ addresses: [a] }));
  const ports = [{ port: 1 }, { name: 'named' }, {}, { port: 4 }];
  t.same(cells(slice({ endpoints: eps, ports })), {
    AddressType: 'IPv4', Ports: '1,named,* + 1 more...', Endpoints: '127.64.0.2,127.64.0.3,127.64.0.4 + 2 more...', Age: '65s',
  });
});
