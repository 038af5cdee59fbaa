// textkit: small, dependency-free string utilities.
// The functions are kept in alphabetical order, each with a short doc comment.

/**
 * Upper-cases the first character of `text` and leaves the rest as it is.
 * @param {string} text
 * @returns {string}
 */
export function capitalize(text) {
  if (text.length === 0) return text;
  return text[0].toUpperCase() + text.slice(1);
}

/**
 * Title Case: every word starts with a capital letter and continues in lower case.
 * @param {string} text
 * @returns {string}
 */
export function titleCase(text) {
  return capitalize(text.toLowerCase());
}

/**
 * The number of words in `text`, words being separated by whitespace.
 * @param {string} text
 * @returns {number}
 */
export function wordCount(text) {
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
}
