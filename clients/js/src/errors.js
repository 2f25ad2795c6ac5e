// Typed errors: every failure the kit reports is a ChatError with a short, stable `code`.
// The service's own codes (docs: reference/error-codes) pass through unchanged
// (`invalid-credentials`, `rate-limited`, `not-room-owner`, `room-exists`, ...); the kit adds:
//
//   refused         a room the server would not grant (the permission error for the SUB)
//   read-only       a publish the server refused (the room may be read, not written)
//   auth-expired    the session can no longer be renewed (the refresh was refused)
//   bad-room-name   a room name that is not [A-Za-z0-9_-]{1,64}
//   too-many-rooms  more rooms than the service's maxRooms
//   not-joined      send() to a room not joined
//   not-connected   send() while no connection came back within sendTimeoutMs
//   left            a join given up by a leave before it was answered
//   network         the service cannot be reached, or a publish failed
//   closed          the client was closed
//   connect-failed  the first NATS connection failed (the cause is in `cause`)
//   bad-request     a missing or wrong option or argument
//   bad-seed        a key login's seed that is not an nkey seed

export class ChatError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, retryAfter?: number, room?: string, reason?: string, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "ChatError";
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.retryAfter !== undefined) this.retryAfter = extra.retryAfter;
    if (extra.room !== undefined) this.room = extra.room;
    if (extra.reason !== undefined) this.reason = extra.reason;
  }
}

/** True for the server's "Authorization Violation" and "User Authentication Expired". */
export function isAuthError(err) {
  const name = err?.name ?? "";
  return (
    name === "AuthorizationError" ||
    name === "UserAuthenticationExpiredError" ||
    /authori[sz]ation violation|authentication expired/i.test(String(err?.message ?? ""))
  );
}

/** True for "User Authentication Expired" (the user JWT of a live connection expired). */
export function isExpired(err) {
  return (
    err?.name === "UserAuthenticationExpiredError" ||
    /authentication expired/i.test(String(err?.message ?? ""))
  );
}
