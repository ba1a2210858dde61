// Generated from src/event/limits.rs by `make generate`: do not edit.
// Lengths are UTF-8 bytes, as the core counts them.
export const MAX_EVENT_BYTES = 16384;
export const MAX_ID_LEN = 128;
export const MAX_LEAD_ID_LEN = 64;
export const MAX_URL_LEN = 2048;
export const MAX_PATH_LEN = 1024;
export const MAX_UA_LEN = 512;
export const MAX_MAP_ENTRIES = 32;
export const MAX_KEY_LEN = 64;
export const MAX_VALUE_LEN = 512;
export const MAX_TRAIT_VALUE_LEN = 64;
export const MAX_ENGAGED_MS = 86400000;
export const MIN_TS = 946684800000;
export const MAX_TS = 4102444800000;
export const MAX_TZ_OFFSET = 840;
export const MAX_BATCH_EVENTS = 100;
export const MAX_BODY_BYTES = 65536;
