// Message text as plain text pieces and links: the view makes text nodes
// and anchors from them, so no message can inject markup.

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** [{text}, {text, href}, ...] covering `content` exactly once, in order. */
export function segments(content) {
  const pieces = [];
  let last = 0;
  for (const match of content.matchAll(URL_PATTERN)) {
    let link = match[0];
    const trailing = link.match(TRAILING);
    if (trailing) link = link.slice(0, -trailing[0].length);
    const href = safeHref(link);
    if (!href) continue;
    if (match.index > last) pieces.push({ text: content.slice(last, match.index) });
    pieces.push({ text: link, href });
    last = match.index + link.length;
  }
  if (last < content.length) pieces.push({ text: content.slice(last) });
  return pieces;
}

/** Only http and https links are made clickable. */
export function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function initial(name) {
  const first = [...(name || "?").trim()][0] || "?";
  return first.toUpperCase();
}

export const MAX_LENGTH = 5000;
export const WARN_LENGTH = 4500;

/** What the counter under the input says, or null while far from the limit. */
export function lengthNotice(text) {
  const length = text.length; // UTF-16 code units, as the server counts
  if (length < WARN_LENGTH) return null;
  return { text: `${length} / ${MAX_LENGTH}`, over: length > MAX_LENGTH };
}
