# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What Ansible's forked workers inherit from its main process, kept out of their garbage
collector's way.

Ansible runs each task of each host in a worker forked from its main process, which by then has
imported Ansible, the kubernetes client and this collection's code: some hundred thousand
objects. A worker's first full collection walks all of them (about 60 ms, several times in a
deploy) and writes to every memory page that holds one, which the kernel then copies for that
worker. `gc.freeze()` moves the objects that exist so far to a generation the collector never
walks; they are modules, classes and functions that live as long as the run anyway, and memory
that reference counting frees is freed as before.
"""

from __future__ import annotations

import gc


def freeze_imported_objects() -> None:
    """Freezes what the process holds now (Python's gc.freeze). The collection's plugin bases
    call it once they are imported: Ansible imports an action plugin in its main process before
    it forks the task's workers."""
    gc.freeze()
