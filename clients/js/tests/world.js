// What the kit's tests against a real service share: the world's addresses (set by
// tests/it/clients.rs, which starts nats-server and the service), clients that close
// themselves, the operator's controls, and waiting for an event.

import { ChatClient } from "../src/node.js";

export const world = {
  api: process.env.API_URL,
  servers: process.env.NATS_URL,
  control: process.env.CONTROL_URL,
  accessTtlMs: Number(process.env.ACCESS_TTL_MS ?? 0),
  carolSeed: process.env.CAROL_SEED,
};

/** Skip reason for tests that need the world (run them with `cargo test clients::`). */
export const needsWorld = world.api
  ? false
  : "no service: run through `cargo nextest run --test it -E 'test(/clients::/)'`";

const open = new Set();

/** A connected client, closed by `closeAll`. */
export async function client(options) {
  const c = await ChatClient.connect({ api: world.api, servers: world.servers, ...options });
  open.add(c);
  return c;
}

export const login = (user, extra = {}) => client({ username: user, password: user, ...extra });

export async function closeAll() {
  await Promise.all([...open].map((c) => c.close()));
  open.clear();
}

/** Ask the world's operator: `kick/USER`, `ldm/USER`, `restart-nats`. */
export async function operator(what) {
  const r = await fetch(`${world.control}/${what}`, { method: "POST" });
  const text = await r.text();
  if (!r.ok) throw new Error(`${what}: ${r.status} ${text}`);
  return text;
}

/** The next `event` of client `c` (for which `pred` holds), within `ms`. */
export function next(c, event, pred = () => true, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const off = c.on(event, (d) => {
      if (!pred(d)) return;
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });
}

/** Messages `c` hears in `room`, as `from: text` strings. */
export function inbox(c, room) {
  const heard = [];
  c.onMessage(room, (from, text) => heard.push(`${from}: ${text}`));
  return heard;
}

/** Wait until `f()` holds (checked every 20 ms), within `ms`. */
export async function until(what, f, ms = 10_000) {
  const start = Date.now();
  while (!(await f())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `c` in `room` hears `sender` (sending again until heard: the room may be reconnecting). */
export async function hears(c, sender, room, text) {
  const heard = inbox(c, room);
  const start = Date.now();
  while (!heard.includes(`${sender.user}: ${text}`)) {
    if (Date.now() - start > 10_000) throw new Error(`${c.user} never heard ${text} in ${room}`);
    await sender.send(room, text);
    await until(`${text}`, () => heard.includes(`${sender.user}: ${text}`), 1000).catch(() => {});
  }
}

export const unique = (prefix) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
