"""Freed memory goes back to the system between the steps of one process (citizen_voice.memory)."""

import gc
import subprocess
import sys
import textwrap

import pyarrow as pa

from citizen_voice.memory import release_unused, use_system_allocator


def test_release_unused_returns_a_fragmented_heap_to_the_system():
    # in a child process: the test process's own heap would blur the figures
    script = textwrap.dedent("""
        import gc, resource
        from pathlib import Path
        from citizen_voice.memory import release_unused

        def rss_mb():
            return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20

        base = rss_mb()
        blocks = [bytes(600) + str(i).encode() for i in range(600_000)]  # ~360 MB of malloc'd blocks
        kept = blocks[::64]  # one block in 64 stays: the heap cannot shrink from its top
        del blocks
        gc.collect()
        freed = rss_mb()
        release_unused()
        print(base, freed, rss_mb(), len(kept))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    base, freed, released, _kept = (float(x) for x in out.split())
    assert freed - base > 250, f"the freed blocks should still be resident before the release: {out}"
    assert released - base < (freed - base) / 4, f"release_unused kept the freed pages: {out}"


def test_arrow_allocates_through_malloc_after_use_system_allocator():
    previous = pa.default_memory_pool()
    try:
        use_system_allocator()
        assert pa.default_memory_pool().backend_name == "system"
        before = pa.system_memory_pool().bytes_allocated()
        array = pa.array(range(1_000_000), type=pa.int64())
        assert pa.system_memory_pool().bytes_allocated() - before >= 8_000_000
        del array
        gc.collect()
        release_unused()
        assert pa.system_memory_pool().bytes_allocated() - before < 8_000_000
    finally:
        pa.set_memory_pool(previous)
