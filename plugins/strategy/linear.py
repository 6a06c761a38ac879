# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Ansible's linear strategy, with the garbage collector kept out of the forked workers' way."""

from __future__ import annotations

DOCUMENTATION = r"""
name: linear
short_description: Ansible's linear strategy, objects frozen for the garbage collector at each fork
description:
  - Runs a play exactly as C(ansible.builtin.linear) does (each task on every host before the
    next task), and freezes the garbage collector's objects (Python's C(gc.freeze)) while Ansible
    forks the worker of a task and host.
  - A worker starts as a copy of Ansible's main process, with every module that process has
    imported (the kubernetes client among them). Without the freeze, the worker's first full
    collection walks all of them (about 60 ms each time) and writes to every page that holds one,
    which the kernel then copies. With it, a worker's collections see only its own objects; the
    main process unfreezes right after the fork, so its own memory is collected as before.
  - "The collection's playbooks name it in each play: C(strategy: haw.icc.linear)."
author:
  - haw.icc developers (@haw-hamburg)
"""

import gc

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy


class StrategyModule(LinearStrategy):
    def _queue_task(self, host, task, task_vars, play_context):
        gc.freeze()
        try:
            return super()._queue_task(host, task, task_vars, play_context)
        finally:
            gc.unfreeze()
