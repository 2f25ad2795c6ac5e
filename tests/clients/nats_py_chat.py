# A chat client written with the official Python client, nats-py, as a Python bot would be:
# log in over HTTP, connect with user = rooms and password = access token (nats-py sends a
# token only without a user, so the password is the form it can send beside the rooms).
#
#   python tests/clients/nats_py_chat.py API_URL NATS_URL
#
# Started by tests/it/callout/clients.rs, which plays alice. One JSON line per step on
# stdout:
#   {"step": "ready"}                     subscribed to chat.all1.> and heard itself there
#                                         (alice then says hello)
#   {"step": "heard", "subject", "data"}  alice's hello
#   {"step": "refused", "errors": [...]}  subscribing to chat.alice1.> and publishing as
#                                         alice were refused; "hi from python" then went to
#                                         chat.all1.bob
#   {"step": "rejoined"}                  reconnected (force_reconnect) with bob2 added to
#                                         the list, and heard itself there
#   {"step": "done"}
import asyncio
import json
import sys
import urllib.request

import nats

TIMEOUT = 10


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def login(api):
    req = urllib.request.Request(
        f"{api}/api/auth/login",
        data=json.dumps({"username": "bob", "password": "bob", "deviceId": "python"}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return json.load(r)["accessToken"]


async def wait_for(errors, needle):
    for _ in range(TIMEOUT * 50):
        if any(needle in e for e in errors):
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"no error containing {needle!r}: {errors}")


async def main(api, url):
    token = login(api)
    rooms = "all1;bob1;alice1"
    errors = []
    reconnected = asyncio.Event()

    async def error_cb(e):
        errors.append(str(e))

    async def reconnected_cb():
        reconnected.set()

    # As the book's Client conventions show it: functions, read again at every reconnect.
    nc = await nats.connect(
        url,
        user=lambda: rooms,
        password=lambda: token,
        error_cb=error_cb,
        reconnected_cb=reconnected_cb,
        connect_timeout=TIMEOUT,
        max_reconnect_attempts=3,
    )
    sub = await nc.subscribe("chat.all1.>")
    # In place for certain once the server has routed a message of ours through it (after a
    # flush alone, alice's hello sent right after "ready" once went unheard under load).
    await nc.publish("chat.all1.bob", b"python is here")
    probe = await sub.next_msg(timeout=TIMEOUT)
    if probe.data != b"python is here":
        raise SystemExit(f"unexpected {probe.subject}: {probe.data!r}")
    say("ready")
    msg = await sub.next_msg(timeout=TIMEOUT)
    say("heard", subject=msg.subject, data=msg.data.decode())

    # A room bob has no grant for, and a message sent as alice: both refused by the server.
    await nc.subscribe("chat.alice1.>")
    await nc.publish("chat.all1.alice", b"forged by python")
    await nc.flush(timeout=TIMEOUT)
    await wait_for(errors, 'permissions violation for subscription to "chat.alice1.>"')
    await wait_for(errors, 'permissions violation for publish to "chat.all1.alice"')
    # Bob's own subject works: the test (alice) hears this after anything sent before.
    await nc.publish("chat.all1.bob", b"hi from python")
    await nc.flush(timeout=TIMEOUT)
    say("refused", errors=errors)

    # Join bob2: a new list, then a reconnect; the callout decides again.
    rooms = "all1;bob1;bob2"
    await nc.force_reconnect()
    await asyncio.wait_for(reconnected.wait(), TIMEOUT)
    bob2 = await nc.subscribe("chat.bob2.>")
    await nc.flush(timeout=TIMEOUT)
    await nc.publish("chat.bob2.bob", b"in bob2")
    msg = await bob2.next_msg(timeout=TIMEOUT)
    if msg.subject != "chat.bob2.bob":
        raise SystemExit(f"unexpected {msg.subject}")
    say("rejoined")
    await nc.close()
    say("done")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
