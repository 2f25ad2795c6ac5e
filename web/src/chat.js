// The chat session as the page shows it: rooms with their messages, unread counts and states,
// on the client kit (clients/js), which does all of the protocol.
//
// The kit (docs: guides/writing-a-client-js) logs in from the HttpOnly cookies the login left,
// puts the rooms in CONNECT `user`, joins and leaves make-before-break, renews the access
// token, follows lame-duck and grants-changed notices, reconnects after kicks and restarts with
// a jittered backoff, and tells a granted room from a refused one. This file keeps only what
// the page needs on top: a room list that remembers refused and lost rooms with their reason,
// the messages of each room (pending until the server echoes them), the rooms the user may
// join, and a status line. Events for main.js: change, status, notice, connected, message,
// delivered, failed, ended.

import { ChatClient, ROOM_NAME, backoffMs } from "../../clients/js/src/browser.js";

export { ROOM_NAME };
const MAX_TEXT = 4000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The session is over: the service refused to renew it (revoked, expired, logged out). */
const sessionOver = (err) => err?.code === "auth-expired" || err?.status === 401;

/** A room's states: joining → joined → lost; joining → refused. */
const WANTED = new Set(["joining", "joined"]);

export class Session extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.user the logged-in user (the login's answer, or GET /api/config)
   * @param {string} o.wsUrl nats-server's websocket URL
   */
  constructor({ user, wsUrl }) {
    super();
    this.user = user;
    this.wsUrl = wsUrl;
    /** @type {ChatClient | null} */
    this.client = null;
    /** @type {Map<string, object>} rooms shown in "Your rooms", in join order */
    this.rooms = new Map();
    /** @type {{name: string, read: boolean, write: boolean, owner?: string}[]} GET /api/rooms */
    this.available = [];
    this.current = null;
    this.status = "connecting";
    this.ended = false;
  }

  // ---- events -------------------------------------------------------------------------

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
  #changed() {
    this.#emit("change");
  }
  #notice(text, kind = "info") {
    this.#emit("notice", { text, kind });
  }
  #setStatus(status) {
    if (this.status !== status) {
      this.status = status;
      this.#emit("status", status);
    }
  }

  /** Connections put in use so far (the status line shows it as data-connects). */
  get connects() {
    return this.client?.connects ?? 0;
  }

  // ---- life cycle ---------------------------------------------------------------------

  /** Connect through the kit (again, with backoff, while nats-server cannot be reached). */
  async start() {
    for (let failures = 1; !this.ended; failures += 1) {
      try {
        const client = await ChatClient.connect({ api: "", servers: this.wsUrl, name: `nats-callout chat (${this.user})` });
        if (this.ended) {
          client.close();
          return;
        }
        this.#attach(client);
        break;
      } catch (err) {
        if (this.ended) return;
        if (sessionOver(err)) return this.#end(err);
        this.#setStatus("reconnecting");
        await sleep(backoffMs(failures, { initialMs: 500 }));
      }
    }
    await this.loadAvailable();
  }

  #attach(client) {
    this.client = client;
    client.on("connected", ({ connects }) => {
      this.#setStatus("connected");
      this.#emit("connected", {});
      // On a reconnect the grants may have changed since the list was loaded.
      if (connects > 1) this.loadAvailable();
    });
    client.on("disconnected", () => this.#setStatus("reconnecting"));
    client.on("grants-changed", (notice) => this.#onGrantsChanged(notice));
    client.on("room-lost", ({ room }) => this.#lose(room, "your access was removed"));
    client.on("error", (err) => {
      if (sessionOver(err)) this.#end(err);
    });
    for (const room of this.rooms.values()) {
      this.#listen(room);
      if (room.state === "joining") this.#joinOnKit(room.name);
    }
    this.#setStatus("connected");
    this.#emit("connected", {});
  }

  /** Close everything (logout, or the session ended). */
  async stop() {
    this.ended = true;
    this.#setStatus("offline");
    await this.client?.close();
  }

  #end(err) {
    if (this.ended) return;
    this.stop();
    this.#emit("ended", `Your session has ended (${err.reason ?? err.code}). Please log in again.`);
  }

  /** An HTTP call through the kit; its error as a text for the page (null: it worked). */
  async #call(fn) {
    try {
      await fn(this.#client());
      return null;
    } catch (err) {
      if (sessionOver(err)) this.#end(err);
      return err.message ?? String(err);
    }
  }

  #client() {
    if (!this.client) throw new Error("not connected yet; try again in a moment");
    return this.client;
  }

  async loadAvailable() {
    const error = await this.#call(async (c) => {
      this.available = await c.availableRooms();
    });
    if (error) {
      if (!this.ended) this.#notice(`could not load the room list: ${error}`, "error");
      return;
    }
    for (const room of this.rooms.values()) {
      const entry = this.available.find((r) => r.name === room.name);
      if (entry) room.write = entry.write;
    }
    this.#changed();
  }

  // ---- rooms ------------------------------------------------------------------------------

  /** Rooms wanted on the connection, in join order. */
  wanted() {
    return [...this.rooms.values()].filter((r) => WANTED.has(r.state)).map((r) => r.name);
  }

  #room(name) {
    let room = this.rooms.get(name);
    if (!room) {
      const entry = this.available.find((r) => r.name === name);
      room = {
        name,
        state: "joining",
        messages: [],
        unread: 0,
        write: entry ? entry.write : null, // null: not known until a publish is refused
        pendingIds: new Set(),
        stopListening: null,
      };
      this.rooms.set(name, room);
      this.#listen(room);
    }
    return room;
  }

  #listen(room) {
    if (this.client && !room.stopListening) {
      room.stopListening = this.client.onMessage(room.name, (from, text, meta) =>
        this.#onMessage(room.name, from, text, meta.id),
      );
    }
  }

  /** Join a room (clicked or typed). Returns an error text, or null. */
  join(rawName) {
    const name = String(rawName ?? "").trim();
    if (!ROOM_NAME.test(name)) return "A room name is 1 to 64 letters, digits, '-' or '_'.";
    const existing = this.rooms.get(name);
    if (existing && WANTED.has(existing.state)) {
      this.select(name);
      return null;
    }
    const max = this.client?.config.maxRooms;
    if (max !== undefined && this.wanted().length >= max) {
      return `You can be in at most ${max} rooms at once; leave one first.`;
    }
    const room = this.#room(name);
    room.state = "joining";
    room.reason = null;
    this.select(name);
    if (this.client) this.#joinOnKit(name);
    return null;
  }

  /** The kit's join: granted, or refused with a reason (the other rooms keep working). */
  #joinOnKit(name, join = (c) => c.join(name)) {
    join(this.client).then(
      () => {
        const room = this.rooms.get(name);
        if (room?.state !== "joining") return;
        room.state = "joined";
        room.reason = null;
        this.#changed();
      },
      (err) => {
        const room = this.rooms.get(name);
        if (room?.state !== "joining" || err.code === "left" || err.code === "closed") return;
        if (sessionOver(err)) return this.#end(err);
        const reason = err.code === "refused" ? (err.reason ?? "not granted") : err.message;
        room.state = "refused";
        room.reason = reason;
        this.#notice(`You may not join ${name}: ${reason}. Your other rooms keep working.`, "error");
        this.#changed();
      },
    );
  }

  /** Leave a room (or dismiss a refused or lost one). */
  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.rooms.delete(name);
    room.stopListening?.();
    if (this.current === name) {
      this.current = this.rooms.keys().next().value ?? null;
      if (this.current) this.rooms.get(this.current).unread = 0;
    }
    this.#changed();
    if (WANTED.has(room.state)) this.client?.leave(name).catch(() => {});
  }

  select(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.current = name;
    room.unread = 0;
    this.#changed();
  }

  #lose(name, reason) {
    const room = this.rooms.get(name);
    if (!room || !WANTED.has(room.state)) return;
    room.state = "lost";
    room.reason = reason;
    this.#notice(`You lost access to ${name}: ${reason}.`, "error");
    this.#changed();
  }

  /** `{type: "grants-changed", room, access, previous, source}`: the kit reconnects itself. */
  #onGrantsChanged(notice) {
    const room = this.rooms.get(notice.room);
    if (notice.access === "none") {
      // The room is lost now; the kit's reconnect (or the kick) follows.
      this.#lose(notice.room, notice.source === "rooms" ? "removed from this room" : "your access was removed");
    } else if (!room || !WANTED.has(room.state)) {
      this.#notice(`You may now join ${notice.room} (${notice.access}).`);
    } else {
      room.write = notice.access.includes("write");
    }
    this.loadAvailable();
  }

  // ---- messages -------------------------------------------------------------------------

  /** Send a message to the current room. Returns an error text, or null. */
  send(rawText) {
    const text = String(rawText ?? "").trim();
    const room = this.rooms.get(this.current);
    if (!text) return "Type a message first.";
    if (text.length > MAX_TEXT) return `A message has at most ${MAX_TEXT} characters.`;
    if (!room || room.state !== "joined") return "Join the room first.";
    if (room.write === false) return `You may read ${room.name} but not write in it.`;
    if (!this.client || this.status !== "connected") return "Not connected; try again in a moment.";
    const id = newId();
    room.pendingIds.add(id);
    this.#emit("message", {
      room: room.name,
      message: { id, sender: this.user, text, at: new Date(), pending: true },
    });
    this.client.send(room.name, text, { id }).catch((err) => {
      if (!room.pendingIds.delete(id)) return;
      this.#emit("failed", { room: room.name, id });
      if (err.code === "read-only") {
        room.write = false;
        this.#notice(`You may read ${room.name} but not write in it.`, "error");
        this.#changed();
      } else {
        this.#notice(`Not sent to ${room.name}: ${err.message}`, "error");
      }
    });
    return null;
  }

  /** A message the kit heard (sender from the subject, each id once across connections). */
  #onMessage(name, sender, rawText, id) {
    const room = this.rooms.get(name);
    if (!room) return;
    const message = { id: id ?? newId(), sender, text: rawText.slice(0, MAX_TEXT), at: new Date() };
    room.messages.push(message);
    if (sender === this.user && id !== null && room.pendingIds.delete(id)) {
      this.#emit("delivered", { room: name, id });
      return;
    }
    if (this.current !== name) {
      room.unread += 1;
      this.#changed();
    }
    this.#emit("message", { room: name, message });
  }

  // ---- rooms as data ------------------------------------------------------------------

  /** Make a room (the caller owns it) and join it. Resolves to an error text, or null. */
  async createRoom(rawName, open) {
    const name = rawName.trim();
    if (!ROOM_NAME.test(name)) return "A room name is 1 to 64 letters, digits, '-' or '_'.";
    const error = await this.#call((c) => c.createRoom(name, { join: open ? "open" : "invite" }));
    if (error) return error;
    await this.loadAvailable();
    return this.join(name);
  }

  /** An owner's (or an admin's) call on a room in data: `fn(client)`; an error text, or null. */
  async manage(fn) {
    const error = await this.#call(fn);
    if (!error) await this.loadAvailable();
    return error;
  }

  async members(room) {
    return this.#client().members(room);
  }

  /** Open rooms the user is not a member of yet. */
  async openRooms() {
    return this.#client().availableRooms({ open: true });
  }

  /** Become a member of an open room and join it. Resolves to an error text, or null. */
  async joinOpen(name) {
    if (!this.client) return "Not connected; try again in a moment.";
    const room = this.#room(name);
    room.state = "joining";
    room.reason = null;
    this.select(name);
    this.#joinOnKit(name, (c) => c.joinOpen(name));
    return null;
  }
}
