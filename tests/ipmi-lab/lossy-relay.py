#!/usr/bin/env python3
"""UDP relay for tests: forwards between a client and a BMC on 127.0.0.1 and
drops every fifth packet in each direction (20 % loss). `tc netem` is not
available in every kernel, so the loss is made here.
Usage: lossy-relay.py LISTEN_PORT TARGET_PORT   (prints "ready" when bound;
on SIGTERM prints the number of dropped packets)."""
import select, signal, socket, sys

listen, target = int(sys.argv[1]), int(sys.argv[2])
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
            if state["up"] % 5 == 0:
                state["dropped"] += 1
            else:
                back.send(data)
        else:
            try:
                data = back.recv(4096)
            except ConnectionRefusedError:
                continue
            state["down"] += 1
            if state["down"] % 5 == 0:
                state["dropped"] += 1
            elif state["client"]:
                front.sendto(data, state["client"])
