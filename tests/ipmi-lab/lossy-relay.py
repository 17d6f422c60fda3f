#!/usr/bin/env python3
"""UDP relay for tests: forwards between a client and a BMC on 127.0.0.1 and
drops every DROP_EVERY-th packet in each direction (5: 20 % loss; 0: none).
`tc netem` is not available in every kernel, so the loss is made here.
It also counts what the client sends: after every packet COUNTS_FILE holds
"<packets> <open-session-requests>" (an RMCP+ Open Session Request is
payload type 0x10), so a test can tell how many sessions were opened.
Usage: lossy-relay.py LISTEN_PORT TARGET_PORT [DROP_EVERY [COUNTS_FILE]]
(prints "ready" when bound; on SIGTERM prints the number of dropped packets)."""
import os, select, signal, socket, sys

listen, target = int(sys.argv[1]), int(sys.argv[2])
drop_every = int(sys.argv[3]) if len(sys.argv) > 3 else 5
counts = sys.argv[4] if len(sys.argv) > 4 else None
opens = 0
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", listen))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
back.bind(("127.0.0.1", 0))
back.connect(("127.0.0.1", target))
state = {"up": 0, "down": 0, "dropped": 0, "client": None}

def stop(*_):
    print(f"dropped {state['dropped']}", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    ready, _, _ = select.select([front, back], [], [], 1.0)
    for s in ready:
        if s is front:
            data, state["client"] = front.recvfrom(4096)
            state["up"] += 1
            if len(data) > 5 and data[4] == 0x06 and data[5] & 0x3F == 0x10:
                opens += 1
            if counts:
                with open(counts + ".tmp", "w") as f:
                    f.write(f"{state['up']} {opens}\n")
                os.replace(counts + ".tmp", counts)
            if drop_every and state["up"] % drop_every == 0:
                state["dropped"] += 1
            else:
                back.send(data)
        else:
            try:
                data = back.recv(4096)
            except ConnectionRefusedError:
                continue
            state["down"] += 1
            if drop_every and state["down"] % drop_every == 0:
                state["dropped"] += 1
            elif state["client"]:
                front.sendto(data, state["client"])
