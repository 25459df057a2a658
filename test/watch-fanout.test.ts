// Field-selector matching in watches parses each event's object once for
// all watchers (a few recent parses are shared), not once per watcher.
import t from 'tap';
import { parsedOnce } from '../apiserver/http/watch.ts';
import { matchesFields, parseFieldSelector } from '../api/selectors.ts';

t.test('parsedOnce shares a parse between watchers and never mixes objects up', async (t) => {
  const a = JSON.stringify({ metadata: { name: 'a', resourceVersion: '1' }, spec: { nodeName: 'n1' } });
  const b = JSON.stringify({ metadata: { name: 'b', resourceVersion: '2' }, spec: { nodeName: 'n2' } });
  const a1 = parsedOnce(a);
  t.equal(parsedOnce(a), a1, 'same text: the same parsed object');
  t.equal(parsedOnce(b).metadata?.name, 'b');
  t.equal(parsedOnce(a), a1, 'the event and its previous version alternate without re-parsing');
  // An equal text held in another string still maps to an equal object.
  t.same(parsedOnce(JSON.parse(JSON.stringify(a)) as string), a1);
  const sel = parseFieldSelector('spec.nodeName=n2');
  t.notOk(matchesFields(sel, parsedOnce(a)));
  t.ok(matchesFields(sel, parsedOnce(b)));
  for (let i = 0; i < 10; i++) parsedOnce(JSON.stringify({ metadata: { name: `x${i}` } }));
  t.equal(parsedOnce(b).metadata?.name, 'b', 'evicted entries are parsed again, correctly');
});
