// The README's example, type-checked against index.d.ts (tests/types.test.js runs tsc).
import { ChatClient, ChatError } from "nats-callout-client";

export async function main(): Promise<void> {
  const c = await ChatClient.connect({ api: "http://127.0.0.1:8080", servers: "nats://127.0.0.1:4222", username: "bob", password: "bob" });
  c.onMessage("all1", (from, text, meta) => console.log(`${meta.room} ${from}: ${text}`));
  c.on("room-lost", ({ room, reason }) => console.log(`lost ${room} (${reason})`));
  c.on("granted", ({ room, access }) => console.log(`may now ${access} ${room}`));
  await c.join("all1");
  try {
    await c.join("alice1");
  } catch (err) {
    if (err instanceof ChatError && err.code === "refused") console.log("not for bob");
  }
  const id: string = await c.send("all1", "hello");
  const rooms: string[] = c.rooms();
  const members = await c.members("all1").catch(() => []);
  console.log(id, rooms, members);
  const guest = await ChatClient.connect({ api: "", guest: true });
  const key = await ChatClient.connect({ api: "", seed: "SU...", servers: ["nats://a:4222"] });
  const provider = await ChatClient.connect({ api: "", token: async () => "a token", autoRefresh: false });
  const page = await ChatClient.connect({ api: "", natsCredentials: true });
  page.on("connected", ({ via }) => console.log(via === c.via ? "same way" : `via ${via}`));
  page.on("credentials-off", ({ reason }) => console.log(`the callout decides (${reason})`));
  await Promise.all([guest.close(), key.close(), provider.close(), page.close(), c.close()]);
}
