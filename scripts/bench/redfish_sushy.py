"""Ironic's side of scripts/bench/redfish.sh: what Ironic's redfish power
interface calls, with sushy, on one cached connection per BMC (Ironic's
SessionCache, auth_type auto).

  redfish_sushy.py URL single CALLS SYSTEM_PATH
      -> "first_us median_us max_us" of get_system(path).power_state
  redfish_sushy.py URL sync WORKERS PASSES SYSTEM_PATH...
      -> "ms": the median pass reading every system, WORKERS at once (the
         first pass, which connects, left out)
"""
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import sushy
from sushy import auth


def connect(url):
    return sushy.Sushy(url, auth=auth.SessionOrBasicAuth(username=None, password=None))


def power(conn, path):
    return conn.get_system(path).power_state


def main():
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "single":
        calls, path = int(sys.argv[3]), sys.argv[4]
        times = []
        for i in range(calls):
            t = time.perf_counter()
            if i == 0:
                conn = connect(url)
            power(conn, path)
            times.append(time.perf_counter() - t)
        first, rest = times[0], sorted(times[1:])
        print(int(first * 1e6), int(statistics.median(rest) * 1e6), int(rest[-1] * 1e6))
    else:
        workers, passes, paths = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
        conn = connect(url)
        times = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in range(passes + 1):
                t = time.perf_counter()
                states = list(pool.map(lambda p: power(conn, p), paths))
                times.append(time.perf_counter() - t)
        assert all(states), states
        print("%.1f" % (statistics.median(times[1:]) * 1e3))


main()
