import assert from "node:assert/strict";
import { test } from "node:test";

import { claims, renewDelay } from "../../chat/static/chat/js/auth.js";
import { initial, lengthNotice, segments } from "../../chat/static/chat/js/text.js";

test("links become link pieces, the rest stays text, nothing is lost", () => {
  const content = "see https://example.com/a?b=1. and <b>x</b> javascript:alert(1) http://x.org";
  const pieces = segments(content);
  assert.equal(pieces.map((p) => p.text).join(""), content);
  assert.deepEqual(pieces.filter((p) => p.href).map((p) => p.href), ["https://example.com/a?b=1", "http://x.org/"]);
});

test("only http and https are links", () => {
  assert.deepEqual(segments("javascript:alert(1) data:text/html,x"), [{ text: "javascript:alert(1) data:text/html,x" }]);
});

test("initials and the length counter (UTF-16 units, as the server counts)", () => {
  assert.equal(initial("alice"), "A");
  assert.equal(initial(""), "?");
  assert.equal(lengthNotice("x".repeat(100)), null);
  assert.deepEqual(lengthNotice("x".repeat(4600)), { text: "4600 / 5000", over: false });
  assert.deepEqual(lengthNotice("😀".repeat(2501)), { text: "5002 / 5000", over: true });
});

function token(exp) {
  const part = (object) => Buffer.from(JSON.stringify(object)).toString("base64url");
  return `${part({ alg: "RS256" })}.${part({ sub: "ä", exp })}.sig`;
}

test("the token is renewed two minutes before it expires, or sooner for short ones", () => {
  const now = 1_000_000_000_000;
  assert.equal(claims(token(1)).sub, "ä");
  assert.equal(renewDelay(token(now / 1000 + 3600), now), 3600_000 - 120_000);
  assert.equal(renewDelay(token(now / 1000 + 60), now), 48_000);
  assert.equal(renewDelay(token(now / 1000 - 10), now), 1000);
});
