"""Which allocator Arrow uses in the processes that read, stage and validate deliveries."""

from __future__ import annotations

import os

import pyarrow as pa


def arrow_on_system_allocator() -> None:
    """Let Arrow allocate through the C library's malloc instead of its bundled mimalloc.

    Intake and validation build and drop tens of megabytes of Arrow buffers per chunk.
    mimalloc hands freed pages back to the kernel within milliseconds, so every chunk
    faulted its memory in anew: on a 2-core virtual machine that was 1.3-1.6 CPU-s of
    kernel time per million rows in each of the two processes (bench/README.md). glibc's
    malloc keeps freed pages in the process and hands them out again.

    Process-wide; buffers allocated before keep their pool. An operator's own choice
    (``ARROW_DEFAULT_MEMORY_POOL``) is left as it is.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
