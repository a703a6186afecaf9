"""The bench's memory figure of a run counts the processes the run starts (dbt's CLI) with its own."""

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# run from the project root, as `python -m bench` runs: the bench package is not installed
CHECK = textwrap.dedent("""
    import os, subprocess, sys, time
    from bench.tasks import RssSampler, tree_rss_mb

    def own_mb():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); "
                              "b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with RssSampler(interval=0.2) as sampler:
            time.sleep(0.5)
        with_child = tree_rss_mb(os.getpid()) - own_mb()
    finally:
        child.kill()
        child.wait()
    print(with_child, tree_rss_mb(os.getpid()) - own_mb(), sampler.peak_mb(0, time.time()) - own_mb())
""")


def test_the_sum_holds_a_child_process_and_drops_it_when_it_ends():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         check=True).stdout
    with_child, after, sampled = (float(x) for x in out.split())
    assert with_child >= 190, out  # the child's 200 MB, touched page by page
    assert after < 50, out  # gone with the child
    assert sampled >= 190, out  # the sampler's peak holds it too
