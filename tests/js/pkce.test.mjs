import assert from "node:assert/strict";
import { test } from "node:test";

import { authorizeUrl, codeChallenge, codeExchangeBody, parseCallback, randomString, refreshBody } from "../../chat/static/chat/js/pkce.js";

const config = { authorizeUrl: "https://auth.example.com/oauth2/authorize?lang=en", tokenUrl: "https://auth.example.com/oauth2/token", clientId: "client-1", scope: "openid profile" };

test("the S256 challenge of RFC 7636's example verifier", async () => {
  assert.equal(await codeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
});

test("verifiers are 43 URL-safe characters, different every time", () => {
  const a = randomString(32);
  assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, randomString(32));
});

test("the authorize URL carries the code flow, the client, the challenge and the state", () => {
  const url = new URL(authorizeUrl(config, { state: "s1", challenge: "c1", redirectUri: "http://127.0.0.1:8000/" }));
  assert.equal(url.origin + url.pathname, "https://auth.example.com/oauth2/authorize");
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    lang: "en",
    response_type: "code",
    client_id: "client-1",
    redirect_uri: "http://127.0.0.1:8000/",
    scope: "openid profile",
    state: "s1",
    code_challenge: "c1",
    code_challenge_method: "S256",
  });
});

test("the callback is accepted only with the state this page stored", () => {
  assert.equal(parseCallback("", "s1"), null);
  assert.deepEqual(parseCallback("?code=abc&state=s1", "s1"), { code: "abc" });
  assert.ok(parseCallback("?code=abc&state=forged", "s1").error);
  assert.ok(parseCallback("?code=abc&state=s1", null).error, "no sign-in was started here");
  assert.deepEqual(parseCallback("?error=access_denied&error_description=Nope&state=s1", "s1"), { error: "Nope" });
});

test("the code exchange sends the verifier and the same redirect URI; refresh sends the refresh token", () => {
  const body = codeExchangeBody(config, { code: "abc", verifier: "v", redirectUri: "http://127.0.0.1:8000/" });
  assert.equal(body.toString(), "grant_type=authorization_code&client_id=client-1&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2F&code_verifier=v");
  assert.equal(refreshBody(config, "r1").toString(), "grant_type=refresh_token&client_id=client-1&refresh_token=r1");
});
