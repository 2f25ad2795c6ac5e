// The HTTP API of nats-callout, in browser mode: the HttpOnly cookies carry the tokens, so
// no function here ever sees one. Answers are JSON; errors are {error, error_code}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Milliseconds until an RFC 3339 expiry, measured on the server's clock (`Date` header). */
function remainingMs(expiresAt, response) {
  const serverNow = Date.parse(response.headers.get("date") ?? "") || Date.now();
  return Date.parse(expiresAt) - serverNow;
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `the server cannot be reached (${err.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // an empty or non-JSON body: keep null
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data?.error_code ?? `http-${response.status}`,
      data?.error ?? response.statusText,
    );
  }
  return { data, response };
}

/**
 * A token answer (login, refresh) in browser mode carries no token, only the expiry.
 * Returns `{user, expiresInMs}`.
 */
function tokenAnswer({ data, response }) {
  return { user: data.userId, expiresInMs: remainingMs(data.accessTokenExpiresAt, response) };
}

export const api = {
  /** `{websocketPort, websocketUrl, user, providers, expiresAt}`; `user` is null without a valid `nats_token` cookie. */
  async config() {
    const { data, response } = await call("GET", "/api/config");
    const serverNow = Date.parse(response.headers.get("date") ?? "") || Date.now();
    return {
      websocketPort: data.websocketPort,
      websocketUrl: data.websocketUrl ?? null,
      user: data.user ?? null,
      providers: data.providers ?? [],
      pageClientId: data.pageClientId ?? null,
      expiresInMs: data.expiresAt ? data.expiresAt * 1000 - serverNow : 0,
    };
  },
  /** `who`: the page's `clientId` (null: none) and this browser's `deviceId`. */
  async login(username, password, who = {}) {
    const body = { username, password, cookie: true };
    if (who.clientId) body.clientId = who.clientId;
    if (who.deviceId) body.deviceId = who.deviceId;
    return tokenAnswer(await call("POST", "/api/auth/login", body));
  },
  /** Uses the `nats_refresh` cookie; renews both cookies. */
  async refresh() {
    return tokenAnswer(await call("POST", "/api/auth/refresh"));
  },
  /** Ends our session; returns the provider's end-session URL for a provider login, else null. */
  async logout() {
    const { data } = await call("POST", "/api/auth/logout");
    return data?.providerLogout ?? null;
  },
  /** `[{name, read, write, owner?, join?}]`: the rooms the caller may join (data rooms name their owner). */
  async rooms() {
    return (await call("GET", "/api/rooms")).data;
  },
  // Rooms as data (contract 11).
  async createRoom(name, join) {
    return (await call("POST", "/api/rooms", { name, join })).data;
  },
  async addMember(room, userId, access) {
    return (await call("POST", `/api/rooms/${encodeURIComponent(room)}/members`, { userId, access })).data;
  },
  /** `[{userId, access, owner}]` */
  async members(room) {
    return (await call("GET", `/api/rooms/${encodeURIComponent(room)}/members`)).data;
  },
  /** Open rooms the caller has not joined yet: `[{name, owner, join, ...}]` */
  async openRooms() {
    return (await call("GET", "/api/rooms?open=true")).data;
  },
  async joinOpen(room) {
    return (await call("POST", `/api/rooms/${encodeURIComponent(room)}/join`)).data;
  },
};

/** The rest of the API the account page and the admin console use. */
export const more = {
  /** `{id, roles, user: {roles, groups, roomCount}, userError?, ...}` */
  async me() {
    return (await call("GET", "/api/auth/me")).data;
  },
  /** My sessions (admins: `userId`'s), most recently used first. */
  async sessions(userId) {
    const q = userId ? `?userId=${encodeURIComponent(userId)}` : "";
    return (await call("GET", `/api/auth/sessions${q}`)).data;
  },
  /** `{revokedSessions}`; `target` is one of {sessionId}, {userId}, {clientId, userId?}, ... */
  async revoke(target) {
    return (await call("POST", "/api/auth/revoke", target)).data;
  },
  /** `{user, mode, denied?, rooms: [{room, access, reason, source}], sessions, revocations?}` */
  async explain(body) {
    return (await call("POST", "/api/console/explain", body)).data;
  },
  async tokenReset(body) {
    return (await call("POST", "/api/console/token-reset", body)).data;
  },
  async connections() {
    return (await call("GET", "/api/console/connections")).data;
  },
  async permissions() {
    return (await call("GET", "/api/console/permissions")).data;
  },
  async denies() {
    return (await call("GET", "/api/console/denies")).data;
  },
  async metrics() {
    return (await call("GET", "/api/console/metrics")).data;
  },
  /** Every room in data with its members: `[{name, owner, join, members: [{userId, access, owner}]}]` */
  async dataRooms() {
    return (await call("GET", "/api/console/rooms")).data;
  },
  async removeMember(room, userId) {
    return (await call("DELETE", `/api/rooms/${encodeURIComponent(room)}/members/${encodeURIComponent(userId)}`)).data;
  },
  async deleteRoom(room) {
    return (await call("DELETE", `/api/rooms/${encodeURIComponent(room)}`)).data;
  },
};
