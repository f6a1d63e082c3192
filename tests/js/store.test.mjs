import assert from "node:assert/strict";
import { test } from "node:test";

import { Outbox, REMOVED, Rooms, Timeline } from "../../chat/static/chat/js/store.js";

const message = (seq, extra = {}) => ({
  messageId: `m${seq}`,
  chatRoomId: "r",
  senderId: "bob",
  content: `text ${seq}`,
  messageType: "user",
  timestamp: 1000 + seq,
  createdAt: new Date(1000 + seq).toISOString(),
  seq,
  ...extra,
});
const seqs = (timeline) => timeline.ordered().map((m) => m.seq);

test("messages are ordered by seq whatever order they arrive in", () => {
  const timeline = new Timeline();
  timeline.add([message(3), message(1)]);
  timeline.add([message(2)]);
  assert.deepEqual(seqs(timeline), [1, 2, 3]);
});

test("a message held already is not added twice (live frame, then the same seq from catch-up)", () => {
  const timeline = new Timeline();
  assert.equal(timeline.add([message(1), message(2)]), true);
  assert.equal(timeline.add([message(2), message(1)]), false);
  timeline.add([message(2), message(3)]);
  assert.deepEqual(seqs(timeline), [1, 2, 3]);
});

test("legacy messages without seq are kept once, by id, before numbered ones", () => {
  const timeline = new Timeline();
  timeline.add([message(1), { ...message(null), messageId: "old", timestamp: 5 }]);
  timeline.add([{ ...message(null), messageId: "old", timestamp: 5 }]);
  assert.deepEqual(timeline.ordered().map((m) => m.messageId), ["old", "m1"]);
});

test("a gap in seq is reported until a catch-up fills it", () => {
  const timeline = new Timeline();
  timeline.add([message(1), message(2)], { contiguous: true });
  assert.equal(timeline.gapAfter(), null);
  timeline.add([message(5)]);
  assert.equal(timeline.gapAfter(), 2);
  timeline.add([message(3)]);
  assert.equal(timeline.gapAfter(), 3);
  // the catch-up after 3 found 5 only: 4 was a failed send's seq, never stored
  timeline.add([message(5)], { contiguous: true });
  assert.equal(timeline.gapAfter(), null);
  timeline.add([message(6)]);
  assert.equal(timeline.gapAfter(), null);
});

test("read marks: 'read' in a direct room once the other read past it, 'read by N' in a group", () => {
  const timeline = new Timeline();
  const own = message(2, { senderId: "me" });
  timeline.add([message(1), own]);
  assert.equal(timeline.readMark(own, "me", ["me", "bob"], "direct"), "sent");
  timeline.raise("bob", 2);
  assert.equal(timeline.readMark(own, "me", ["me", "bob"], "direct"), "read");
  assert.equal(timeline.readMark(own, "me", ["me", "bob", "carol", "dan"], "group"), "read by 1");
  timeline.add([message(3, { readBy: ["me", "carol", "dan"] })]);
  assert.equal(timeline.readMark(own, "me", ["me", "bob", "carol", "dan"], "group"), "read by 3");
  timeline.raise("bob", 1); // a watermark never moves back
  assert.equal(timeline.readMark(own, "me", ["me", "bob"], "direct"), "read");
});

test("optimistic send: sending, then replaced by the server's message on the ack matched by clientMessageId", () => {
  const timeline = new Timeline();
  let n = 0;
  const outbox = new Outbox(() => `tab-${++n}`);
  const first = outbox.create(timeline, "r", "me", "same text");
  const second = outbox.create(timeline, "r", "me", "same text");
  assert.equal(outbox.next([timeline]), first);
  assert.equal(first.state, "sending");
  assert.equal(outbox.next([timeline]), null, "one send at a time");
  // the server's message frame comes before the ack
  timeline.add([message(7, { senderId: "me", content: "same text", messageId: "srv-1" })]);
  assert.equal(outbox.acked(timeline, { clientMessageId: "tab-1", messageId: "srv-1", chatRoomId: "r", seq: 7, timestamp: 2000 }), true);
  assert.deepEqual(timeline.pending, [second], "matched by id, not by the identical content");
  assert.deepEqual(seqs(timeline), [7, undefined]);
  assert.equal(outbox.next([timeline]), second);
});

test("a duplicate ack (retry of a send that was stored) adds the message once", () => {
  const timeline = new Timeline();
  const outbox = new Outbox(() => "tab-1");
  outbox.create(timeline, "r", "me", "hello");
  outbox.next([timeline]);
  outbox.acked(timeline, { clientMessageId: "tab-1", messageId: "srv", chatRoomId: "r", seq: 4, timestamp: 2000, duplicate: true });
  assert.deepEqual(timeline.ordered().map((m) => [m.seq, m.content, m.senderId]), [[4, "hello", "me"]]);
  timeline.add([message(4, { senderId: "me", content: "hello" })]);
  assert.equal(timeline.ordered().length, 1);
});

test("a failed send shows 'not sent' and its retry reuses the same clientMessageId", () => {
  const timeline = new Timeline();
  let n = 0;
  const outbox = new Outbox(() => `tab-${++n}`);
  const pending = outbox.create(timeline, "r", "me", "hello");
  outbox.next([timeline]);
  outbox.failed("not sent: too fast");
  assert.equal(pending.state, "failed");
  assert.equal(pending.error, "not sent: too fast");
  assert.equal(outbox.next([timeline]), null, "a failed send waits for its retry");
  outbox.retry(pending);
  const again = outbox.next([timeline]);
  assert.equal(again, pending);
  assert.equal(again.clientMessageId, "tab-1");
});

test("a dropped connection fails every waiting send", () => {
  const timeline = new Timeline();
  let n = 0;
  const outbox = new Outbox(() => `tab-${++n}`);
  const a = outbox.create(timeline, "r", "me", "a");
  const b = outbox.create(timeline, "r", "me", "b");
  outbox.next([timeline]);
  outbox.failAll([timeline], "not sent: the connection dropped");
  assert.deepEqual([a.state, b.state], ["failed", "failed"]);
  assert.equal(outbox.inFlight, null);
});

test("room list: newest activity first, unread from the watermark, own messages never unread", () => {
  const rooms = new Rooms("me");
  rooms.load([
    { chatRoomId: "old", name: "Old", type: "group", participantIds: ["me", "x"], createdAt: "2026-01-01T00:00:00.000Z", lastSeq: 2, unreadCount: 0, lastMessageAt: "2026-01-02T00:00:00.000Z", onlineParticipantIds: [] },
    { chatRoomId: "new", name: "New", type: "direct", participantIds: ["me", "bob"], createdAt: "2026-01-03T00:00:00.000Z", lastSeq: 5, unreadCount: 2, lastMessageAt: "2026-01-04T00:00:00.000Z", onlineParticipantIds: ["bob"] },
  ]);
  assert.deepEqual(rooms.list().map((r) => r.chatRoomId), ["new", "old"]);
  assert.equal(rooms.unread("new"), 2);
  assert.equal(rooms.anyoneOnline("new"), true);
  assert.equal(rooms.anyoneOnline("old"), false);
  rooms.noteMessage({ ...message(3), chatRoomId: "old", createdAt: "2026-01-05T00:00:00.000Z" });
  assert.deepEqual(rooms.list().map((r) => r.chatRoomId), ["old", "new"]);
  assert.equal(rooms.unread("old"), 1);
  assert.equal(rooms.byId.get("old").lastMessage, "text 3");
  rooms.noteMessage({ ...message(4), chatRoomId: "old", senderId: "me" });
  assert.equal(rooms.unread("old"), 0);
  rooms.noteRead("new", "me", 5);
  assert.equal(rooms.unread("new"), 0);
  rooms.noteRead("new", "me", 3);
  assert.equal(rooms.unread("new"), 0);
  rooms.noteMessage({ ...message(2), chatRoomId: "new" }); // an old seq from catch-up moves nothing back
  assert.equal(rooms.byId.get("new").lastSeq, 5);
});

test("reloading the room list drops rooms left meanwhile", () => {
  const rooms = new Rooms("me");
  const room = (id) => ({ chatRoomId: id, name: id, type: "group", participantIds: ["me"], createdAt: "", lastSeq: 0, unreadCount: 0 });
  rooms.load([room("a"), room("b")]);
  rooms.timeline("b");
  rooms.load([room("a")]);
  assert.deepEqual([...rooms.byId.keys()], ["a"]);
  assert.equal(rooms.timelines.has("b"), false);
});

test("a removed message stays as a tombstone, and the preview says so", () => {
  const rooms = new Rooms("me");
  rooms.load([{ chatRoomId: "r", name: "R", type: "group", participantIds: ["me", "bob"], createdAt: "", lastSeq: 2, unreadCount: 0 }]);
  const timeline = rooms.timeline("r");
  timeline.add([message(1), message(2)], { contiguous: true });
  rooms.noteMessage(message(2));
  rooms.noteRemoved("r", "m2", 2);
  assert.deepEqual(timeline.ordered().map((m) => [m.seq, m.content, !!m.removed]), [[1, "text 1", false], [2, "", true]]);
  assert.equal(rooms.byId.get("r").lastMessage, REMOVED);
  rooms.noteRemoved("r", "other-id", 1); // a seq and id that do not match remove nothing
  assert.equal(timeline.bySeq.get(1).content, "text 1");
  timeline.add([message(2, { content: "text 2" })]); // a late copy does not bring the text back
  assert.equal(timeline.bySeq.get(2).content, "");
});

test("a room list read before live messages does not move the room back", () => {
  const rooms = new Rooms("me");
  const listing = { chatRoomId: "r", name: "R", type: "group", participantIds: ["me", "bob"], createdAt: "", lastSeq: 3, unreadCount: 1, lastMessage: "text 3" };
  rooms.load([listing]);
  rooms.noteMessage(message(4));
  rooms.noteMessage(message(5, { senderId: "me" }));
  rooms.load([listing]); // answered after those frames
  assert.equal(rooms.byId.get("r").lastSeq, 5);
  assert.equal(rooms.byId.get("r").lastMessage, "text 5");
  assert.equal(rooms.unread("r"), 0);
  rooms.load([{ ...listing, lastSeq: 7, unreadCount: 2, lastMessage: "text 7" }]); // newer than what was seen
  assert.equal(rooms.byId.get("r").lastMessage, "text 7");
  assert.equal(rooms.unread("r"), 2);
});

test("the sender's own copy, just before its ack, never shows beside the bubble", () => {
  const timeline = new Timeline();
  const outbox = new Outbox(() => "tab-1");
  outbox.create(timeline, "r", "me", "hi");
  outbox.next([timeline]);
  const copy = message(9, { senderId: "me", content: "hi", messageId: "srv" });
  assert.equal(outbox.hold(copy), true);
  assert.equal(timeline.ordered().length, 1, "only the bubble while the ack is on its way");
  outbox.acked(timeline, { clientMessageId: "tab-1", messageId: "srv", chatRoomId: "r", seq: 9, timestamp: 2000 });
  assert.deepEqual(timeline.ordered(), [copy]);
  assert.equal(outbox.held, null);
});

test("an own message from another tab is held only while a send is in flight in that room", () => {
  const timeline = new Timeline();
  const outbox = new Outbox(() => "tab-1");
  assert.equal(outbox.hold(message(1, { senderId: "me" })), false, "nothing in flight");
  outbox.create(timeline, "r", "me", "hi");
  outbox.next([timeline]);
  assert.equal(outbox.hold(message(2, { senderId: "me", chatRoomId: "elsewhere" })), false);
  const other = message(2, { senderId: "me" });
  assert.equal(outbox.hold(other), true);
  assert.equal(outbox.release(), other, "the next frame was not its ack: shown as it is");
});
