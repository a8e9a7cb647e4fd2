/**
 * Version and size limits of the helper protocol (docs/helper.md). Both ends use the
 * same numbers: the daemon rejects anything larger, clients never send it.
 */

/** Bumped on any incompatible change of a method, result or notification. */
export const PROTOCOL_VERSION = 1;

/**
 * Longest line (one JSON message, without the newline) either side accepts, in
 * characters. It is also the bound on the unfinished line the helper buffers per
 * connection: a client that passes it (with or without a newline) gets a too_large
 * error and is disconnected.
 */
export const MAX_LINE_LENGTH = 1024 * 1024;

/** Largest `length` of one cbtMap request, in bytes of CBT map (encoded it stays under MAX_LINE_LENGTH). */
export const MAX_CBT_MAP_LENGTH = 512 * 1024;

/** Most sector ranges in one cbtDirty request. */
export const MAX_DIRTY_RANGES = 4096;

/** Longest snapshotWaitEvent timeout, in milliseconds. */
export const MAX_WAIT_EVENT_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** Longest path accepted in any parameter (PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;

/** Clients connected to the helper at once; one more is sent an EAGAIN error line and disconnected. */
export const MAX_CLIENTS = 64;

/** Requests one connection may have in flight; more are refused with EAGAIN. */
export const MAX_IN_FLIGHT_PER_CLIENT = 64;

/** Unsent bytes a client may leave queued (slow reader of notifications) before the helper drops it. */
export const MAX_QUEUED_OUTPUT_BYTES = 16 * 1024 * 1024;
