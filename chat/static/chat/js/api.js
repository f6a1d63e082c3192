// The HTTP API (docs/openapi.json) with the current token.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(describeError(error.code, error.message, error.retryAfterMs));
    this.status = status;
    this.code = error.code || "HTTP_" + status;
  }
}

/** An error code (socket or HTTP) in words for the person at the keyboard. */
export function describeError(code, message, retryAfterMs) {
  switch (code) {
    case "RATE_LIMITED": {
      const seconds = Math.max(1, Math.ceil((retryAfterMs || 1000) / 1000));
      return `Too fast: try again in ${seconds} s.`;
    }
    case "VERIFICATION_REQUIRED":
      return "Your identity is not verified yet.";
    case "MESSAGE_TOO_LONG":
      return "The message is longer than 5000 characters.";
    case "NOT_A_PARTICIPANT":
      return "You are not in this room (any more).";
    case "STORAGE_UNAVAILABLE":
    case "AUTH_UNAVAILABLE":
      return "The server cannot store this right now; try again.";
    case "USER_SUSPENDED":
      return "Your account is suspended.";
    case "ROOM_FULL":
      return "That room is full (50 participants).";
    case "UNAUTHORIZED":
      return "Your sign-in has expired; sign in again.";
    default:
      return message || "Something went wrong.";
  }
}

export class Api {
  constructor(token, fetchImpl = (...args) => globalThis.fetch(...args)) {
    this.token = token; // () => current token
    this.fetch = fetchImpl;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await this.fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  me() {
    return this.call("GET", "/chat/me");
  }

  rooms() {
    return this.call("GET", "/chat/rooms");
  }

  createRoom(participantIds, name) {
    return this.call("POST", "/chat/rooms", name ? { participantIds, name } : { participantIds });
  }

  participants(roomId) {
    return this.call("GET", `/chat/rooms/${encodeURIComponent(roomId)}/participants`);
  }

  leave(roomId) {
    return this.call("POST", `/chat/rooms/${encodeURIComponent(roomId)}/leave`);
  }

  joinActivity(activityId) {
    return this.call("POST", `/activities/${encodeURIComponent(activityId)}/join`);
  }
}
