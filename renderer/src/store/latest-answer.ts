/**
 * Orders the answers of a repeated request (a list refreshed by polls, events and
 * actions at once): an answer to a request older than the newest answer applied is
 * stale and must not overwrite it. Requests may be answered out of order (Electron IPC
 * handlers run concurrently).
 */
export interface LatestAnswer {
  /** Call before sending a request: the ticket to pass to isCurrent with its answer. */
  begin(): number;
  /** Whether the answer to request `ticket` may be applied (and, if so, records it as the newest applied). */
  isCurrent(ticket: number): boolean;
}

export function latestAnswer(): LatestAnswer {
  let issued = 0;
  let applied = 0;
  return {
    begin: () => ++issued,
    isCurrent(ticket) {
      if (ticket < applied) return false;
      applied = ticket;
      return true;
    },
  };
}
