# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A running deployment: its rollouts and their waits (rollout, rollout_wait, progress), its
state and what to do about it (diagnosis), its logs (tgi_logs, open_webui_logs), its API
(api_checks) and its figures (nvidia_smi, prometheus_text).

The top of the arrows: may import every other package.
"""
