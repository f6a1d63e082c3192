// OIDC authorization code with PKCE (RFC 7636), as Cognito's Hosted UI and
// other issuers serve it to public clients: no secret in the page.

export function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A random URL-safe string from `size` random bytes (32 bytes: 43 characters). */
export function randomString(size = 32, cryptoImpl = globalThis.crypto) {
  return base64url(cryptoImpl.getRandomValues(new Uint8Array(size)));
}

/** The S256 code challenge of a verifier. */
export async function codeChallenge(verifier, cryptoImpl = globalThis.crypto) {
  const digest = await cryptoImpl.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** Where to send the browser to sign in. */
export function authorizeUrl(config, { state, challenge, redirectUri }) {
  const url = new URL(config.authorizeUrl);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", config.clientId);
  url.searchParams.set("redirect_uri", redirectUri);
  url.searchParams.set("scope", config.scope);
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", challenge);
  url.searchParams.set("code_challenge_method", "S256");
  return url.toString();
}

/**
 * The issuer's answer in the redirect's query: {code} when it is one for
 * the sign-in this page started (same state), {error} when the issuer
 * refused, null when the URL carries no answer at all.
 */
export function parseCallback(search, expectedState) {
  const params = new URLSearchParams(search);
  if (!params.has("code") && !params.has("error")) return null;
  if (!expectedState || params.get("state") !== expectedState) {
    return { error: "The sign-in answer does not match a sign-in started here; please sign in again." };
  }
  if (params.has("error")) {
    return { error: params.get("error_description") || params.get("error") };
  }
  return { code: params.get("code") };
}

/** The form body that exchanges the code for tokens. */
export function codeExchangeBody(config, { code, verifier, redirectUri }) {
  return new URLSearchParams({
    grant_type: "authorization_code",
    client_id: config.clientId,
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
}

/** The form body that trades a refresh token for a fresh ID token. */
export function refreshBody(config, refreshToken) {
  return new URLSearchParams({ grant_type: "refresh_token", client_id: config.clientId, refresh_token: refreshToken });
}
