// Signing in. The token lives in sessionStorage (this tab only, gone with
// it), never in a cookie: the server reads it from the socket URL and the
// Authorization header only.
//   dev: the dev issuer signs a token for a typed user id and nickname
//        (JWT_DEV_ISSUER, local runs);
//   oidc: the issuer's hosted sign-in, authorization code with PKCE.

import { authorizeUrl, codeChallenge, codeExchangeBody, parseCallback, randomString, refreshBody } from "./pkce.js";

const KEY = "chat.session";
const PENDING_KEY = "chat.oidc";
export const RENEW_BEFORE_MS = 120_000;

/** The claims of a JWT (not verified: the server does that). */
export function claims(token) {
  const payload = token.split(".")[1] || "";
  const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** How long from now to fetch a fresh token for the open socket: well before exp, never in the past. */
export function renewDelay(token, now = Date.now()) {
  const expMs = claims(token).exp * 1000;
  const lifetime = expMs - now;
  return Math.max(1000, lifetime - RENEW_BEFORE_MS, lifetime * 0.8);
}

export class Auth {
  constructor(config, { storage = globalThis.sessionStorage, fetchImpl = (...a) => globalThis.fetch(...a), location = globalThis.location } = {}) {
    Object.assign(this, { config, storage, fetchImpl, location });
    this.session = JSON.parse(storage.getItem(KEY) || "null");
  }

  get token() {
    return this.session && this.session.idToken;
  }

  save(session) {
    this.session = session;
    this.storage.setItem(KEY, JSON.stringify(session));
  }

  signOut() {
    this.session = null;
    this.storage.removeItem(KEY);
  }

  redirectUri() {
    return (this.config.oidc && this.config.oidc.redirectUri) || `${this.location.origin}/`;
  }

  async devSignIn(userId, nickname) {
    const response = await this.fetchImpl("/dev-issuer/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ userId, nickname }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error((body && body.error && body.error.message) || `Sign-in failed (${response.status})`);
    this.save({ mode: "dev", idToken: body.idToken, userId, nickname });
  }

  /** Off to the issuer's sign-in page; it comes back to redirectUri with ?code=&state=. */
  async startOidc() {
    const verifier = randomString(32);
    const state = randomString(16);
    this.storage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
    const challenge = await codeChallenge(verifier);
    this.location.assign(authorizeUrl(this.config.oidc, { state, challenge, redirectUri: this.redirectUri() }));
  }

  /** If the URL is the issuer's answer, trade its code for tokens. True when signed in by it. */
  async completeOidc() {
    const pending = JSON.parse(this.storage.getItem(PENDING_KEY) || "null");
    const answer = parseCallback(this.location.search, pending && pending.state);
    if (!answer) return false;
    this.storage.removeItem(PENDING_KEY);
    if (answer.error) throw new Error(answer.error);
    const tokens = await this.tokenRequest(
      codeExchangeBody(this.config.oidc, { code: answer.code, verifier: pending.verifier, redirectUri: this.redirectUri() }),
    );
    this.save({ mode: "oidc", idToken: tokens.id_token, refreshToken: tokens.refresh_token || null });
    return true;
  }

  async tokenRequest(body) {
    const response = await this.fetchImpl(this.config.oidc.tokenUrl, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString(),
    });
    const tokens = await response.json().catch(() => null);
    if (!response.ok || !tokens || !tokens.id_token) throw new Error("The issuer did not give a token; sign in again.");
    return tokens;
  }

  /** A fresh ID token for the same user, or an error when only a new sign-in can give one. */
  async refresh() {
    const session = this.session;
    if (!session) throw new Error("Not signed in");
    if (session.mode === "dev") {
      await this.devSignIn(session.userId, session.nickname);
    } else if (session.refreshToken) {
      const tokens = await this.tokenRequest(refreshBody(this.config.oidc, session.refreshToken));
      this.save({ ...session, idToken: tokens.id_token });
    } else {
      throw new Error("Sign in again");
    }
    return this.token;
  }
}
