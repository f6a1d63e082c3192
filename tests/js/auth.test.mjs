import assert from "node:assert/strict";
import { test } from "node:test";

import { Auth } from "../../chat/static/chat/js/auth.js";
import { codeChallenge } from "../../chat/static/chat/js/pkce.js";

const oidc = { authorizeUrl: "https://auth.example.com/oauth2/authorize", tokenUrl: "https://auth.example.com/oauth2/token", clientId: "client-1", scope: "openid", redirectUri: null };

function memoryStorage() {
  const items = new Map();
  return { getItem: (k) => (items.has(k) ? items.get(k) : null), setItem: (k, v) => items.set(k, String(v)), removeItem: (k) => items.delete(k), items };
}

function fakeFetch(answers) {
  const calls = [];
  const fetchImpl = async (url, options) => {
    calls.push({ url, ...options });
    const [status, body] = answers.shift();
    return { ok: status < 400, status, json: async () => body };
  };
  return { calls, fetchImpl };
}

test("dev sign-in keeps the token in sessionStorage and signs again for a fresh one", async () => {
  const storage = memoryStorage();
  const { calls, fetchImpl } = fakeFetch([[200, { idToken: "t1", expiresIn: 3600 }], [200, { idToken: "t2", expiresIn: 3600 }]]);
  const auth = new Auth({ devSignIn: true, oidc: null }, { storage, fetchImpl, location: { origin: "http://h" } });
  await auth.devSignIn("alice", "Alice");
  assert.equal(auth.token, "t1");
  assert.equal(await auth.refresh(), "t2");
  assert.deepEqual(JSON.parse(calls[1].body), { userId: "alice", nickname: "Alice" });
  assert.equal(JSON.parse(storage.getItem("chat.session")).idToken, "t2");
  assert.equal(new Auth({}, { storage, fetchImpl, location: {} }).token, "t2", "a reload of the tab keeps it");
});

test("a refused dev sign-in says why", async () => {
  const { fetchImpl } = fakeFetch([[400, { error: { code: "INVALID_REQUEST", message: "user ids must be 1-256 printable characters without '#'" } }]]);
  const auth = new Auth({}, { storage: memoryStorage(), fetchImpl, location: {} });
  await assert.rejects(auth.devSignIn("a#b", ""), /without '#'/);
  assert.ok(!auth.token);
});

test("OIDC: to the authorize URL with a challenge, back with the code, exchanged with the verifier", async () => {
  const storage = memoryStorage();
  const location = { origin: "http://127.0.0.1:8000", search: "", assign(url) { this.assigned = url; } };
  const { calls, fetchImpl } = fakeFetch([[200, { id_token: "id-1", refresh_token: "r-1" }]]);
  const auth = new Auth({ oidc }, { storage, fetchImpl, location });
  await auth.startOidc();
  const sent = new URL(location.assigned);
  const pending = JSON.parse(storage.getItem("chat.oidc"));
  assert.equal(sent.searchParams.get("code_challenge"), await codeChallenge(pending.verifier));
  assert.equal(sent.searchParams.get("redirect_uri"), "http://127.0.0.1:8000/");

  location.search = `?code=c-1&state=${pending.state}`;
  assert.equal(await auth.completeOidc(), true);
  assert.equal(auth.token, "id-1");
  assert.equal(calls[0].url, oidc.tokenUrl);
  const form = new URLSearchParams(calls[0].body);
  assert.equal(form.get("code_verifier"), pending.verifier);
  assert.equal(form.get("code"), "c-1");
  assert.equal(storage.getItem("chat.oidc"), null, "a code is used once");
});

test("OIDC: an answer with another state is refused, and nothing is exchanged", async () => {
  const storage = memoryStorage();
  storage.setItem("chat.oidc", JSON.stringify({ verifier: "v", state: "mine" }));
  const { calls, fetchImpl } = fakeFetch([]);
  const auth = new Auth({ oidc }, { storage, fetchImpl, location: { origin: "http://h", search: "?code=c&state=theirs" } });
  await assert.rejects(auth.completeOidc(), /does not match/);
  assert.equal(calls.length, 0);
});

test("OIDC refresh: the refresh token buys a fresh ID token; without one, sign in again", async () => {
  const storage = memoryStorage();
  storage.setItem("chat.session", JSON.stringify({ mode: "oidc", idToken: "old", refreshToken: "r-1" }));
  const { calls, fetchImpl } = fakeFetch([[200, { id_token: "new" }]]);
  const auth = new Auth({ oidc }, { storage, fetchImpl, location: {} });
  assert.equal(await auth.refresh(), "new");
  assert.equal(new URLSearchParams(calls[0].body).get("grant_type"), "refresh_token");
  assert.equal(auth.session.refreshToken, "r-1", "Cognito does not send a new refresh token: keep the old");
  auth.save({ mode: "oidc", idToken: "x", refreshToken: null });
  await assert.rejects(auth.refresh(), /Sign in again/);
});
