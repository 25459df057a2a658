// Unit tests of the pure Raft core (raft/core.ts) driven by hand: no I/O.
import t from 'tap';
import { RaftCore } from '../raft/core.ts';
import { EntryType, type Message, MessageType, Role, emptyMessage } from '../raft/types.ts';

/** A three-member cluster of cores wired by hand: persist is a no-op, messages are delivered until quiet. */
function cluster(ids = ['1', '2', '3']) {
  let seed = 1;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const cores = new Map(ids.map((id) => [id, new RaftCore(
    { id, electionTick: 10, heartbeatTick: 1, random },
    { hardState: { term: 0, vote: '', commit: 0 }, conf: { voters: ids, learners: [] }, entries: [], applied: 0 },
  )]));
  const settle = () => {
    for (let round = 0; round < 100; round++) {
      const out: Message[] = [];
      for (const c of cores.values()) {
        while (c.hasReady()) {
          const rd = c.ready();
          out.push(...rd.messages);
          c.advance(rd);
        }
      }
      if (!out.length) return;
      for (const m of out) cores.get(m.to)?.step(m);
    }
  };
  return { cores, settle };
}

function prop(from: string, to: string, data: string): Message {
  const m = emptyMessage(MessageType.Prop, from, to, 0);
  m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: Buffer.from(data) }];
  return m;
}

t.test('a Prop from a non-member is dropped, by the leader and by a follower', async (t) => {
  const { cores, settle } = cluster();
  settle();
  cores.get('1')!.campaign();
  settle();
  const leader = cores.get('1')!;
  t.equal(leader.role, Role.Leader);
  const last = leader.status().lastIndex;

  leader.step(prop('9', '1', 'forged'));
  t.equal(leader.hasReady(), false, 'the leader has nothing to do');
  t.equal(leader.status().lastIndex, last, 'nothing appended for a stranger');
  leader.step(prop('1', '1', 'claims to be the leader itself'));
  t.equal(leader.status().lastIndex, last, 'nothing appended for a Prop claiming to come from the leader');

  const follower = cores.get('2')!;
  follower.step(prop('9', '2', 'forged via a follower'));
  settle();
  t.equal(leader.status().lastIndex, last, 'a follower does not forward it under its own name');
  t.equal(leader.status().droppedProposals, 2, 'the leader counts what it dropped');
  t.equal(follower.status().droppedProposals, 1, 'the follower counts what it dropped');

  // A member's forwarded proposal still goes through.
  follower.step(prop('3', '2', 'from member 3'));
  follower.propose(Buffer.from('from member 2'));
  settle();
  t.equal(leader.status().lastIndex, last + 2, 'proposals from members are appended');
  t.equal(leader.status().commit, last + 2, 'and committed');
});
