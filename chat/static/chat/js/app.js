// The page: sign-in, room list, room view. Wires the socket, the store and
// the HTTP API together; every piece of user text goes into the DOM as text.

import { Api, ApiError, describeError } from "./api.js";
import { Auth, renewDelay } from "./auth.js";
import { Connection } from "./socket.js";
import { Outbox, REMOVED, Rooms } from "./store.js";
import { initial, lengthNotice, MAX_LENGTH, segments } from "./text.js";
import { randomString } from "./pkce.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const CATCH_UP_PAGE = 100;
const TYPING_SHOWN_MS = 3000;
const TYPING_EVERY_MS = 2000;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clock(timestamp) {
  return new Date(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** Why the input is locked, in words. */
function lockText(me) {
  if (me.verificationStatus === "suspended") return "Your account is suspended: you cannot write.";
  if (me.verificationStatus === "rejected") {
    const reason = me.verificationReason ? ` (${me.verificationReason})` : "";
    return `Your identity verification was rejected${reason}: you can read this room but not write in it.`;
  }
  return "Your identity is not verified yet: you can read, and you can write as soon as staff approve you.";
}

class ChatApp {
  constructor(auth) {
    this.auth = auth;
    this.api = new Api(() => auth.token);
    this.me = null;
    this.rooms = null;
    this.current = null; // open room id
    this.requests = []; // getMessages awaiting their `messages` frame, in order
    this.typing = new Map(); // roomId -> Map(userId -> timer)
    this.names = new Map(); // userId -> nickname (a message carries only its sender's id)
    this.naming = new Set(); // rooms whose participants are being fetched
    this.lastTypingSent = 0;
    this.loadingOlder = false;
    this.renderQueued = false;
    const tab = randomString(6);
    let counter = 0;
    this.outbox = new Outbox(() => `${tab}-${++counter}`);
    this.connection = new Connection({
      url: () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/?token=${encodeURIComponent(auth.token)}`,
      onFrame: (frame) => this.onFrame(frame),
      onOpen: () => this.onOpen(),
      onStatus: (status) => this.onStatus(status),
      refreshToken: () => auth.refresh(),
    });
    this.decisions = 0; // verification frames seen: a status read over HTTP before one is stale
  }

  get approved() {
    return this.me && this.me.verificationStatus === "approved";
  }

  async start() {
    this.me = await this.api.me();
    this.rooms = new Rooms(this.me.userId);
    this.rooms.load((await this.api.rooms()).rooms);
    this.names.set(this.me.userId, this.me.nickname || this.me.userId);
    const direct = this.rooms.list().filter((room) => room.type === "direct");
    for (const room of direct.slice(0, 10)) this.loadNames(room.chatRoomId);
    this.bind();
    $("signin").hidden = true;
    $("app").hidden = false;
    $("me").textContent = this.me.nickname ? `${this.me.nickname} (${this.me.userId})` : this.me.userId;
    this.scheduleRenewal();
    this.connection.start();
    this.render();
  }

  // --- socket --------------------------------------------------------------

  onStatus(status) {
    const line = $("status");
    line.dataset.state = status.state;
    if (status.state === "open") line.textContent = "";
    else if (status.state === "connecting") line.textContent = "connecting...";
    else if (status.state === "reconnecting")
      line.textContent = status.retryInMs ? `reconnecting... (next try in ${Math.ceil(status.retryInMs / 1000)} s)` : "reconnecting...";
    else if (status.state === "refused") line.textContent = "This page's origin is not allowed by the server.";
    else if (status.state === "suspended") {
      line.textContent = "Your account is suspended.";
      this.me.verificationStatus = "suspended";
    }
    else if (status.state === "signedOut") this.signedOut("Your sign-in has expired; sign in again.");
    if (status.state === "closed" || status.state === "stopped") {
      if (this.outbox.held) this.addMessage(this.outbox.release());
      this.outbox.failAll(this.rooms.timelines.values(), "not sent: the connection dropped");
      for (const request of this.requests.splice(0)) request.reject(new Error("connection closed"));
      this.render();
    }
  }

  async onOpen() {
    // Live frames reach this socket from now on; what happened before it
    // (the first time: since the list was read; after a drop: meanwhile)
    // comes from the room list and, for every loaded room, from history
    // after its last held seq.
    const decisions = this.decisions;
    try {
      const [me, listing] = await Promise.all([this.api.me(), this.api.rooms()]);
      if (this.decisions === decisions) Object.assign(this.me, me);
      this.rooms.load(listing.rooms);
    } catch (error) {
      this.showError("side-error", error);
    }
    for (const [roomId, timeline] of this.rooms.timelines) {
      if (timeline.loaded && this.rooms.byId.has(roomId)) this.catchUp(roomId, timeline.knownThrough);
    }
    if (this.current) this.loadRoom(this.current);
    this.flush();
    this.render();
  }

  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.connection.send(frame)) return reject(new Error("not connected"));
      this.requests.push({ resolve, reject });
    });
  }

  async catchUp(roomId, afterSeq) {
    const timeline = this.rooms.timeline(roomId);
    if (timeline.catchingUp) return;
    timeline.catchingUp = true;
    let cursor = afterSeq;
    try {
      for (;;) {
        const page = await this.request({ action: "getMessages", chatRoomId: roomId, afterSeq: cursor, limit: CATCH_UP_PAGE });
        timeline.add(page.messages);
        for (const message of page.messages) this.rooms.noteMessage(message);
        if (!page.hasMore || page.messages.length === 0) break;
        cursor = page.messages[page.messages.length - 1].seq;
      }
      timeline.add([], { contiguous: true });
    } catch {
      return; // the socket closed: the next open catches up again
    } finally {
      timeline.catchingUp = false;
    }
    this.render();
  }

  async refreshRooms() {
    try {
      this.rooms.load((await this.api.rooms()).rooms);
      this.render();
    } catch (error) {
      this.showError("side-error", error);
    }
  }

  /** Nicknames of the room's participants, when some are not known yet. */
  async loadNames(roomId) {
    const room = this.rooms.byId.get(roomId);
    if (!room || this.naming.has(roomId) || room.participantIds.every((id) => this.names.has(id))) return;
    this.naming.add(roomId);
    try {
      const { participants } = await this.api.participants(roomId);
      for (const { userId, nickname } of participants) this.names.set(userId, nickname);
      this.render();
    } catch {
      // shown by id meanwhile; tried again when the room is opened
    } finally {
      this.naming.delete(roomId);
    }
  }

  async loadRoom(roomId) {
    this.loadNames(roomId);
    const timeline = this.rooms.timeline(roomId);
    if (timeline.loaded) return;
    try {
      const page = await this.request({ action: "getMessages", chatRoomId: roomId, limit: PAGE });
      timeline.add(page.messages, { contiguous: true });
      timeline.hasOlder = page.hasMore;
      timeline.loaded = true;
      for (const message of page.messages) this.rooms.noteMessage(message);
    } catch {
      return;
    }
    this.render({ toBottom: true });
  }

  async loadOlder() {
    const timeline = this.current && this.rooms.timeline(this.current);
    if (!timeline || !timeline.loaded || !timeline.hasOlder || this.loadingOlder) return;
    const oldest = timeline.oldestSeq();
    if (oldest === null || oldest <= 1) {
      timeline.hasOlder = false;
      return;
    }
    this.loadingOlder = true;
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    try {
      const page = await this.request({ action: "getMessages", chatRoomId: this.current, beforeSeq: oldest, limit: PAGE });
      timeline.add(page.messages);
      timeline.hasOlder = page.hasMore;
    } catch {
      // retried on the next scroll
    } finally {
      this.loadingOlder = false;
    }
    this.renderNow();
    list.scrollTop = list.scrollHeight - fromBottom;
  }

  onFrame(frame) {
    const data = frame.data || {};
    if (this.outbox.held && !(frame.type === "ack" && data.messageId === this.outbox.held.messageId)) {
      this.addMessage(this.outbox.release());
    }
    switch (frame.type) {
      case "message":
        if (data.senderId === this.me.userId && this.outbox.hold(data)) this.rooms.noteMessage(data);
        else this.addMessage(data);
        break;
      case "ack": {
        const timeline = this.rooms.timeline(data.chatRoomId);
        this.outbox.acked(timeline, data);
        this.flush();
        break;
      }
      case "messages": {
        const request = this.requests.shift();
        if (request) request.resolve(data);
        return;
      }
      case "error":
        this.onError(data);
        break;
      case "VERIFICATION_REQUIRED":
        this.me.verificationStatus = this.me.verificationStatus === "approved" ? "pending" : this.me.verificationStatus;
        this.failSend("not sent: your identity is not verified yet");
        break;
      case "verification":
        this.decisions += 1;
        this.me.verificationStatus = data.status;
        this.me.verificationReason = data.reason || null;
        break;
      case "messageRemoved":
        this.rooms.noteRemoved(data.chatRoomId, data.messageId, data.seq);
        break;
      case "room":
        this.rooms.upsert(data);
        this.refreshRooms(); // who in it is online: presence frames tell only of changes
        break;
      case "roomLeft":
        this.rooms.remove(data.chatRoomId);
        if (this.current === data.chatRoomId) this.current = null;
        break;
      case "read":
        this.rooms.noteRead(data.chatRoomId, data.userId, data.seq);
        break;
      case "typing":
        this.startTyping(data.chatRoomId, data.userId);
        break;
      case "presence":
        if (data.online) this.rooms.online.add(data.userId);
        else this.rooms.online.delete(data.userId);
        break;
      default:
        break;
    }
    this.render();
  }

  addMessage(data) {
    if (data.senderId !== "system" && !this.names.has(data.senderId)) {
      const room = this.rooms.byId.get(data.chatRoomId);
      if (room && !room.participantIds.includes(data.senderId)) room.participantIds = [...room.participantIds, data.senderId];
      this.loadNames(data.chatRoomId); // a newcomer
    }
    const timeline = this.rooms.timeline(data.chatRoomId);
    timeline.add([data]);
    this.rooms.noteMessage(data);
    this.stopTyping(data.chatRoomId, data.senderId);
    // A seq skipped: fill the gap from history (live delivery is not a complete log).
    const gap = timeline.loaded ? timeline.gapAfter() : null;
    if (gap !== null) this.catchUp(data.chatRoomId, gap);
  }

  onError(data) {
    const words = describeError(data.code, data.message, data.retryAfterMs);
    if (data.action === "getMessages") {
      const request = this.requests.shift();
      if (request) request.reject(new Error(words));
    } else if (data.action === "sendMessage") {
      this.failSend(`not sent: ${words}`);
    } else if (data.action !== "authenticate" || data.code !== "AUTH_UNAVAILABLE") {
      $("room-error").textContent = words;
    }
  }

  failSend(reason) {
    const failed = this.outbox.failed(reason);
    if (failed) this.flush();
  }

  /** Put the next queued send on the socket (one at a time: its answer comes before the next one's). */
  flush() {
    if (!this.approved) return;
    const next = this.outbox.next(this.rooms.timelines.values());
    if (!next) return;
    const sent = this.connection.send({ action: "sendMessage", chatRoomId: next.chatRoomId, content: next.content, clientMessageId: next.clientMessageId });
    if (!sent) this.outbox.failed("not sent: not connected");
  }

  send() {
    const input = $("input");
    const content = input.value;
    if (!this.current || !this.approved || !content.trim() || content.length > MAX_LENGTH) return;
    this.outbox.create(this.rooms.timeline(this.current), this.current, this.me.userId, content);
    input.value = "";
    this.resizeInput();
    this.flush();
    this.render({ toBottom: true });
  }

  retry(pending) {
    this.outbox.retry(pending);
    this.flush();
    this.render();
  }

  markRead() {
    if (!this.current || !this.approved || document.visibilityState !== "visible") return;
    const room = this.rooms.byId.get(this.current);
    const timeline = this.rooms.timeline(this.current);
    const newest = timeline.newestSeq();
    if (room && timeline.loaded && newest > room.readSeq) {
      if (this.connection.send({ action: "markRead", chatRoomId: this.current, seq: newest })) room.readSeq = newest;
    }
  }

  startTyping(roomId, userId) {
    if (!this.typing.has(roomId)) this.typing.set(roomId, new Map());
    const users = this.typing.get(roomId);
    clearTimeout(users.get(userId));
    users.set(userId, setTimeout(() => this.stopTyping(roomId, userId, true), TYPING_SHOWN_MS));
  }

  stopTyping(roomId, userId, render = false) {
    const users = this.typing.get(roomId);
    if (!users || !users.has(userId)) return;
    clearTimeout(users.get(userId));
    users.delete(userId);
    if (render) this.render();
  }

  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    if (!this.auth.token) return;
    this.renewTimer = setTimeout(async () => {
      try {
        await this.auth.refresh();
        this.connection.send({ action: "authenticate", token: this.auth.token });
      } catch {
        // the socket closes with 4401 at expiry, which asks again
      }
      this.scheduleRenewal();
    }, renewDelay(this.auth.token));
  }

  signedOut(message) {
    clearTimeout(this.renewTimer);
    this.auth.signOut();
    location.replace(`/?signedOut=${encodeURIComponent(message)}`);
  }

  // --- user actions ----------------------------------------------------------

  bind() {
    const input = $("input");
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    input.addEventListener("input", () => {
      this.resizeInput();
      this.renderCounter();
      const now = Date.now();
      if (this.current && this.approved && input.value && now - this.lastTypingSent > TYPING_EVERY_MS) {
        this.lastTypingSent = now;
        this.connection.send({ action: "typing", chatRoomId: this.current });
      }
    });
    $("messages").addEventListener("scroll", () => {
      if ($("messages").scrollTop < 40) this.loadOlder();
    });
    $("back").addEventListener("click", () => this.openRoom(null));
    $("leave").addEventListener("click", () => this.leave());
    $("sign-out").addEventListener("click", () => {
      this.connection.stop();
      this.auth.signOut();
      location.replace("/");
    });
    $("new-room-button").addEventListener("click", () => this.toggleForm("new-room-form"));
    $("join-button").addEventListener("click", () => this.toggleForm("join-form"));
    $("new-room-form").addEventListener("submit", (event) => this.createRoom(event));
    $("join-form").addEventListener("submit", (event) => this.joinActivity(event));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.connection.reconnectNow();
        this.markRead();
      }
    });
    window.addEventListener("online", () => this.connection.reconnectNow());
  }

  toggleForm(id) {
    for (const form of ["new-room-form", "join-form"]) $(form).hidden = form !== id ? true : !$(form).hidden;
    const form = $(id);
    if (!form.hidden) form.querySelector("input").focus();
  }

  showError(id, error) {
    $(id).textContent = error instanceof ApiError ? error.message : String(error.message || error);
  }

  async createRoom(event) {
    event.preventDefault();
    const form = event.target;
    const participantIds = form.participants.value.split(",").map((id) => id.trim()).filter(Boolean);
    await this.enterRoom(form, () => this.api.createRoom(participantIds, form.roomName.value.trim() || undefined));
  }

  async joinActivity(event) {
    event.preventDefault();
    const form = event.target;
    await this.enterRoom(form, () => this.api.joinActivity(form.activity.value.trim()));
  }

  /** Runs a side-panel form's request for a room, then lists and opens it. */
  async enterRoom(form, request) {
    $("side-error").textContent = "";
    try {
      const { room } = await request();
      this.rooms.upsert(room);
      form.reset();
      form.hidden = true;
      this.openRoom(room.chatRoomId);
    } catch (error) {
      this.showError("side-error", error);
    }
  }

  async leave() {
    const roomId = this.current;
    if (!roomId) return;
    try {
      await this.api.leave(roomId);
      this.rooms.remove(roomId);
      this.openRoom(null);
    } catch (error) {
      this.showError("room-error", error);
    }
  }

  openRoom(roomId) {
    this.current = roomId;
    $("room-error").textContent = "";
    document.body.classList.toggle("room-open", !!roomId);
    if (roomId) this.loadRoom(roomId);
    this.render({ toBottom: true });
    if (roomId) $("input").focus();
  }

  resizeInput() {
    const input = $("input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  // --- views -------------------------------------------------------------------

  render({ toBottom = false } = {}) {
    this.toBottom = this.toBottom || toBottom;
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => this.renderNow());
  }

  renderNow() {
    this.renderQueued = false;
    this.renderRooms();
    this.renderRoom();
    this.markRead();
  }

  displayName(userId) {
    return this.names.get(userId) || userId;
  }

  roomTitle(room) {
    if (room.type === "direct" && room.name === "Direct message") {
      const other = room.participantIds.find((id) => id !== this.me.userId);
      return other ? this.displayName(other) : room.name;
    }
    return room.name;
  }

  renderRooms() {
    const items = this.rooms.list().map((room) => {
      const unread = this.rooms.unread(room.chatRoomId);
      const online = this.rooms.anyoneOnline(room.chatRoomId);
      return el(
        "li",
        { class: `room-item${room.chatRoomId === this.current ? " current" : ""}`, dataset: { roomId: room.chatRoomId } },
        el(
          "button",
          { type: "button", onclick: () => this.openRoom(room.chatRoomId), "aria-current": room.chatRoomId === this.current ? "true" : null },
          el("span", { class: `icon ${room.type}`, title: room.type === "direct" ? "Direct" : "Group", "aria-label": room.type === "direct" ? "Direct" : "Group" }, room.type === "direct" ? "@" : "#"),
          el(
            "span",
            { class: "room-text" },
            el("span", { class: "room-name" }, this.roomTitle(room), online ? el("span", { class: "dot", title: "online", "aria-label": "online" }) : null),
            el("span", { class: "preview" }, room.lastMessage || ""),
          ),
          unread > 0 ? el("span", { class: "badge", "aria-label": `${unread} unread` }, String(unread)) : null,
        ),
      );
    });
    $("room-list").replaceChildren(...items);
    if (items.length === 0) $("room-list").append(el("li", { class: "none" }, "No rooms yet: create one, or join an activity."));
  }

  renderRoom() {
    const room = this.current && this.rooms.byId.get(this.current);
    $("room-empty").hidden = !!room;
    $("room-header").hidden = !room;
    $("composer").hidden = !room;
    const list = $("messages");
    list.hidden = !room;
    if (!room) {
      list.replaceChildren();
      $("typing").textContent = "";
      $("lock").hidden = true;
      return;
    }
    $("room-title").textContent = this.roomTitle(room);
    const others = room.participantIds.filter((id) => id !== this.me.userId);
    $("room-meta").textContent = room.type === "direct" ? (this.rooms.online.has(others[0]) ? "online" : "") : `${room.participantIds.length} participants`;
    const timeline = this.rooms.timeline(room.chatRoomId);
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const items = timeline.ordered().map((message) => this.messageView(message, room, timeline));
    if (timeline.loaded && timeline.hasOlder) items.unshift(el("li", { class: "older" }, "Scroll up for older messages"));
    if (timeline.loaded && items.length === 0) items.push(el("li", { class: "older" }, "No messages yet."));
    list.replaceChildren(...items);
    if (this.toBottom || atBottom) list.scrollTop = list.scrollHeight;
    this.toBottom = false;

    const typists = [...(this.typing.get(room.chatRoomId) || new Map()).keys()].map((id) => this.displayName(id));
    $("typing").textContent = typists.length ? `${typists.join(", ")} ${typists.length > 1 ? "are" : "is"} typing...` : "";

    const locked = !this.approved;
    $("input").disabled = locked;
    $("send").disabled = locked;
    $("lock").hidden = !locked;
    $("lock").textContent = lockText(this.me);
    this.renderCounter();
  }

  renderCounter() {
    const notice = lengthNotice($("input").value);
    const counter = $("counter");
    counter.textContent = notice ? notice.text : "";
    counter.classList.toggle("over", !!(notice && notice.over));
    if (this.approved) $("send").disabled = !!(notice && notice.over);
  }

  messageView(message, room, timeline) {
    if (message.removed) {
      return el("li", { class: "message removed", dataset: { seq: message.seq ?? "" } }, el("span", { class: "text" }, REMOVED));
    }
    if (message.messageType === "system") {
      return el("li", { class: "message system", dataset: { seq: message.seq ?? "" } }, el("span", { class: "text" }, message.content));
    }
    const own = message.senderId === this.me.userId;
    const text = el("div", { class: "text" }, segments(message.content).map((piece) => (piece.href ? el("a", { href: piece.href, target: "_blank", rel: "noopener noreferrer nofollow" }, piece.text) : piece.text)));
    const meta = el("div", { class: "meta" }, el("time", { datetime: new Date(message.timestamp).toISOString() }, clock(message.timestamp)));
    if (own) {
      let mark;
      if (message.state === "failed") mark = el("span", { class: "mark failed" }, message.error || "not sent", " ", el("button", { type: "button", class: "retry", onclick: () => this.retry(message) }, "Retry"));
      else if (message.state) mark = el("span", { class: "mark sending" }, "sending");
      else mark = el("span", { class: "mark" }, timeline.readMark(message, this.me.userId, room.participantIds, room.type));
      meta.append(" ", mark);
    }
    const name = this.displayName(message.senderId);
    return el(
      "li",
      { class: `message ${own ? "own" : "other"}`, dataset: { seq: message.seq ?? "", sender: message.senderId } },
      own ? null : el("span", { class: "avatar", "aria-hidden": "true" }, initial(name)),
      el("div", { class: "bubble" }, own ? null : el("div", { class: "sender" }, name), text, meta),
    );
  }
}

// --- start -------------------------------------------------------------------

async function main() {
  const config = await (await fetch("/client/config.json")).json();
  const auth = new Auth(config);
  const params = new URLSearchParams(location.search);
  const notice = params.get("signedOut");
  try {
    if (config.oidc && (await auth.completeOidc())) history.replaceState(null, "", "/");
  } catch (error) {
    history.replaceState(null, "", "/");
    $("signin-error").textContent = error.message;
  }
  if (auth.token) {
    try {
      await new ChatApp(auth).start();
      return;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) auth.signOut(); // else keep it: reload to try again
      $("signin-error").textContent = error.message;
    }
  }
  if (notice) {
    history.replaceState(null, "", "/");
    $("signin-error").textContent = notice;
  }
  showSignIn(config, auth);
}

function showSignIn(config, auth) {
  $("signin").hidden = false;
  $("dev-form").hidden = !config.devSignIn;
  $("oidc").hidden = !config.oidc;
  if (!config.devSignIn && !config.oidc) $("signin-error").textContent = "No sign-in is configured on this server (see the README).";
  $("dev-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      await auth.devSignIn(form.userId.value.trim(), form.nickname.value.trim());
      location.replace("/");
    } catch (error) {
      $("signin-error").textContent = error.message;
    }
  });
  $("oidc-button").addEventListener("click", () => auth.startOidc());
  (config.devSignIn ? $("dev-form").userId : $("oidc-button")).focus();
}

main();
