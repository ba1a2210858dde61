// First-party storage: localStorage under `ls_*` (every access may throw: private modes, quotas,
// disabled storage) and the `ls_vid` cookie that carries the visitor id across subdomains.
import { MAX_ID_LEN } from './limits.js';

export const get = (k) => {
  try {
    return localStorage.getItem('ls_' + k);
  } catch {
    return null;
  }
};
export const set = (k, v) => {
  try {
    localStorage.setItem('ls_' + k, v);
    return true;
  } catch {
    return false;
  }
};
export const del = (k) => {
  try {
    localStorage.removeItem('ls_' + k);
  } catch {}
};
export const readJSON = (k, dflt) => {
  try {
    return JSON.parse(get(k)) ?? dflt;
  } catch {
    return dflt;
  }
};

const COOKIE = 'ls_vid';
/** A well-formed visitor id (the core's id rule: word characters and `-`, at most MAX_ID_LEN). */
export const VID = new RegExp(`^[\\w-]{1,${MAX_ID_LEN}}$`);
export const cookie = () => {
  const v = (document.cookie.match(/(?:^|;\s*)ls_vid=([\w-]+)/) || [])[1];
  return v && VID.test(v) ? v : undefined;
};
export const setCookie = (v, maxAge) => {
  try {
    document.cookie = `${COOKIE}=${v};path=/;max-age=${maxAge};SameSite=Lax${
      location.protocol === 'https:' ? ';Secure' : ''
    }`;
  } catch {}
};
