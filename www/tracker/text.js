// Text and bytes: UTF-8 lengths (the core's unit for every limit), ids, base64 for saved state.

const enc = new TextEncoder();
/** UTF-8 length of `s`. */
export const bytes = (s) => enc.encode(s).length;
/** `s` cut to at most `max` UTF-8 bytes (the core refuses longer fields; cutting before apply and
 * send keeps the browser and the server on the same event). */
export const cut = (s, max) => {
  s = String(s);
  if (s.length * 3 <= max || bytes(s) <= max) return s;
  while (bytes(s) > max) s = s.slice(0, Math.floor(s.length * 0.9));
  return s;
};

/** A random id (event ids, visitor ids). */
export const uid = () => {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
};
export const b64 = (u8) => btoa(String.fromCharCode.apply(null, u8));
export const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
