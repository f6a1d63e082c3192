// What the page knows: the user's rooms and, per room, the messages it has
// loaded, kept by seq (the server's order), each once; sends waiting for
// their ack; everybody's read watermarks. No DOM here: the views read it.

export const REMOVED = "Message removed";

/** One room's messages by seq, its optimistic sends and read watermarks. */
export class Timeline {
  constructor() {
    this.bySeq = new Map(); // seq -> message
    this.legacy = new Map(); // messageId -> message (the original system's: seq null)
    this.pending = []; // optimistic sends, oldest first
    this.watermarks = new Map(); // userId -> read seq
    this.loaded = false; // the newest page was fetched
    this.hasOlder = true;
    this.knownThrough = 0; // every seq up to here that exists is held
  }

  /** Adds server messages; ones already held are ignored. True if any was new. */
  add(messages, { contiguous = false } = {}) {
    let added = false;
    for (const message of messages) {
      if (message.seq === null || message.seq === undefined) {
        if (!this.legacy.has(message.messageId)) {
          this.legacy.set(message.messageId, message);
          added = true;
        }
      } else if (!this.bySeq.has(message.seq)) {
        this.bySeq.set(message.seq, message);
        added = true;
      }
      if (message.seq != null) {
        this.raise(message.senderId, message.seq); // a sender has read their own message
        for (const reader of message.readBy || []) this.raise(reader, message.seq);
      }
    }
    if (contiguous) this.knownThrough = Math.max(this.knownThrough, this.newestSeq());
    else this.advanceKnown();
    return added;
  }

  advanceKnown() {
    while (this.bySeq.has(this.knownThrough + 1)) this.knownThrough += 1;
  }

  /** The seq a catch-up must start after: held messages newer than it lie past a gap. */
  gapAfter() {
    return this.newestSeq() > this.knownThrough ? this.knownThrough : null;
  }

  newestSeq() {
    let newest = 0;
    for (const seq of this.bySeq.keys()) if (seq > newest) newest = seq;
    return newest;
  }

  oldestSeq() {
    let oldest = null;
    for (const seq of this.bySeq.keys()) if (oldest === null || seq < oldest) oldest = seq;
    return oldest;
  }

  /** Staff removed a message: it stays, as a tombstone without its text. */
  removed(seq, messageId) {
    const message = seq != null ? this.bySeq.get(seq) : this.legacy.get(messageId);
    if (!message || message.messageId !== messageId) return false;
    message.removed = true;
    message.content = "";
    return true;
  }

  raise(userId, seq) {
    if (!userId || userId === "system") return;
    if ((this.watermarks.get(userId) || 0) < seq) this.watermarks.set(userId, seq);
  }

  /** Server messages oldest first (legacy ones by timestamp, before seq'd ones), then pending sends. */
  ordered() {
    const legacy = [...this.legacy.values()].sort((a, b) => a.timestamp - b.timestamp);
    const numbered = [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return [...legacy, ...numbered, ...this.pending];
  }

  /** "read", "read by N" or "sent", for an own message in a room with these participants. */
  readMark(message, selfId, participantIds, type) {
    const others = participantIds.filter((id) => id !== selfId);
    const readers = others.filter((id) => (this.watermarks.get(id) || 0) >= message.seq).length;
    if (type === "direct") return readers > 0 ? "read" : "sent";
    return readers > 0 ? `read by ${readers}` : "sent";
  }
}

/** Optimistic sends: shown at once, matched to the server's ack by clientMessageId only. */
export class Outbox {
  constructor(newId) {
    this.newId = newId;
    this.inFlight = null; // the one send awaiting its answer on the socket
    this.held = null; // an own message frame that may be the in-flight send's copy
  }

  /**
   * The sending socket gets its own message frame just before the ack. An
   * own message in the room of the in-flight send is held until the next
   * frame: the ack naming it (then it replaces the bubble in one step, never
   * shown twice), or anything else (then it was another tab's: release it).
   */
  hold(message) {
    if (!this.inFlight || this.held || this.inFlight.chatRoomId !== message.chatRoomId) return false;
    this.held = message;
    return true;
  }

  release() {
    const held = this.held;
    this.held = null;
    return held;
  }

  /** A new pending message in the timeline, state "sending". */
  create(timeline, roomId, senderId, content) {
    const pending = {
      clientMessageId: this.newId(),
      chatRoomId: roomId,
      senderId,
      content,
      messageType: "user",
      state: "queued",
      timestamp: Date.now(),
      error: null,
    };
    timeline.pending.push(pending);
    return pending;
  }

  /** The next pending send to put on the socket, if none is awaiting its answer. */
  next(timelines) {
    if (this.inFlight) return null;
    for (const timeline of timelines) {
      const waiting = timeline.pending.find((p) => p.state === "queued");
      if (waiting) {
        waiting.state = "sending";
        this.inFlight = waiting;
        return waiting;
      }
    }
    return null;
  }

  /**
   * The ack for clientMessageId: the pending message leaves the timeline
   * and the server's copy (already there from its message frame, or built
   * from the ack of a duplicate retry) takes its place.
   */
  acked(timeline, ack) {
    const index = timeline.pending.findIndex((p) => p.clientMessageId === ack.clientMessageId);
    if (index < 0) return false;
    const [pending] = timeline.pending.splice(index, 1);
    if (this.inFlight === pending) this.inFlight = null;
    if (this.held && this.held.messageId === ack.messageId) timeline.add([this.release()]);
    if (!timeline.bySeq.has(ack.seq)) {
      timeline.add([
        {
          messageId: ack.messageId,
          chatRoomId: ack.chatRoomId,
          senderId: pending.senderId,
          content: pending.content,
          messageType: "user",
          timestamp: ack.timestamp,
          createdAt: new Date(ack.timestamp).toISOString(),
          seq: ack.seq,
        },
      ]);
    }
    return true;
  }

  /** The in-flight send was refused (error frame) or its socket closed: "not sent". */
  failed(reason) {
    const pending = this.inFlight;
    this.inFlight = null;
    if (pending) {
      pending.state = "failed";
      pending.error = reason;
    }
    return pending;
  }

  /** Every send still waiting fails (the socket closed before they went out). */
  failAll(timelines, reason) {
    this.failed(reason);
    for (const timeline of timelines) {
      for (const pending of timeline.pending) {
        if (pending.state !== "failed") {
          pending.state = "failed";
          pending.error = reason;
        }
      }
    }
  }

  /** Retry a failed send: queued again, with the same clientMessageId. */
  retry(pending) {
    if (pending.state === "failed") {
      pending.state = "queued";
      pending.error = null;
    }
  }
}

/** The room list: newest activity first, with unread counts and previews. */
export class Rooms {
  constructor(selfId) {
    this.selfId = selfId;
    this.byId = new Map();
    this.timelines = new Map();
    this.online = new Set();
  }

  timeline(roomId) {
    if (!this.timelines.has(roomId)) this.timelines.set(roomId, new Timeline());
    return this.timelines.get(roomId);
  }

  /**
   * The HTTP room list updates what is known of each room and drops rooms
   * left meanwhile; live frames newer than the list (it may have been read
   * just before them) keep their preview and read state.
   */
  load(listings) {
    const seen = new Set();
    for (const listing of listings) {
      seen.add(listing.chatRoomId);
      const known = this.byId.get(listing.chatRoomId);
      const lastSeq = listing.lastSeq || 0;
      const room = { ...listing, lastSeq, readSeq: lastSeq - (listing.unreadCount || 0) };
      if (known && known.lastSeq > lastSeq) {
        Object.assign(room, { lastSeq: known.lastSeq, lastMessage: known.lastMessage, lastMessageAt: known.lastMessageAt });
      }
      if (known) room.readSeq = Math.max(room.readSeq, known.readSeq);
      this.byId.set(listing.chatRoomId, room);
      for (const id of listing.onlineParticipantIds || []) this.online.add(id);
    }
    for (const roomId of [...this.byId.keys()]) if (!seen.has(roomId)) this.remove(roomId);
  }

  upsert(room) {
    const known = this.byId.get(room.chatRoomId);
    this.byId.set(room.chatRoomId, { lastSeq: 0, readSeq: 0, lastMessage: null, lastMessageAt: null, ...known, ...room });
  }

  remove(roomId) {
    this.byId.delete(roomId);
    this.timelines.delete(roomId);
  }

  /** A message arrived (live or fetched): preview, activity and unread follow it. */
  noteMessage(message) {
    const room = this.byId.get(message.chatRoomId);
    if (!room || message.seq == null) return;
    if (message.seq >= room.lastSeq) {
      room.lastSeq = message.seq;
      room.lastMessage = message.removed ? REMOVED : message.content;
      room.lastMessageAt = message.createdAt;
    }
    if (message.senderId === this.selfId) room.readSeq = Math.max(room.readSeq, message.seq);
  }

  /** A messageRemoved frame. */
  noteRemoved(roomId, messageId, seq) {
    this.timeline(roomId).removed(seq, messageId);
    const room = this.byId.get(roomId);
    if (room && seq === room.lastSeq) room.lastMessage = REMOVED;
  }

  /** A read frame: the watermark of userId moved. */
  noteRead(roomId, userId, seq) {
    this.timeline(roomId).raise(userId, seq);
    const room = this.byId.get(roomId);
    if (room && userId === this.selfId) room.readSeq = Math.max(room.readSeq, seq);
  }

  unread(roomId) {
    const room = this.byId.get(roomId);
    return room ? Math.max(0, room.lastSeq - room.readSeq) : 0;
  }

  /** Newest activity first; rooms without messages by creation. */
  list() {
    const activity = (room) => room.lastMessageAt || room.createdAt || "";
    return [...this.byId.values()].sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0));
  }

  /** Whether any other participant of the room is online. */
  anyoneOnline(roomId) {
    const room = this.byId.get(roomId);
    return !!room && room.participantIds.some((id) => id !== this.selfId && this.online.has(id));
  }
}
