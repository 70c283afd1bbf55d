// The format of a Standard Webhooks secret, apart from the signing: the command line checks secrets while it
// parses options, and node:crypto (a few ms to load) is for the commands that sign or verify.

/** The spec's serialisation of a symmetric secret: `whsec_` then the key bytes in base64 (spec, "Signature scheme"). */
export const STANDARD_SECRET_PREFIX = 'whsec_';
// The spec: "At least 24 bytes (192 bits, 512 maximum)" for a whsec_ key.
const MIN_WHSEC_KEY_BYTES = 24;
const MAX_WHSEC_KEY_BYTES = 64;
/** Why a secret cannot be a Standard Webhooks key; undefined when it can. Only `whsec_` secrets have a format to get wrong. */
export function standardSecretProblem(secret: string): string | undefined {
  if (secret.length === 0) return 'must not be empty';
  if (!secret.startsWith(STANDARD_SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(STANDARD_SECRET_PREFIX.length);
  // Canonical standard base64 only: the official library's decoder refuses URL-safe letters and bad padding, and Buffer would quietly skip them.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0 || Buffer.from(encoded, 'base64').toString('base64') !== encoded) {
    return `starts with "${STANDARD_SECRET_PREFIX}" but the rest is not standard base64 (A-Z, a-z, 0-9, +, / and = padding); a whsec_ secret is the key bytes in base64, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`;
  }
  const bytes = Buffer.from(encoded, 'base64').length;
  if (bytes < MIN_WHSEC_KEY_BYTES || bytes > MAX_WHSEC_KEY_BYTES) {
    return `decodes to ${bytes} key bytes; the Standard Webhooks spec asks for ${MIN_WHSEC_KEY_BYTES} to ${MAX_WHSEC_KEY_BYTES} (generate one with 32 random bytes)`;
  }
  return undefined;
}
