#!/usr/bin/env python3
"""Side-by-side driver for scripts/side-by-side.sh (standard library only).

  side_by_side.py --ironic http://127.0.0.1:PORT --rackboot http://127.0.0.1:PORT \
                  [--report FILE] [--ready-timeout SECONDS]

Creates the same fixtures on both servers (a fake-hardware node taken to
`available`, chassis, port groups, a port, traits, allocations), then sends the
same sample of requests to both and prints, per request, both status codes and
the difference between the key sets of the bodies:

  - object bodies: their top-level keys; a member holding a list of objects
    (`nodes`, `ports`, ...) also contributes the keys of its first element as
    `nodes[0].KEY`; a list body contributes `[0].KEY`;
  - Ironic error bodies: `error_message` is itself JSON, whose keys show as
    `error_message.KEY`;
  - link lists (`[{"href", "rel"}]`) are not expanded.

Identifiers differ between the servers, so each server's own UUIDs (and its
conductor host name) are substituted into its requests. A row differs when the
statuses, the key sets or the lengths of the listed collections differ.

Exit status: 0 whenever the comparison ran, however many rows differ (the
differences are a report, not a failure); 1 when a server is not ready.
Only 127.0.0.1 URLs are accepted.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

VERSION = "1.115"
MISSING_UUID = "6c1a1b5e-0000-4000-8000-00000000f404"
NO_HEADER = None  # sentinel: send no version header

# No proxies, whatever the environment says: only 127.0.0.1 is talked to.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# Paths a ramdisk calls: Ironic serves them on its API, rackboot on its boot
# HTTP listener (where booting nodes reach it).
AGENT_PATHS = ("/v1/continue_inspection", "/v1/lookup", "/v1/heartbeat/")


class Side:
    def __init__(self, label, url, agent_url=None):
        for each in (url, agent_url or url):
            u = urllib.parse.urlsplit(each)
            if u.hostname != "127.0.0.1":
                raise SystemExit(f"refusing to talk to {u.hostname!r}: only 127.0.0.1 is allowed")
        self.label = label
        self.base = url.rstrip("/")
        self.agent_base = (agent_url or url).rstrip("/")
        self.ctx = {}

    def request(self, method, path, body=None, version=VERSION, timeout=30.0):
        """Returns (status, parsed JSON or None, raw bytes); status is a string
        such as 'EXC:ConnectionRefusedError' when no HTTP answer came."""
        headers = {"Accept": "application/json"}
        if version is not NO_HEADER:
            headers["X-OpenStack-Ironic-API-Version"] = version
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        base = self.agent_base if path.startswith(AGENT_PATHS) else self.base
        req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        try:
            with OPENER.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except OSError as e:
            return f"EXC:{type(e).__name__}", None, str(e).encode()
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        return status, parsed, raw


# --------------------------------------------------------------------------
# Shapes

def is_links(v):
    return (isinstance(v, list) and v and isinstance(v[0], dict)
            and set(v[0]) <= {"href", "rel", "type"})


def shape(body):
    """(set of keys, {collection: length})."""
    keys, lens = set(), {}
    if isinstance(body, list):
        lens["[]"] = len(body)
        if body and isinstance(body[0], dict):
            keys |= {f"[0].{k}" for k in body[0]}
        return keys, lens
    if not isinstance(body, dict):
        return keys, lens
    keys |= set(body)
    for k, v in body.items():
        if isinstance(v, list) and not is_links(v) and (not v or isinstance(v[0], dict)):
            if k in ("traits", "candidate_nodes"):
                continue
            lens[k] = len(v)
            if v:
                keys |= {f"{k}[0].{kk}" for kk in v[0]}
        elif k == "error_message" and isinstance(v, str):
            try:
                inner = json.loads(v)
            except ValueError:
                inner = None
            if isinstance(inner, dict):
                keys |= {f"error_message.{kk}" for kk in inner}
    return keys, lens


# --------------------------------------------------------------------------
# Templates: "{name}" is replaced by the side's own value of `name`.

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(obj, ctx):
    if isinstance(obj, str):
        return PLACEHOLDER.sub(lambda m: str(ctx.get(m.group(1), f"MISSING-{m.group(1)}")), obj)
    if isinstance(obj, list):
        return [fill(x, ctx) for x in obj]
    if isinstance(obj, dict):
        return {k: fill(v, ctx) for k, v in obj.items()}
    return obj


def error_text(body, raw):
    """Ironic's faultstring when there is one, else the raw body."""
    if isinstance(body, dict) and isinstance(body.get("error_message"), str):
        try:
            inner = json.loads(body["error_message"])
            if isinstance(inner, dict) and inner.get("faultstring"):
                return str(inner["faultstring"])
        except ValueError:
            return body["error_message"]
    return raw.decode("utf-8", "replace") if raw else ""


# --------------------------------------------------------------------------

class Run:
    def __init__(self, ironic, rackboot):
        self.sides = [ironic, rackboot]
        self.rows = []
        self.section = ""

    def heading(self, name):
        self.section = name

    def req(self, method, path, body=None, version=VERSION, save=None, note=""):
        """Sends the request to both sides; `save` maps ctx names to a function
        of the 2xx body (or to a top-level key)."""
        label = f"{method} {path}"
        if version is NO_HEADER:
            label += "  [no version header]"
        elif version != VERSION:
            label += f"  [{version}]"
        if body is not None:
            label += "  " + json.dumps(body, separators=(",", ":"))
        row = {"section": self.section, "label": label, "note": note, "res": []}
        for s in self.sides:
            p, b = fill(path, s.ctx), fill(body, s.ctx)
            deadline = time.monotonic() + 10
            retries = 0
            while True:
                st, obj, raw = s.request(method, p, b, version)
                # Ironic answers 409 NodeLocked while a conductor still holds
                # the node after a transition; retry like the CLI does.
                if st == 409 and b"lock" in raw.lower() and time.monotonic() < deadline:
                    retries += 1
                    time.sleep(0.2)
                    continue
                break
            if save and isinstance(st, int) and 200 <= st < 300:
                for name, how in save.items():
                    try:
                        s.ctx[name] = how(obj) if callable(how) else obj[how]
                    except (KeyError, IndexError, TypeError):
                        pass
            keys, lens = shape(obj)
            row["res"].append({"status": st, "keys": keys, "lens": lens, "retries": retries,
                               "body": obj, "raw": raw, "path": p})
        self.rows.append(row)
        return row

    def wait(self, what, path, field, done, timeout=60.0, extra=None):
        """Polls GET path on each side until done(body) or timeout; the row's
        'status' is the final value of `field` (plus extra(body))."""
        row = {"section": self.section, "label": f"(wait) {what}", "note": "", "res": [],
               "wait": True}
        for s in self.sides:
            p = fill(path, s.ctx)
            end = time.monotonic() + timeout
            t0 = time.monotonic()
            obj = None
            while True:
                st, obj, raw = s.request("GET", p)
                if st == 200 and isinstance(obj, dict) and done(obj):
                    break
                if time.monotonic() > end:
                    break
                time.sleep(0.2)
            val = obj.get(field) if isinstance(obj, dict) else f"HTTP {st}"
            txt = str(val)
            if extra and isinstance(obj, dict):
                txt += extra(obj)
            row["res"].append({"status": txt, "keys": set(), "lens": {}, "retries": 0,
                               "body": obj, "raw": b"", "path": p,
                               "secs": time.monotonic() - t0})
        self.rows.append(row)
        return row


def row_diff(row):
    a, b = row["res"]
    lines = []
    if a["status"] != b["status"]:
        lines.append("status")
    oi, orb = sorted(a["keys"] - b["keys"]), sorted(b["keys"] - a["keys"])
    if oi:
        lines.append("only ironic:   " + ", ".join(oi))
    if orb:
        lines.append("only rackboot: " + ", ".join(orb))
    for k in sorted(set(a["lens"]) | set(b["lens"])):
        la, lb = a["lens"].get(k), b["lens"].get(k)
        if la is not None and lb is not None and la != lb:
            lines.append(f"{k}: {la} item(s) on ironic, {lb} on rackboot")
    return lines


# --------------------------------------------------------------------------
# Readiness

def wait_ready(s, timeout):
    """GET /v1 answers, a conductor is registered and fake-hardware is
    enabled (Ironic registers its conductor after the API is up)."""
    end = time.monotonic() + timeout
    why = "no answer"
    while time.monotonic() < end:
        st, obj, raw = s.request("GET", "/v1", version=NO_HEADER, timeout=5)
        if st == 200:
            st2, obj2, _ = s.request("GET", "/v1/drivers", timeout=5)
            names = [d.get("name") for d in (obj2 or {}).get("drivers", [])] if st2 == 200 else []
            if "fake-hardware" in names:
                return obj.get("version", {}).get("version")
            why = f"GET /v1/drivers -> {st2}, drivers {names}"
        else:
            why = f"GET /v1 -> {st}"
        time.sleep(0.25)
    raise TimeoutError(f"{s.label} not ready after {timeout:.0f} s ({why})")


# --------------------------------------------------------------------------
# The sample

def node_state(want):
    return lambda o: o.get("provision_state") == want and not o.get("reservation")


def node_settled(o):
    st = o.get("provision_state") or ""
    return (st in ("available", "manageable", "enroll", "active", "error")
            or st.endswith("failed")) and not o.get("reservation")


def sample(r):
    V = VERSION
    # --- root -------------------------------------------------------------
    r.heading("root")
    r.req("GET", "/", version=NO_HEADER)
    r.req("GET", "/v1", version=NO_HEADER)
    r.req("GET", "/v1/")
    r.req("GET", "/v1/no-such-resource")

    # --- fixtures: chassis, node -----------------------------------------
    r.heading("chassis")
    r.req("POST", "/v1/chassis", {"description": "sbs chassis", "extra": {"rack": "r1"}},
          save={"chassis": "uuid"})
    r.req("POST", "/v1/chassis", {"description": "sbs empty chassis"}, save={"chassis2": "uuid"})

    r.heading("nodes")
    r.req("POST", "/v1/nodes", {"driver": "fake-hardware", "name": "sbs-node-1",
                                "resource_class": "sbs-rc", "chassis_uuid": "{chassis}"},
          save={"node": "uuid"})
    r.req("PUT", "/v1/nodes/{node}/states/provision", {"target": "manage"})
    r.wait("node manageable", "/v1/nodes/{node}", "provision_state", node_state("manageable"))
    r.req("PUT", "/v1/nodes/{node}/states/provision", {"target": "provide"})
    r.wait("node available", "/v1/nodes/{node}", "provision_state", node_state("available"),
           extra=lambda o: f" (power: {o.get('power_state')})")
    # Ironic allocates only nodes with a known power state, and its fake
    # power reports none until the power sync runs (rackboot's fake power
    # recorded one at manage): set one explicitly on both.
    r.req("PUT", "/v1/nodes/{node}/states/power", {"target": "power off"})
    r.wait("node powered off", "/v1/nodes/{node}", "power_state",
           lambda o: o.get("power_state") == "power off" and not o.get("target_power_state")
           and not o.get("reservation"))
    r.req("POST", "/v1/nodes", {"driver": "fake-hardware", "name": "sbs-node-2"},
          save={"node2": "uuid"})

    # --- chassis ----------------------------------------------------------
    r.heading("chassis")
    r.req("GET", "/v1/chassis")
    r.req("GET", "/v1/chassis/detail")
    r.req("GET", "/v1/chassis?fields=uuid,description")
    r.req("GET", "/v1/chassis/{chassis}")
    r.req("GET", "/v1/chassis/{chassis}/nodes")
    r.req("GET", "/v1/chassis/{chassis}/nodes/detail")
    r.req("PATCH", "/v1/chassis/{chassis2}",
          [{"op": "replace", "path": "/description", "value": "patched"},
           {"op": "add", "path": "/extra/foo", "value": "bar"}])
    r.req("PATCH", "/v1/chassis/{chassis2}", [{"op": "replace", "path": "/nope", "value": 1}],
          note="bad patch path")
    r.req("DELETE", "/v1/chassis/{chassis}", note="chassis has a node")
    r.req("DELETE", "/v1/chassis/{chassis2}")
    r.req("GET", "/v1/chassis/{chassis2}", note="deleted")
    r.req("GET", f"/v1/chassis/{MISSING_UUID}")
    r.req("POST", "/v1/chassis", {"description": "x", "bogus_field": 1}, note="unknown field")

    # --- nodes ------------------------------------------------------------
    r.heading("nodes")
    r.req("GET", "/v1/nodes")
    r.req("GET", "/v1/nodes/detail")
    r.req("GET", "/v1/nodes?provision_state=available")
    r.req("GET", "/v1/nodes?chassis_uuid={chassis}")
    r.req("GET", "/v1/nodes?resource_class=sbs-rc")
    r.req("GET", "/v1/nodes?driver=fake-hardware&limit=1")
    r.req("GET", "/v1/nodes?sort_key=name")
    r.req("GET", "/v1/nodes?sort_key=name&sort_dir=desc")
    r.req("GET", "/v1/nodes?include_children=true")
    r.req("GET", "/v1/nodes?fields=uuid,name")
    r.req("GET", "/v1/nodes?foo=1", note="unknown query parameter")
    r.req("GET", "/v1/nodes?provision_state=bogus")
    r.req("GET", "/v1/nodes/{node}")
    r.req("GET", "/v1/nodes/sbs-node-1", note="by name")
    r.req("GET", "/v1/nodes/{node}?fields=uuid,provision_state,power_state")
    r.req("GET", "/v1/nodes/{node}/states")
    r.req("PATCH", "/v1/nodes/{node}",
          [{"op": "replace", "path": "/description", "value": "patched"},
           {"op": "add", "path": "/extra/foo", "value": "bar"}])
    r.req("PATCH", "/v1/nodes/{node}", [{"op": "replace", "path": "/nope", "value": 1}],
          note="bad patch path")
    r.req("PATCH", "/v1/nodes/{node}", [{"op": "replace", "path": "/uuid", "value": MISSING_UUID}],
          note="read-only field")
    r.req("GET", f"/v1/nodes/{MISSING_UUID}")
    r.req("GET", "/v1/nodes/no-such-node")
    r.req("POST", "/v1/nodes", {"driver": "fake-hardware", "bogus_field": 1}, note="unknown field")
    r.req("POST", "/v1/nodes", {"driver": "no-such-driver"})
    r.req("POST", "/v1/nodes", {"driver": "fake-hardware", "name": "sbs-node-1"},
          note="duplicate name")

    # --- port groups ------------------------------------------------------
    r.heading("portgroups")
    r.req("POST", "/v1/portgroups", {"node_uuid": "{node}", "address": "52:54:00:00:00:a1",
                                     "name": "sbs-pg-1"}, save={"pg": "uuid"})
    r.req("POST", "/v1/portgroups", {"node_uuid": "{node}", "address": "52:54:00:00:00:a2",
                                     "name": "sbs-pg-2"}, save={"pg2": "uuid"})

    # --- ports ------------------------------------------------------------
    r.heading("ports")
    r.req("POST", "/v1/ports", {"node_uuid": "{node}", "address": "52:54:00:00:00:01",
                                "portgroup_uuid": "{pg}"}, save={"port": "uuid"})
    r.req("GET", "/v1/ports")
    r.req("GET", "/v1/ports/detail")
    r.req("GET", "/v1/ports?node_uuid={node}")
    r.req("GET", "/v1/ports?address=52:54:00:00:00:01")
    r.req("GET", "/v1/ports?portgroup={pg}")
    r.req("GET", "/v1/ports?fields=uuid,address")
    r.req("GET", "/v1/ports/{port}")
    r.req("GET", "/v1/nodes/{node}/ports")
    r.req("GET", "/v1/nodes/{node}/ports/detail")
    r.req("PATCH", "/v1/ports/{port}", [{"op": "add", "path": "/extra/foo", "value": "bar"}])
    r.req("GET", f"/v1/ports/{MISSING_UUID}")
    r.req("POST", "/v1/ports", {"node_uuid": "{node}", "address": "52:54:00:00:00:01"},
          note="duplicate address")
    r.req("POST", "/v1/ports", {"node_uuid": MISSING_UUID, "address": "52:54:00:00:00:02"},
          note="missing node")
    r.req("POST", "/v1/ports", {"node_uuid": "{node}", "address": "52:54:00:00:00:03",
                                "bogus_field": 1}, note="unknown field")

    r.heading("portgroups")
    r.req("GET", "/v1/portgroups")
    r.req("GET", "/v1/portgroups/detail")
    r.req("GET", "/v1/portgroups?node={node}")
    r.req("GET", "/v1/portgroups/{pg}")
    r.req("GET", "/v1/portgroups/sbs-pg-1", note="by name")
    r.req("GET", "/v1/nodes/{node}/portgroups")
    r.req("GET", "/v1/nodes/{node}/portgroups/detail")
    r.req("GET", "/v1/portgroups/{pg}/ports")
    r.req("GET", "/v1/portgroups/{pg}/ports/detail")
    r.req("PATCH", "/v1/portgroups/{pg}",
          [{"op": "add", "path": "/extra/foo", "value": "bar"},
           {"op": "replace", "path": "/mode", "value": "802.3ad"}])
    r.req("PATCH", "/v1/portgroups/{pg}", [{"op": "replace", "path": "/nope", "value": 1}],
          note="bad patch path")
    r.req("GET", "/v1/portgroups", version="1.22", note="below 1.23")
    r.req("GET", f"/v1/portgroups/{MISSING_UUID}")
    r.req("POST", "/v1/portgroups", {"node_uuid": "{node}", "bogus_field": 1},
          note="unknown field")
    r.req("DELETE", "/v1/portgroups/{pg2}")
    r.req("GET", "/v1/portgroups/{pg2}", note="deleted")
    r.req("DELETE", "/v1/portgroups/{pg}", note="port group has a port")

    # --- conductors -------------------------------------------------------
    r.heading("conductors")
    r.req("GET", "/v1/conductors", save={"host": lambda o: o["conductors"][0]["hostname"]})
    r.req("GET", "/v1/conductors?detail=true")
    r.req("GET", "/v1/conductors?fields=hostname,alive")
    r.req("GET", "/v1/conductors/{host}")
    r.req("GET", "/v1/conductors/no-such-host")
    r.req("GET", "/v1/conductors", version="1.48", note="below 1.49")

    # --- traits -----------------------------------------------------------
    r.heading("traits")
    r.req("PUT", "/v1/nodes/{node}/traits", {"traits": ["CUSTOM_A", "CUSTOM_B"]})
    r.req("GET", "/v1/nodes/{node}/traits")
    r.req("PUT", "/v1/nodes/{node}/traits/CUSTOM_C")
    r.req("DELETE", "/v1/nodes/{node}/traits/CUSTOM_A")
    r.req("DELETE", "/v1/nodes/{node}/traits/CUSTOM_MISSING")
    r.req("PUT", "/v1/nodes/{node}/traits/lowercase_bad", note="bad trait name")
    r.req("PUT", "/v1/nodes/{node}/traits", {"traits": ["bad trait"]}, note="bad trait name")
    r.req("GET", "/v1/nodes/{node}/traits")
    r.req("GET", "/v1/nodes/{node}?fields=uuid,traits")
    r.req("GET", "/v1/nodes/{node}/traits", version="1.36", note="below 1.37")
    r.req("GET", f"/v1/nodes/{MISSING_UUID}/traits")

    # --- allocations ------------------------------------------------------
    r.heading("allocations")
    r.req("POST", "/v1/allocations", {"resource_class": "sbs-rc", "name": "sbs-alloc-1",
                                      "extra": {"a": "b"}}, save={"alloc": "uuid"})
    r.wait("allocation not allocating", "/v1/allocations/{alloc}", "state",
           lambda o: o.get("state") != "allocating")
    r.req("GET", "/v1/allocations")
    r.req("GET", "/v1/allocations/detail")
    r.req("GET", "/v1/allocations?state=active")
    r.req("GET", "/v1/allocations?node={node}")
    r.req("GET", "/v1/allocations?resource_class=sbs-rc")
    r.req("GET", "/v1/allocations?fields=uuid,state")
    r.req("GET", "/v1/allocations/{alloc}")
    r.req("GET", "/v1/allocations/sbs-alloc-1", note="by name")
    r.req("GET", "/v1/nodes/{node}/allocation")
    r.req("GET", "/v1/nodes/{node}?fields=uuid,allocation_uuid,instance_uuid")
    r.req("PATCH", "/v1/allocations/{alloc}",
          [{"op": "replace", "path": "/name", "value": "sbs-alloc-renamed"},
           {"op": "add", "path": "/extra/x", "value": "y"}])
    r.req("PATCH", "/v1/allocations/{alloc}",
          [{"op": "replace", "path": "/resource_class", "value": "other"}], note="bad patch path")
    r.req("GET", "/v1/allocations", version="1.51", note="below 1.52")
    r.req("GET", "/v1/nodes/{node}/allocation", version="1.51", note="below 1.52")
    r.req("GET", f"/v1/allocations/{MISSING_UUID}")
    r.req("GET", "/v1/nodes/{node2}/allocation", note="node without allocation")
    r.req("POST", "/v1/allocations", {"resource_class": "sbs-rc", "bogus_field": 1},
          note="unknown field")
    r.req("POST", "/v1/allocations", {"name": "sbs-no-rc"}, note="no resource_class")
    r.req("DELETE", "/v1/allocations/{alloc}")
    r.wait("node free again", "/v1/nodes/{node}", "instance_uuid",
           lambda o: not o.get("instance_uuid") and not o.get("allocation_uuid"), timeout=30)
    r.req("GET", "/v1/allocations/{alloc}", note="deleted")
    r.req("GET", "/v1/nodes/{node}/allocation", note="deleted")
    r.req("POST", "/v1/allocations", {"resource_class": "sbs-no-such-rc",
                                      "name": "sbs-alloc-err"}, save={"alloc_err": "uuid"})
    r.wait("allocation for a missing resource class", "/v1/allocations/{alloc_err}", "state",
           lambda o: o.get("state") != "allocating",
           extra=lambda o: ", last_error " + ("set" if o.get("last_error") else "empty"))
    r.req("GET", "/v1/allocations/{alloc_err}")
    r.req("DELETE", "/v1/allocations/{alloc_err}")

    # --- deploy templates ---------------------------------------------------
    r.heading("deploy templates")
    steps = [{"interface": "bios", "step": "apply_configuration",
              "args": {"settings": [], "password": "x"}, "priority": 10}]
    r.req("POST", "/v1/deploy_templates", {"name": "CUSTOM_SBS", "steps": steps,
                                           "extra": {"a": 1}}, save={"tmpl": "uuid"})
    r.req("GET", "/v1/deploy_templates")
    r.req("GET", "/v1/deploy_templates?detail=True")
    r.req("GET", "/v1/deploy_templates?fields=name")
    r.req("GET", "/v1/deploy_templates/CUSTOM_SBS")
    r.req("GET", "/v1/deploy_templates?sort_key=steps", note="unsortable")
    r.req("PATCH", "/v1/deploy_templates/{tmpl}",
          [{"op": "replace", "path": "/steps/0/priority", "value": 20}])
    r.req("POST", "/v1/deploy_templates", {"name": "sbs", "steps": steps}, note="not a trait")
    r.req("POST", "/v1/deploy_templates", {"name": "CUSTOM_SBS2", "steps": steps + steps},
          note="duplicate steps")
    r.req("POST", "/v1/deploy_templates", {"name": "CUSTOM_SBS", "steps": steps},
          note="duplicate name")
    r.req("GET", "/v1/deploy_templates", version="1.54", note="below 1.55")
    r.req("DELETE", "/v1/deploy_templates/{tmpl}")
    r.req("GET", "/v1/deploy_templates/{tmpl}", note="deleted")

    # --- runbooks ------------------------------------------------------------
    r.heading("runbooks")
    rsteps = [{"interface": "raid", "step": "delete_configuration", "args": {}, "order": 0}]
    r.req("POST", "/v1/runbooks", {"name": "sbs-rb", "steps": rsteps, "public": True},
          save={"rb": "uuid"})
    r.req("POST", "/v1/runbooks", {"name": "sbs-rb", "steps": rsteps}, version="1.100",
          note="not a trait before 1.112")
    r.req("GET", "/v1/runbooks")
    r.req("GET", "/v1/runbooks?detail=True")
    r.req("GET", "/v1/runbooks/sbs-rb")
    r.req("GET", "/v1/runbooks/sbs-rb", version="1.100")
    r.req("PATCH", "/v1/runbooks/{rb}", [{"op": "add", "path": "/owner", "value": "p1"}],
          note="owner of a public runbook")
    r.req("PATCH", "/v1/runbooks/{rb}", [{"op": "replace", "path": "/public", "value": False}])
    r.req("PUT", "/v1/runbooks/{rb}/traits", {"traits": ["CUSTOM_A"]})
    r.req("GET", "/v1/runbooks/{rb}/traits")
    r.req("PUT", "/v1/runbooks/{rb}/traits/CUSTOM_B")
    r.req("DELETE", "/v1/runbooks/{rb}/traits/CUSTOM_A")
    r.req("POST", "/v1/runbooks", {"name": "sbs-rb2", "steps": [{"interface": "raid",
                                                                  "step": "x"}]},
          note="step without order")
    r.req("GET", "/v1/runbooks", version="1.91", note="below 1.92")
    r.req("DELETE", "/v1/runbooks/{rb}")
    r.req("GET", "/v1/runbooks/{rb}", note="deleted")

    # --- inspection rules ----------------------------------------------------
    r.heading("inspection rules")
    acts = [{"op": "add-trait", "args": {"name": "CUSTOM_GPU"}}]
    conds = [{"op": "!is-empty", "args": {"value": "{inventory[pci_devices]}"}}]
    r.req("POST", "/v1/inspection_rules", {"description": "sbs", "priority": 5,
                                           "conditions": conds, "actions": acts},
          save={"rule": "uuid"})
    r.req("GET", "/v1/inspection_rules")
    r.req("GET", "/v1/inspection_rules?detail=True")
    r.req("GET", "/v1/inspection_rules/{rule}")
    r.req("PATCH", "/v1/inspection_rules/{rule}",
          [{"op": "replace", "path": "/priority", "value": 7},
           {"op": "replace", "path": "/sensitive", "value": True}])
    r.req("PATCH", "/v1/inspection_rules/{rule}",
          [{"op": "replace", "path": "/sensitive", "value": False}], note="unset sensitive")
    r.req("POST", "/v1/inspection_rules", {"actions": [{"op": "explode", "args": {}}],
                                           "conditions": []}, note="unknown action")
    r.req("POST", "/v1/inspection_rules", {"actions": acts, "conditions": [],
                                           "priority": 10000}, note="priority too high")
    r.req("POST", "/v1/inspection_rules", {"actions": acts, "conditions": [],
                                           "phase": "early"}, note="unknown phase")
    r.req("GET", "/v1/inspection_rules/not-a-uuid")
    r.req("GET", "/v1/inspection_rules", version="1.95", note="below 1.96")
    r.req("DELETE", "/v1/inspection_rules/{rule}")
    r.req("GET", "/v1/inspection_rules/{rule}", note="deleted")

    # --- volume --------------------------------------------------------------
    r.heading("volume")
    r.req("GET", "/v1/volume")
    r.req("GET", "/v1/volume", version="1.31", note="below 1.32")
    r.req("POST", "/v1/volume/connectors", {"node_uuid": "{node2}", "type": "iqn",
                                            "connector_id": "iqn.2026-12.sbs:1"},
          save={"vc": "uuid"})
    r.req("POST", "/v1/volume/connectors", {"node_uuid": "{node2}", "type": "iqn",
                                            "connector_id": "iqn.2026-12.sbs:1"},
          note="duplicate")
    r.req("POST", "/v1/volume/targets", {"node_uuid": "{node2}", "volume_type": "iscsi",
                                         "boot_index": 0, "volume_id": "sbs-vol",
                                         "properties": {"auth_password": "pw"}},
          save={"vt": "uuid"})
    r.req("POST", "/v1/volume/targets", {"node_uuid": "{node2}", "volume_type": "iscsi",
                                         "boot_index": 0, "volume_id": "sbs-vol2"},
          note="duplicate boot index")
    r.req("POST", "/v1/volume/targets", {"node_uuid": MISSING_UUID, "volume_type": "iscsi",
                                         "boot_index": 1, "volume_id": "v"},
          note="missing node")
    r.req("GET", "/v1/volume/connectors")
    r.req("GET", "/v1/volume/connectors?detail=True")
    r.req("GET", "/v1/volume/targets?node={node2}")
    r.req("GET", "/v1/nodes/{node2}/volume/targets")
    r.req("GET", "/v1/volume/targets/{vt}")
    r.req("GET", "/v1/volume/targets/not-a-uuid")
    r.req("PATCH", "/v1/volume/targets/{vt}",
          [{"op": "replace", "path": "/volume_id", "value": "sbs-vol-b"}],
          note="node power state unknown")
    r.req("DELETE", "/v1/volume/connectors/{vc}")
    r.req("DELETE", "/v1/volume/targets/{vt}")

    # --- VIFs, virtual media, BIOS, firmware, history ------------------------
    r.heading("node extras")
    r.req("GET", "/v1/nodes/{node}/vifs")
    r.req("POST", "/v1/nodes/{node}/vifs", {"id": "sbs-vif-1"})
    r.req("GET", "/v1/nodes/{node}/vifs", note="after an attach")
    r.req("DELETE", "/v1/nodes/{node}/vifs/sbs-vif-1")
    r.req("POST", "/v1/nodes/{node}/vifs", {}, note="no id")
    r.req("GET", "/v1/nodes/{node}/vifs", version="1.27", note="below 1.28")
    r.req("POST", "/v1/nodes/{node}/vmedia", {"device_type": "cdrom",
                                              "image_url": "http://127.0.0.1:9/x.iso"})
    r.req("POST", "/v1/nodes/{node}/vmedia", {"device_type": "usb", "image_url": "http://x"},
          note="unknown device")
    r.req("POST", "/v1/nodes/{node}/vmedia", {"device_type": "cdrom", "image_url": "ftp://x"},
          note="unsupported scheme")
    r.req("DELETE", "/v1/nodes/{node}/vmedia?device_types=zip", note="unknown device")
    r.req("GET", "/v1/nodes/{node}/bios")
    r.req("GET", "/v1/nodes/{node}/bios/ProcVirt")
    r.req("GET", "/v1/nodes/{node}/bios?detail=True", version="1.70", note="detail before 1.74")
    r.req("GET", "/v1/nodes/{node}/firmware")
    r.req("GET", "/v1/nodes/{node}/firmware?detail=True")
    r.req("GET", "/v1/nodes/{node}/history", save={"event": lambda b: b["history"][0]["uuid"]})
    r.req("GET", "/v1/nodes/{node}/history/{event}")
    r.req("GET", f"/v1/nodes/{{node}}/history/{MISSING_UUID}")

    # --- port and port group filters ----------------------------------------
    r.heading("port filters")
    r.req("GET", "/v1/ports?shard=east")
    r.req("GET", "/v1/ports?conductor_groups=rack-a")
    r.req("GET", "/v1/ports?description_contains=tor")
    r.req("GET", "/v1/ports?shard=east&node={node}", note="exclusive filters")
    r.req("GET", "/v1/portgroups?shard=east")
    r.req("GET", "/v1/portgroups?conductor_groups=rack-a&node={node}", note="exclusive filters")

    # --- inspection -----------------------------------------------------------
    r.heading("inspection")
    r.req("POST", "/v1/nodes", {"driver": "fake-hardware", "name": "sbs-insp"},
          save={"insp": "uuid"})
    r.req("PUT", "/v1/nodes/{insp}/states/provision", {"target": "manage"})
    r.wait("inspection node manageable", "/v1/nodes/{insp}", "provision_state",
           node_state("manageable"))
    r.req("PUT", "/v1/nodes/{insp}/states/provision", {"target": "inspect"},
          note="no-inspect (fake-hardware's default)")
    r.req("PATCH", "/v1/nodes/{insp}", [{"op": "replace", "path": "/inspect_interface",
                                         "value": "fake"}])
    r.req("PUT", "/v1/nodes/{insp}/states/provision", {"target": "inspect"})
    r.wait("fake inspection done", "/v1/nodes/{insp}", "provision_state",
           node_state("manageable"))
    r.req("GET", "/v1/nodes/{insp}/inventory", version="1.80")
    r.req("GET", "/v1/nodes/{insp}/inventory", note="nothing stored")
    r.req("GET", "/v1/nodes/{insp}/inventory?fields=inventory")
    unknown = {"inventory": {"interfaces": [{"name": "eth0", "mac_address": "52:54:00:5b:5b:01"}],
                             "cpu": {"count": 1, "architecture": "x86_64"},
                             "memory": {"physical_mb": 1024}}}
    r.req("POST", "/v1/continue_inspection", unknown, version=NO_HEADER,
          note="unknown machine, discovery off")
    r.req("POST", "/v1/continue_inspection", unknown, version="1.83")
    r.req("POST", "/v1/continue_inspection", {}, version=NO_HEADER)
    r.req("POST", "/v1/continue_inspection", {"inventory": {}}, version=NO_HEADER)
    r.req("POST", "/v1/continue_inspection", {"inventory": {"interfaces": []}},
          version=NO_HEADER)
    r.req("POST", "/v1/continue_inspection",
          {"inventory": {"interfaces": [{"name": "eth0"}]}}, version=NO_HEADER)
    r.req("POST", "/v1/continue_inspection",
          {"inventory": {"interfaces": [{"mac_address": "nope"}]}}, version=NO_HEADER)
    r.req("POST", "/v1/continue_inspection",
          {"inventory": {"interfaces": [{"mac_address": "52:54:00:5b:5b:02"}],
                         "bmc_address": 5}}, version=NO_HEADER)
    r.req("DELETE", "/v1/nodes/{insp}")

    # --- a node delete at the end ------------------------------------------
    r.heading("nodes")
    r.req("DELETE", "/v1/nodes/{node2}")
    r.req("GET", "/v1/nodes/{node2}", note="deleted")


# --------------------------------------------------------------------------
# Report

def fmt_status(res):
    s = str(res["status"])
    if res["retries"]:
        s += f" (409x{res['retries']})"
    return s


def render(r, header, details):
    out = list(header)
    w_req = min(100, max(len(row["label"]) for row in r.rows))
    w_st = max(8, max(len(fmt_status(x)) for row in r.rows for x in row["res"]))
    out.append(f"{'#':>3}  {'request':<{w_req}}  {'ironic':<{w_st}}  {'rackboot':<{w_st}}  ")
    out.append("-" * (w_req + 2 * w_st + 14))
    ndiff = 0
    section = None
    for i, row in enumerate(r.rows, 1):
        if row["section"] != section:
            section = row["section"]
            out.append(f"     -- {section}")
        diff = row_diff(row)
        if diff:
            ndiff += 1
        label = row["label"]
        if len(label) > w_req:
            label = label[:w_req - 1] + "…"
        a, b = row["res"]
        flag = "DIFF" if diff else ""
        out.append(f"{i:>3}  {label:<{w_req}}  {fmt_status(a):<{w_st}}  {fmt_status(b):<{w_st}}  {flag}"
                   .rstrip())
        if row["note"]:
            out.append(f"{'':>5}({row['note']})")
        for line in diff:
            if line != "status":
                out.append(f"{'':>7}{line}")
        both_ok = all(isinstance(x["status"], int) and x["status"] < 300 for x in row["res"])
        # The report shows the texts of every error answer (to compare the
        # messages), and of every differing wait.
        if details and (diff or not both_ok) and not (both_ok and not row.get("wait")):
            for res, who in ((a, "ironic"), (b, "rackboot")):
                if row.get("wait"):
                    out.append(f"{'':>7}{who}: {res['path']} after {res.get('secs', 0):.1f} s")
                    continue
                st = res["status"]
                txt = ""
                if isinstance(st, int) and st >= 400 or not isinstance(st, int):
                    txt = error_text(res["body"], res["raw"])
                elif "status" in diff:
                    txt = res["raw"].decode("utf-8", "replace")
                txt = " ".join(txt.split())
                if len(txt) > 240:
                    txt = txt[:239] + "…"
                out.append(f"{'':>7}{who}: {st} {res['path']}" + (f" :: {txt}" if txt else ""))
    out.append("-" * (w_req + 2 * w_st + 14))
    out.append(f"{len(r.rows)} requests, {ndiff} differ")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ironic", required=True, help="Ironic base URL (http://127.0.0.1:PORT)")
    ap.add_argument("--rackboot", required=True, help="rackboot base URL (http://127.0.0.1:PORT)")
    ap.add_argument("--rackboot-boot", help="rackboot's boot HTTP URL, for the ramdisk's paths"
                    " (default: --rackboot)")
    ap.add_argument("--report", help="also write the full report (with error texts) here")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    a = ap.parse_args()

    ironic = Side("ironic", a.ironic)
    rackboot = Side("rackboot", a.rackboot, a.rackboot_boot)
    maxv = {}
    for s in (ironic, rackboot):
        try:
            maxv[s.label] = wait_ready(s, a.ready_timeout)
        except TimeoutError as e:
            print(f"side_by_side: {e}", file=sys.stderr)
            return 1
    r = Run(ironic, rackboot)
    t0 = time.monotonic()
    sample(r)
    header = [
        f"== Ironic vs rackboot, side by side ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}) ==",
        f"ironic   {a.ironic}  max API version {maxv['ironic']}",
        f"rackboot {a.rackboot}  max API version {maxv['rackboot']}",
        f"requests sent with X-OpenStack-Ironic-API-Version: {VERSION} unless marked [x.y];"
        f" {time.monotonic() - t0:.1f} s",
        "keys: top-level keys; COLL[0].KEY = first element of a listed collection;"
        " error_message.KEY = Ironic's JSON error payload",
        "",
    ]
    for line in render(r, header, details=False):
        print(line)
    if a.report:
        with open(a.report, "w") as f:
            f.write("\n".join(render(r, header, details=True)) + "\n")
        print(f"full report (with error texts): {a.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
