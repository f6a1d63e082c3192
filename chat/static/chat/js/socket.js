// The one WebSocket of the page: a heartbeat, and reconnects that never stop
// (exponential backoff with jitter, capped at 30 s; at once when the tab
// comes back or the network returns). 4401 asks for a fresh token first.

import { backoffDelay } from "./backoff.js";

export const HEARTBEAT_MS = 30_000;
export const PONG_TIMEOUT_MS = 10_000;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_ORIGIN = 4403;
const CLOSE_RESTARTING = 4012; // the server process is stopping: others take the reconnect at once
const CLOSE_SUSPENDED = 4430; // staff suspended the user: do not come back on our own
const CLOSE_HEARTBEAT = 4000; // ours: the server stopped answering

export class Connection {
  /**
   * url(): the socket URL with a current token; onFrame(frame); onOpen()
   * once the server answered the first ping (the connection is registered
   * and joined); onStatus({state, retryInMs, code}); refreshToken(): a
   * promise of a fresh token after a 4401.
   */
  constructor({ url, onFrame, onOpen, onStatus, refreshToken, WebSocketImpl = globalThis.WebSocket, random = Math.random, timers = globalThis }) {
    Object.assign(this, { url, onFrame, onOpen, onStatus, refreshToken, WebSocketImpl, random, timers });
    this.socket = null;
    this.attempt = 0;
    this.ready = false;
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
    this.onStatus({ state: "stopped" });
  }

  /** Reconnect now if waiting to (the tab became visible, the network came back). */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  send(frame) {
    if (!this.ready || !this.socket) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  open() {
    this.onStatus({ state: this.attempt === 0 ? "connecting" : "reconnecting" });
    const socket = new this.WebSocketImpl(this.url());
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ action: "ping" }));
    socket.onmessage = (event) => this.received(socket, event);
    socket.onclose = (event) => this.closed(socket, event.code);
  }

  received(socket, event) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    this.timers.clearTimeout(this.pongTimer);
    this.pongTimer = null;
    if (!this.ready && frame.type === "pong") {
      this.ready = true;
      this.attempt = 0;
      this.scheduleHeartbeat();
      this.onStatus({ state: "open" });
      this.onOpen();
      return;
    }
    if (frame.type !== "pong") this.onFrame(frame);
  }

  scheduleHeartbeat() {
    this.timers.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = this.timers.setTimeout(() => {
      if (!this.send({ action: "ping" })) return;
      this.pongTimer = this.timers.setTimeout(() => this.dropDead(), PONG_TIMEOUT_MS);
      this.scheduleHeartbeat();
    }, HEARTBEAT_MS);
  }

  /** No answer to a ping: the socket is gone even if the browser has not noticed. */
  dropDead() {
    const socket = this.socket;
    if (!socket) return;
    socket.close(CLOSE_HEARTBEAT);
    this.closed(socket, CLOSE_HEARTBEAT);
  }

  clearTimers() {
    for (const timer of [this.retryTimer, this.heartbeatTimer, this.pongTimer]) this.timers.clearTimeout(timer);
    this.retryTimer = this.heartbeatTimer = this.pongTimer = null;
  }

  async closed(socket, code) {
    if (socket !== this.socket) return; // an old socket's late close
    this.socket = null;
    this.ready = false;
    this.clearTimers();
    if (this.stopped) return;
    if (code === CLOSE_ORIGIN || code === CLOSE_SUSPENDED) {
      this.stopped = true;
      this.onStatus({ state: code === CLOSE_SUSPENDED ? "suspended" : "refused", code });
      return;
    }
    this.onStatus({ state: "closed", code });
    if (code === CLOSE_UNAUTHORIZED) {
      try {
        await this.refreshToken();
      } catch {
        this.stopped = true;
        this.onStatus({ state: "signedOut", code });
        return;
      }
    }
    const delay = code === CLOSE_RESTARTING && this.attempt === 0 ? 0 : backoffDelay(this.attempt, this.random);
    this.attempt += 1;
    this.onStatus({ state: "reconnecting", retryInMs: delay, code });
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.open();
    }, delay);
  }
}
