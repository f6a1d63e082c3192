import assert from "node:assert/strict";
import { test } from "node:test";

import { Connection } from "../../chat/static/chat/js/socket.js";

/** Timers run by hand, and a socket class that records what the connection does. */
function harness({ refreshToken = async () => "fresh" } = {}) {
  const timers = { queue: [], setTimeout: (fn, ms) => timers.queue.push({ fn, ms }) && timers.queue.length, clearTimeout: () => {} };
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {}
    serverSays(frame) {
      this.onmessage({ data: JSON.stringify(frame) });
    }
  }
  const statuses = [];
  const frames = [];
  let opens = 0;
  let token = "first";
  const connection = new Connection({
    url: () => `ws://x/ws/?token=${token}`,
    onFrame: (frame) => frames.push(frame),
    onOpen: () => opens++,
    onStatus: (status) => statuses.push(status),
    refreshToken: async () => (token = await refreshToken()),
    WebSocketImpl: FakeSocket,
    random: () => 0.5,
    timers,
  });
  return { connection, sockets, statuses, frames, timers, opens: () => opens };
}

test("open means answered: the first pong, not the handshake", () => {
  const h = harness();
  h.connection.start();
  const socket = h.sockets[0];
  socket.onopen();
  assert.deepEqual(socket.sent, [{ action: "ping" }]);
  assert.equal(h.connection.send({ action: "typing" }), false);
  socket.serverSays({ type: "pong" });
  assert.equal(h.opens(), 1);
  assert.equal(h.connection.send({ action: "typing" }), true);
  socket.serverSays({ type: "message", data: {} });
  assert.deepEqual(h.frames, [{ type: "message", data: {} }]);
});

test("a dropped socket is retried after a growing delay, and again at once on reconnectNow", async () => {
  const h = harness();
  h.connection.start();
  await h.sockets[0].onclose({ code: 1006 });
  const first = h.timers.queue.at(-1).ms;
  assert.equal(h.statuses.at(-1).state, "reconnecting");
  assert.equal(h.statuses.at(-1).retryInMs, first);
  h.timers.queue.at(-1).fn();
  await h.sockets[1].onclose({ code: 1006 });
  assert.ok(h.timers.queue.at(-1).ms > first);
  h.connection.reconnectNow(); // the tab became visible
  assert.equal(h.sockets.length, 3);
  h.sockets[2].onopen();
  h.sockets[2].serverSays({ type: "pong" });
  await h.sockets[2].onclose({ code: 1006 });
  assert.equal(h.timers.queue.at(-1).ms, first, "an open connection resets the backoff");
});

test("4401 gets a fresh token before reconnecting", async () => {
  const h = harness();
  h.connection.start();
  await h.sockets[0].onclose({ code: 4401 });
  h.timers.queue.at(-1).fn();
  assert.equal(h.sockets[1].url, "ws://x/ws/?token=fresh");
});

test("4401 with no way to a fresh token signs out instead of looping", async () => {
  const h = harness({ refreshToken: async () => Promise.reject(new Error("sign in again")) });
  h.connection.start();
  await h.sockets[0].onclose({ code: 4401 });
  assert.equal(h.statuses.at(-1).state, "signedOut");
  assert.equal(h.sockets.length, 1);
});

test("a heartbeat without an answer drops the socket and reconnects", async () => {
  const h = harness();
  h.connection.start();
  h.sockets[0].onopen();
  h.sockets[0].serverSays({ type: "pong" });
  h.timers.queue.at(-1).fn(); // 30 s: ping
  assert.deepEqual(h.sockets[0].sent.at(-1), { action: "ping" });
  const pongTimeout = h.timers.queue.find((timer) => timer.ms === 10_000);
  pongTimeout.fn();
  await Promise.resolve();
  assert.equal(h.statuses.at(-1).state, "reconnecting");
});

test("4012 (the server process is stopping) reconnects at once, then backs off", async () => {
  const h = harness();
  h.connection.start();
  await h.sockets[0].onclose({ code: 4012 });
  assert.equal(h.timers.queue.at(-1).ms, 0);
  h.timers.queue.at(-1).fn();
  await h.sockets[1].onclose({ code: 4012 });
  assert.ok(h.timers.queue.at(-1).ms > 0);
});

test("4430 (suspended) and 4403 (origin refused) do not reconnect", async () => {
  for (const [code, state] of [[4430, "suspended"], [4403, "refused"]]) {
    const h = harness();
    h.connection.start();
    await h.sockets[0].onclose({ code });
    assert.equal(h.statuses.at(-1).state, state);
    assert.equal(h.timers.queue.length, 0);
    h.connection.reconnectNow();
    assert.equal(h.sockets.length, 1);
  }
});
