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

/** A token answer (login, refresh) in browser mode carries no token: `{user}`. */
function tokenAnswer({ data }) {
  return { user: data.userId };
}

export const api = {
  /** `{websocketPort, websocketUrl, user, providers, pageClientId}`; `user` is null without a valid `nats_token` cookie. */
  async config() {
    const { data } = await call("GET", "/api/config");
    return {
      websocketPort: data.websocketPort,
      websocketUrl: data.websocketUrl ?? null,
      user: data.user ?? null,
      providers: data.providers ?? [],
      pageClientId: data.pageClientId ?? null,
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
