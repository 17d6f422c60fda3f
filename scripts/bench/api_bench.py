#!/usr/bin/env python3
"""Workload and report for scripts/bench/api.sh (standard library only).

  api_bench.py run    --url http://127.0.0.1:PORT --pid PID --label NAME \
                      --nodes N --adopt M --image-file PATH --out FILE.json
  api_bench.py report --ours FILE.json [--peer FILE.json] [--peer-source measured|anchors]

`run` drives one Ironic-compatible API: idle RSS, create N nodes from one
keep-alive client, GET /v1/nodes/detail (all pages, and the first page),
manage+adopt M more nodes with a pool of threads, RSS again. Each client thread
keeps one http.client connection alive. Everything it talks to is the --url
given (api.sh only ever passes 127.0.0.1 inside a private network namespace).
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

WANT_VERSION = (1, 115)
MIB = 1024 * 1024


# --------------------------------------------------------------------------
# HTTP client: one keep-alive connection, reconnects if the server drops it.

class Client:
    def __init__(self, url, version, timeout=60.0):
        u = urllib.parse.urlsplit(url)
        if u.hostname != "127.0.0.1":
            raise SystemExit(f"refusing to talk to {u.hostname}: only 127.0.0.1 is allowed")
        self.host, self.port = u.hostname, u.port
        self.timeout = timeout
        self.version = version
        self.conn = None
        self.reconnects = 0
        self.last_wire_s = 0.0  # send → last body byte of the last request

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None):
        """Returns (status, parsed JSON or None, raw bytes). Retries once on a
        dropped keep-alive connection (never on a timeout)."""
        headers = {"Accept": "application/json"}
        if self.version:
            headers["X-OpenStack-Ironic-API-Version"] = self.version
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                self.last_wire_s = time.perf_counter() - t0
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest,
                    http.client.BadStatusLine) as e:
                self.close()
                self.reconnects += 1
                if attempt == 1:
                    raise
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        return resp.status, parsed, raw

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


# --------------------------------------------------------------------------
# Memory

def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def vmrss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_tree_mib(pid):
    """VmRSS of pid plus all its descendants (Ironic may fork workers)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += vmrss_kib(p)
        todo += children(p)
    return total / 1024.0, len(seen)


# --------------------------------------------------------------------------
# Workload pieces

class Errors:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_code = {}
        self.samples = []

    def add(self, what, status, raw):
        with self.lock:
            key = f"{what} {status}"
            self.by_code[key] = self.by_code.get(key, 0) + 1
            if len(self.samples) < 8:
                text = raw[:300].decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                self.samples.append(f"{what} -> {status}: {text}")


def negotiate(url):
    c = Client(url, None)
    st, body, raw = c.request("GET", "/v1")
    c.close()
    if st != 200:
        raise SystemExit(f"GET /v1 answered {st}: {raw[:200]!r}")
    mx = body.get("version", {}).get("version") or "1.1"
    major, minor = (int(x) for x in mx.split("."))
    use = min((major, minor), WANT_VERSION)
    return f"{use[0]}.{use[1]}", mx


def create_nodes(c, prefix, count, errors, instance_info=None, deadline=None):
    uuids = []
    t0 = time.perf_counter()
    for i in range(count):
        body = {"driver": "fake-hardware", "name": f"{prefix}{i}"}
        if instance_info:
            body["instance_info"] = instance_info
        st, obj, raw = c.request("POST", "/v1/nodes", body)
        if st != 201:
            errors.add("POST /v1/nodes", st, raw)
        else:
            uuids.append(obj["uuid"])
        if deadline and time.monotonic() > deadline:
            print(f"    create: deadline reached after {i + 1} of {count}", flush=True)
            break
    dt = time.perf_counter() - t0
    return uuids, dt


def list_all_detail(c, errors):
    """Follows `next` links; returns (seconds on the wire, seconds including
    the client's JSON decoding, nodes seen, pages)."""
    t0 = time.perf_counter()
    wire = 0.0
    path, seen, pages = "/v1/nodes/detail", 0, 0
    while path:
        st, obj, raw = c.request("GET", path)
        wire += c.last_wire_s
        if st != 200:
            errors.add("GET /v1/nodes/detail", st, raw)
            break
        pages += 1
        seen += len(obj.get("nodes", []))
        nxt = obj.get("next")
        path = path_of(nxt) if nxt else None
        if pages > 1000:
            break
    return wire, time.perf_counter() - t0, seen, pages


def first_page(c, errors, limit):
    st, obj, raw = c.request("GET", f"/v1/nodes/detail?limit={limit}")
    dt = c.last_wire_s
    if st != 200:
        errors.add("GET /v1/nodes/detail?limit", st, raw)
        return dt, 0
    return dt, len(obj.get("nodes", []))


def adopt_all(url, version, uuids, threads, poll, node_deadline, total_deadline, errors):
    """manage → wait manageable → adopt → wait active, per node, `threads`
    client threads each with one keep-alive connection. Returns (seconds,
    final states, counters)."""
    final = {}
    counters = {"409_retries": 0, "polls": 0, "verbs": 0}
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + total_deadline

    def verb(c, u, target):
        while True:
            st, _, raw = c.request("PUT", f"/v1/nodes/{u}/states/provision", {"target": target})
            with lock:
                counters["verbs"] += 1
            if st == 202:
                return True
            if st == 409 and time.monotonic() < stop_at:
                # Ironic: "a verb sent just after a transition can get 409
                # until reservation clears" -- retry like the CLI does.
                with lock:
                    counters["409_retries"] += 1
                errors.add(f"PUT states/provision {target} (retried)", st, raw)
                time.sleep(poll)
                continue
            errors.add(f"PUT states/provision {target}", st, raw)
            return False

    def wait(c, u, want):
        t_end = min(time.monotonic() + node_deadline, stop_at)
        state = None
        while True:
            st, obj, raw = c.request("GET", f"/v1/nodes/{u}")
            with lock:
                counters["polls"] += 1
            if st != 200:
                errors.add("GET /v1/nodes/{uuid}", st, raw)
            else:
                state = obj.get("provision_state")
                if state == want:
                    return state
                if state == "error" or (state or "").endswith(" failed"):
                    errors.add(f"node ended in {state}", "-", (obj.get("last_error") or "").encode())
                    return state
            if time.monotonic() > t_end:
                return state
            time.sleep(poll)

    def worker(mine):
        c = Client(url, version)
        try:
            for u in mine:
                state = None
                if verb(c, u, "manage"):
                    state = wait(c, u, "manageable")
                    if state == "manageable" and verb(c, u, "adopt"):
                        state = wait(c, u, "active")
                with lock:
                    final[u] = state
        except Exception as e:  # keep the run bounded and reported
            errors.add("client exception", type(e).__name__, str(e).encode())
        finally:
            c.close()

    ts = [threading.Thread(target=worker, args=(uuids[i::threads],), daemon=True)
          for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(1.0, stop_at - time.monotonic() + 30))
    dt = time.perf_counter() - t0
    return dt, final, counters


# --------------------------------------------------------------------------

def cmd_run(a):
    deadline = time.monotonic() + a.time_budget
    version, server_max = negotiate(a.url)
    print(f"  [{a.label}] server max API version {server_max}; using {version}", flush=True)
    res = {"label": a.label, "nodes": a.nodes, "adopt": a.adopt, "threads": a.threads,
           "api_version": version}
    errors = Errors()

    time.sleep(a.settle)
    res["rss_idle_mib"], res["processes"] = rss_tree_mib(a.pid)
    print(f"  [{a.label}] idle RSS {res['rss_idle_mib']:.1f} MiB "
          f"({res['processes']} process(es))", flush=True)

    c = Client(a.url, version)
    uuids, dt = create_nodes(c, "n", a.nodes, errors, deadline=deadline)
    res["created"] = len(uuids)
    res["create_s"] = dt
    res["create_per_s"] = len(uuids) / dt if dt > 0 else 0
    print(f"  [{a.label}] created {len(uuids)} nodes in {dt:.2f} s "
          f"= {res['create_per_s']:.0f} nodes/s", flush=True)

    rounds, incl, seen, pages = [], [], 0, 0
    for _ in range(a.rounds):
        dt, dt_incl, seen, pages = list_all_detail(c, errors)
        rounds.append(dt)
        incl.append(dt_incl)
    res["detail_all_rounds_s"] = rounds
    res["detail_all_s"] = statistics.median(rounds)
    res["detail_all_incl_decode_s"] = statistics.median(incl)
    res["detail_all_nodes"], res["detail_all_pages"] = seen, pages
    print(f"  [{a.label}] GET /v1/nodes/detail, all {seen} nodes in {pages} pages: "
          f"median {res['detail_all_s'] * 1000:.0f} ms on the wire "
          f"(rounds: {', '.join(f'{r * 1000:.0f}' for r in rounds)} ms); "
          f"{res['detail_all_incl_decode_s'] * 1000:.0f} ms including the client's JSON decoding",
          flush=True)

    fp, fpn = [], 0
    for _ in range(a.rounds):
        dt, fpn = first_page(c, errors, a.page)
        fp.append(dt)
    res["detail_page_rounds_s"] = fp
    res["detail_page_s"] = statistics.median(fp)
    res["detail_page_nodes"] = fpn
    print(f"  [{a.label}] GET /v1/nodes/detail?limit={a.page} (first page, {fpn} nodes): "
          f"median {res['detail_page_s'] * 1000:.0f} ms", flush=True)

    ii = {"image_source": "file://" + os.path.abspath(a.image_file)}
    ad_uuids, dt = create_nodes(c, "a", a.adopt, errors, instance_info=ii, deadline=deadline)
    res["adopt_created"] = len(ad_uuids)
    res["adopt_create_s"] = dt
    c.close()
    print(f"  [{a.label}] created {len(ad_uuids)} nodes to adopt in {dt:.2f} s; "
          f"adopting with {a.threads} threads …", flush=True)

    left = max(30.0, deadline - time.monotonic())
    dt, final, counters = adopt_all(a.url, version, ad_uuids, a.threads, a.poll,
                                    node_deadline=min(a.node_deadline, left),
                                    total_deadline=left, errors=errors)
    active = sum(1 for s in final.values() if s == "active")
    res["adopt_s"] = dt
    res["adopt_active"] = active
    res["adopt_lost"] = a.adopt - active
    res["adopt_final_states"] = {}
    for s in final.values():
        res["adopt_final_states"][str(s)] = res["adopt_final_states"].get(str(s), 0) + 1
    res["adopt_counters"] = counters
    print(f"  [{a.label}] adoption of {a.adopt}: {dt:.2f} s, {active} active, "
          f"{a.adopt - active} lost; {counters['verbs']} verbs, {counters['polls']} polls, "
          f"{counters['409_retries']} x 409 retried", flush=True)

    time.sleep(a.settle)
    res["rss_loaded_mib"], _ = rss_tree_mib(a.pid)
    res["loaded_nodes"] = len(uuids) + len(ad_uuids)
    print(f"  [{a.label}] RSS with {res['loaded_nodes']} nodes: "
          f"{res['rss_loaded_mib']:.1f} MiB", flush=True)

    res["errors"] = errors.by_code
    res["error_samples"] = errors.samples
    res["unexpected_errors"] = sum(n for k, n in errors.by_code.items() if "(retried)" not in k)
    if errors.by_code:
        print(f"  [{a.label}] non-2xx responses: {errors.by_code}", flush=True)
        for s in errors.samples:
            print(f"      {s}", flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


# --------------------------------------------------------------------------
# Report

ANCHORS = {  # shared/reference/anchors.md (OpenStack Ironic 39.0.0 all-in-one)
    "label": "Ironic 39.0.0 (anchors.md, not measured in this run)",
    "create_per_s": 62.0,
    "detail_all_s": 3.29, "detail_all_nodes": 10000,
    "detail_page_s": 0.296, "detail_page_nodes": 1000,
    "adopt_s": 20.5, "adopt": 200, "adopt_lost": None,  # not stated for 10 threads
    "rss_idle_mib": 300.0, "rss_loaded_mib": 377.0, "loaded_nodes": 10000,
}

GOALS = [
    ("detail list of 10k < 150 ms", "detail_all_s", 0.150, "s"),
    ("1,000 adoptions < 5 s", "adopt_s", 5.0, "s"),
    ("idle RSS < 20 MB", "rss_idle_mib", 20.0 * 1e6 / MIB, "MiB"),
]


def fmt_s(v):
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.2f} s"


def cmd_report(a):
    with open(a.ours) as f:
        ours = json.load(f)
    measured = None
    if a.peer:
        with open(a.peer) as f:
            measured = json.load(f)
    peer = measured or ANCHORS
    notes = []

    def scaled(p, key, n_key, ours_n, what, note=True):
        """Peer time scaled linearly to ours_n items; returns (value, text)."""
        v, n = p[key], p.get(n_key)
        if n and ours_n and n != ours_n:
            if note:
                notes.append(f"{what}: Ironic measured at {n}, scaled linearly ×{ours_n / n:g} "
                             f"to {ours_n} for the comparison ({fmt_s(v)} as measured)")
            return v * ours_n / n, fmt_s(v * ours_n / n) + " (scaled)"
        return v, fmt_s(v)

    def lost_text(p):
        if p.get("adopt_lost") is None:
            return "not stated"
        return f"{p['adopt_lost']} of {p['adopt']}"

    # (metric, {source: text}, ratio, direction)
    rows = []

    def add(metric, fn, ours_text, ratio_fn, direction):
        cols = {"peer": fn(peer, True)[1]}
        if measured:
            cols["anchors"] = fn(ANCHORS, False)[1]
        cols["ours"] = ours_text
        pv = fn(peer, False)[0]
        rows.append((metric, cols, ratio_fn(pv) if pv is not None else None, direction))

    add("create nodes (1 keep-alive client), nodes/s",
        lambda p, n: (p["create_per_s"], f"{p['create_per_s']:.0f}"),
        f"{ours['create_per_s']:.0f}",
        lambda pv: ours["create_per_s"] / pv, "higher better")
    add(f"GET /v1/nodes/detail, all {ours['detail_all_nodes']} nodes, pages of 1000",
        lambda p, n: scaled(p, "detail_all_s", "detail_all_nodes", ours["detail_all_nodes"],
                            "detail list, all pages", n),
        fmt_s(ours["detail_all_s"]),
        lambda pv: pv / ours["detail_all_s"], "lower better")
    add(f"GET /v1/nodes/detail, first page of {ours['detail_page_nodes']}",
        lambda p, n: scaled(p, "detail_page_s", "detail_page_nodes", ours["detail_page_nodes"],
                            "detail list, first page", n),
        fmt_s(ours["detail_page_s"]),
        lambda pv: pv / ours["detail_page_s"], "lower better")
    add(f"adopt {ours['adopt']} nodes (manage+adopt, {ours['threads']} threads), until all active",
        lambda p, n: scaled(p, "adopt_s", "adopt", ours["adopt"], "adoption wall time", n),
        fmt_s(ours["adopt_s"]),
        lambda pv: pv / ours["adopt_s"], "lower better")
    add("lost adoptions",
        lambda p, n: (None, lost_text(p)),
        f"{ours['adopt_lost']} of {ours['adopt']}",
        lambda pv: None, "fewer better")
    add("RSS idle, empty DB",
        lambda p, n: (p["rss_idle_mib"], f"{p['rss_idle_mib']:.0f} MiB"),
        f"{ours['rss_idle_mib']:.1f} MiB",
        lambda pv: pv / ours["rss_idle_mib"], "lower better")
    add("RSS loaded (nodes held: see note)",
        lambda p, n: (p["rss_loaded_mib"], f"{p['rss_loaded_mib']:.0f} MiB ({p.get('loaded_nodes')})"),
        f"{ours['rss_loaded_mib']:.1f} MiB ({ours['loaded_nodes']})",
        lambda pv: pv / ours["rss_loaded_mib"], "lower better")
    if peer.get("loaded_nodes") != ours["loaded_nodes"]:
        notes.append(f"RSS loaded: not scaled (memory is not linear in nodes); Ironic held "
                     f"{peer.get('loaded_nodes')} nodes, rackboot {ours['loaded_nodes']}")

    heads = {"peer": "Ironic, this run" if measured else "Ironic (anchors.md)",
             "anchors": "Ironic (anchors.md)", "ours": "rackboot"}
    keys = list(rows[0][1].keys())
    print()
    print("Peer: " + ("OpenStack Ironic 39.0.0 all-in-one, measured in this run (same workload, "
                      "reduced scale; anchors.md figures shown alongside)" if measured
                      else ANCHORS["label"]))
    print("ratio = peer / rackboot for times and memory, rackboot / peer for rates: "
          ">1 means rackboot is better, by that factor.")
    print("List times: median of 5 rounds, request sent -> last body byte on one keep-alive "
          "connection (client JSON")
    print(f"decoding excluded; rackboot including decoding: "
          f"{ours.get('detail_all_incl_decode_s', 0) * 1000:.0f} ms for all pages).")
    print()
    w0 = max(len(r[0]) for r in rows + [("metric",)])
    wk = {k: max([len(heads[k])] + [len(r[1][k]) for r in rows]) for k in keys}
    line = f"| {'metric':<{w0}} | " + " | ".join(f"{heads[k]:>{wk[k]}}" for k in keys) \
        + f" | {'ratio':>7} | better"
    print(line)
    print("|" + "-" * (w0 + 2) + "|" + "|".join("-" * (wk[k] + 2) for k in keys)
          + "|" + "-" * 9 + "|" + "-" * 15)
    for m, cols, r, d in rows:
        rs = f"{r:.1f}x" if r is not None else "-"
        print(f"| {m:<{w0}} | " + " | ".join(f"{cols[k]:>{wk[k]}}" for k in keys)
              + f" | {rs:>7} | {d}")
    if notes:
        print()
        for n in dict.fromkeys(notes):
            print(f"Note: {n}")
    if measured and measured.get("errors"):
        print(f"Note: Ironic non-2xx responses: {measured['errors']}")
    if ours.get("errors"):
        print(f"Note: rackboot non-2xx responses: {ours['errors']}")

    print()
    print("Goals (rackboot):")
    for name, key, limit, unit in GOALS:
        v = ours[key]
        ok = v < limit
        if unit == "s":
            shown = fmt_s(v)
        else:
            shown = f"{v:.1f} MiB ({v * MIB / 1e6:.1f} MB)"
        extra = ""
        if key == "adopt_s":
            extra = f", {ours['adopt_lost']} lost"
            if ours["adopt_lost"] or ours["adopt"] < 1000:
                ok = False
                extra += f" (of {ours['adopt']})"
        if key == "detail_all_s" and ours["detail_all_nodes"] < 10000:
            ok, extra = False, f" (only {ours['detail_all_nodes']} nodes listed)"
        print(f"  {'PASS' if ok else 'MISS'}  {name:<30} measured {shown}{extra}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--url", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--label", required=True)
    r.add_argument("--nodes", type=int, default=10000)
    r.add_argument("--adopt", type=int, default=1000)
    r.add_argument("--threads", type=int, default=10)
    r.add_argument("--rounds", type=int, default=5)
    r.add_argument("--page", type=int, default=1000)
    r.add_argument("--poll", type=float, default=0.02, help="seconds between state polls")
    r.add_argument("--node-deadline", type=float, default=120.0)
    r.add_argument("--time-budget", type=float, default=900.0, help="whole run, seconds")
    r.add_argument("--settle", type=float, default=1.0)
    r.add_argument("--image-file", required=True)
    r.add_argument("--out", required=True)
    q = sub.add_parser("report")
    q.add_argument("--ours", required=True)
    q.add_argument("--peer")
    a = p.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
