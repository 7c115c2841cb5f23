/**
 * How deeply a request body may nest JSON arrays and objects. Far above any document the API
 * takes (a policy nests about 7 levels), and far below where parsing, validation or an error
 * message that quotes a value would recurse out of the stack.
 */
export const JSON_MAX_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * True when `text` nests arrays and objects deeper than `maxDepth` (brackets inside strings do
 * not count). One pass over the text that stops at the first level too deep, so a body of nothing
 * but brackets is refused before it is parsed at all.
 */
export function jsonNestsDeeperThan(text: string, maxDepth = JSON_MAX_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}
