// Reconnect delays: exponential, capped, with jitter, so that a server that
// restarts is not hit by all of its clients at the same instant.

export const BASE_MS = 500;
export const CAP_MS = 30_000;

/**
 * The wait before reconnect attempt `attempt` (0 for the first retry): a
 * random time in the upper half of min(CAP_MS, BASE_MS * 2^attempt), so it
 * grows with every failure, never exceeds the cap, and clients spread out.
 */
export function backoffDelay(attempt, random = Math.random, { base = BASE_MS, cap = CAP_MS } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
