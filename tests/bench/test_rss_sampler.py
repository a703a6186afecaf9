"""The bench's memory figure of a run counts the processes the run starts (dbt's CLI) with its own."""

import os
import subprocess
import sys
import time

from bench.tasks import RssSampler, tree_rss_mb


def _own_rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_the_sum_holds_a_child_process_and_drops_it_when_it_ends():
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(200 * 2**20); "
                              "b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with RssSampler(interval=0.2) as sampler:
            time.sleep(0.5)
        with_child = tree_rss_mb(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert with_child - _own_rss_mb() >= 190  # the child's 200 MB, touched page by page
    assert tree_rss_mb(os.getpid()) - _own_rss_mb() < 50
    assert sampler.peak_mb(0, time.time()) >= 190 + 0.5 * _own_rss_mb()
