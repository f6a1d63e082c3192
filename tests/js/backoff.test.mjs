import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, CAP_MS } from "../../chat/static/chat/js/backoff.js";

test("delays double with each failure, within the upper half of the window", () => {
  assert.equal(backoffDelay(0, () => 0), 250);
  assert.equal(backoffDelay(0, () => 1), 500);
  assert.equal(backoffDelay(1, () => 0), 500);
  assert.equal(backoffDelay(3, () => 1), 4000);
});

test("never more than 30 s, however many failures", () => {
  for (const attempt of [6, 7, 10, 50, 1000]) {
    assert.ok(backoffDelay(attempt, () => 1) <= CAP_MS);
    assert.ok(backoffDelay(attempt, () => 0) >= CAP_MS / 2);
  }
  assert.equal(CAP_MS, 30_000);
});

test("jitter spreads clients that failed together", () => {
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(5)));
  assert.ok(delays.size > 10);
});
