// The service's HTTP API (docs: reference/http-api): logins, the token refresh, the
// configuration a client needs, and rooms as data.
//
// Two modes. Token mode (Node, native apps): the access and refresh tokens stay in this
// object's memory, calls carry `Authorization: Bearer`. Cookie mode (browsers, `cookie: true`):
// the service keeps both tokens in HttpOnly cookies, so no script ever sees one; only the
// access token's expiry is known here.

import { fromSeed } from "@nats-io/nkeys";
import { ChatError } from "./errors.js";

/** Defaults of `GET /api/config`'s fields, for a service that does not send them. */
export const DEFAULT_CONFIG = Object.freeze({
  readSubject: "chat.{room}.>",
  writeSubject: "chat.{room}.{user}",
  inboxPrefix: "_INBOX.{user}",
  maxRooms: 50,
  noticeSubject: "nats-callout.notice.{user}",
});

const REFRESH_CODES = /^(access-token-expired|token-|missing-token)/;

/** Bytes as unpadded base64url (signatures). */
export function base64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The claims of a JWT, or null; nothing is verified (the server does that). */
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    return claims !== null && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The `exp` (unix seconds) of a JWT, or null. */
export function jwtExpiry(token) {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === "number" ? exp : null;
}

export class Api {
  /**
   * @param {{api: string, cookie?: boolean, fetch?: typeof fetch, deviceId?: string, clientId?: string}} o
   */
  constructor(o) {
    this.base = String(o.api ?? "").replace(/\/+$/, "");
    this.cookie = Boolean(o.cookie);
    /** Renew before expiry (else only when the service refuses the token). */
    this.proactive = o.autoRefresh !== false;
    this.fetch = o.fetch ?? globalThis.fetch.bind(globalThis);
    this.ids = { deviceId: o.deviceId, clientId: o.clientId };
    /** The access token (token mode), or null. */
    this.accessToken = null;
    this.refreshToken = null;
    /** A function giving a fresh access token (a token the app holds), or null. */
    this.tokenSource = null;
    /** When the access token expires, on this machine's clock (ms), or null if unknown. */
    this.expiresAt = null;
    /** Its lifetime when it was issued (ms). */
    this.lifetimeMs = null;
    this.user = null;
    this.refreshing = null;
    /** Called after every successful renewal (the client reschedules its timer). */
    this.onRefreshed = null;
  }

  /** One HTTP call; the answer's JSON, or a ChatError with the service's code. */
  async raw(method, path, body, { bearer = true } = {}) {
    const init = {
      method,
      headers: {},
      cache: "no-store",
      credentials: this.cookie ? "include" : "omit",
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (bearer && !this.cookie && this.accessToken) {
      init.headers.authorization = `Bearer ${this.accessToken}`;
    }
    let response;
    try {
      response = await this.fetch(`${this.base}${path}`, init);
    } catch (err) {
      throw new ChatError("network", `the service cannot be reached (${err.message})`, { cause: err });
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      // an empty or non-JSON body
    }
    if (!response.ok) {
      const retry = Number(response.headers.get("retry-after"));
      throw new ChatError(
        data?.error_code ?? response.headers.get("x-error-code") ?? `http-${response.status}`,
        data?.error ?? `HTTP ${response.status}`,
        { status: response.status, ...(retry > 0 ? { retryAfter: retry } : {}) },
      );
    }
    return { data, response };
  }

  /** An authenticated call: after a 401 for the access token, refresh once and try again. */
  async call(method, path, body) {
    if (this.proactive && this.expiresAt !== null && this.expiresAt - Date.now() < 1000) {
      await this.refresh("expiring");
    }
    try {
      return (await this.raw(method, path, body)).data;
    } catch (err) {
      if (err.status !== 401 || !REFRESH_CODES.test(err.code) || !this.renewable()) throw err;
      await this.refresh("api-401");
      return (await this.raw(method, path, body)).data;
    }
  }

  #took({ data, response }) {
    if (!this.cookie) {
      this.accessToken = data.accessToken ?? null;
      this.refreshToken = data.refreshToken ?? this.refreshToken;
    }
    this.user = data.userId ?? this.user;
    const serverNow = Date.parse(response.headers.get("date") ?? "") || Date.now();
    const at = Date.parse(data.accessTokenExpiresAt ?? "");
    this.#expiresIn(Number.isNaN(at) ? null : at - serverNow);
    return data;
  }

  /**
   * A browser session already in the cookies: `GET /api/config` names its user and the access
   * cookie's expiry (unix seconds), so the renewal can be scheduled as after a login.
   */
  adoptCookieSession({ data, response }) {
    this.user = data.user;
    const serverNow = Date.parse(response.headers.get("date") ?? "") || Date.now();
    this.#expiresIn(typeof data.expiresAt === "number" ? data.expiresAt * 1000 - serverNow : null);
  }

  #expiresIn(ms) {
    this.lifetimeMs = ms === null ? null : Math.max(ms, 0);
    this.expiresAt = ms === null ? null : Date.now() + this.lifetimeMs;
  }

  #withIds(body) {
    const out = { ...body };
    if (this.ids.deviceId) out.deviceId = this.ids.deviceId;
    if (this.ids.clientId) out.clientId = this.ids.clientId;
    if (this.cookie) out.cookie = true;
    return out;
  }

  async login(username, password) {
    return this.#took(
      await this.raw("POST", "/api/auth/login", this.#withIds({ username, password }), { bearer: false }),
    );
  }

  async guest() {
    return this.#took(await this.raw("POST", "/api/auth/guest", this.#withIds({}), { bearer: false }));
  }

  /** Key login: ask a challenge for the key, sign it with the seed, answer it. */
  async keyLogin(seed) {
    let kp;
    try {
      kp = fromSeed(new TextEncoder().encode(seed));
    } catch (err) {
      throw new ChatError("bad-seed", "the seed is not an nkey seed", { cause: err });
    }
    try {
      const publicKey = kp.getPublicKey();
      const ids = {};
      if (this.ids.deviceId) ids.deviceId = this.ids.deviceId;
      if (this.ids.clientId) ids.clientId = this.ids.clientId;
      const { data } = await this.raw(
        "POST",
        "/api/auth/challenge",
        { publicKey, ...ids },
        { bearer: false },
      );
      const signature = base64url(kp.sign(new TextEncoder().encode(data.challenge)));
      return this.#took(
        await this.raw(
          "POST",
          "/api/auth/authenticate",
          this.#withIds({ challenge: data.challenge, publicKey, signature }),
          { bearer: false },
        ),
      );
    } finally {
      kp.clear();
    }
  }

  /** A token the app already holds (an identity provider's), or a function that gives one. */
  async useToken(token) {
    if (typeof token === "function") this.tokenSource = token;
    await this.#takeToken(typeof token === "function" ? await token() : token);
  }

  async #takeToken(token) {
    if (typeof token !== "string" || token.length === 0) {
      throw new ChatError("missing-token", "no access token was given");
    }
    this.accessToken = token;
    const exp = jwtExpiry(token);
    this.#expiresIn(exp === null ? null : exp * 1000 - Date.now());
  }

  /** Whether the access token can be renewed. */
  renewable() {
    return this.cookie || this.refreshToken !== null || this.tokenSource !== null;
  }

  /**
   * Renew the access token (one refresh at a time; callers share it). A refusal is a
   * ChatError `auth-expired` with the service's code in `reason`. `reason` says why (for the
   * `refreshed` event): "timer", "expiring", "api-401", "nats-denied", "closed".
   */
  refresh(reason = "asked") {
    if (!this.refreshing) {
      this.refreshing = this.#refresh()
        .then(() => this.onRefreshed?.(reason))
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  async #refresh() {
    if (this.tokenSource) {
      let token;
      try {
        token = await this.tokenSource();
      } catch (err) {
        throw new ChatError("auth-expired", `the token source failed: ${err.message}`, { cause: err });
      }
      return this.#takeToken(token);
    }
    if (!this.renewable()) {
      throw new ChatError("auth-expired", "the access token expired and cannot be renewed (no refresh token)");
    }
    try {
      const body = this.cookie ? undefined : { refreshToken: this.refreshToken };
      return this.#took(await this.raw("POST", "/api/auth/refresh", body, { bearer: false }));
    } catch (err) {
      if (err.status === 401 || err.status === 400) {
        throw new ChatError("auth-expired", `the session cannot be renewed (${err.code})`, {
          status: err.status,
          reason: err.code,
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Ends the session (and clears the browser's cookies). */
  async logout() {
    const body = this.cookie || !this.refreshToken ? undefined : { refreshToken: this.refreshToken };
    await this.raw("POST", "/api/auth/logout", body);
    this.accessToken = this.refreshToken = null;
  }

  /** `GET /api/config` with the kit's defaults for fields the service does not send. */
  async config() {
    const { data } = await this.raw("GET", "/api/config", undefined, { bearer: false });
    const out = { ...DEFAULT_CONFIG };
    for (const k of Object.keys(DEFAULT_CONFIG)) {
      if (data?.[k] !== undefined && data[k] !== null) out[k] = data[k];
    }
    out.websocketPort = data?.websocketPort ?? null;
    out.websocketUrl = data?.websocketUrl ?? null;
    return out;
  }

  rooms(query = {}) {
    const q = new URLSearchParams();
    if (query.open) q.set("open", "true");
    if (query.after) q.set("after", query.after);
    if (query.limit) q.set("limit", String(query.limit));
    const s = q.toString();
    return this.call("GET", `/api/rooms${s ? `?${s}` : ""}`);
  }
}

/** A path segment for a room or user name (validated by the caller; encoded all the same). */
export const seg = (s) => encodeURIComponent(String(s));
