// Consent: what the visitor decided (stored as `ls_consent`) and Global Privacy Control, which
// overrides any decision. Nothing is sent without `allowed()`; nothing reaches a CRM without
// `crmAllowed()`.
import { cfg } from './config.js';
import { readJSON } from './storage.js';

export const gpc = () => navigator.globalPrivacyControl === true;
export const consentState = () => readJSON('consent', {});
export const allowed = () => {
  if (!cfg.endpoint || gpc()) return false;
  const c = consentState();
  if (c.analytics === false) return false;
  return cfg.consent === 'granted' || c.analytics === true;
};
export const undecided = () => !gpc() && cfg.consent !== 'granted' && consentState().analytics == null;
export const crmAllowed = () => {
  if (gpc()) return false;
  const c = consentState();
  return typeof c.crm === 'boolean' ? c.crm : cfg.consent === 'granted';
};
