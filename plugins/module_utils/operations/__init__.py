# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A namespace's deployment at work: the check before anything is written (preflight), its rollouts
and their waits (rollout, rollout_wait; what they show: progress, a pod's in pod_progress, its
events and output in pod_events), a running TGI changed to new settings with rollback
(model_switch), its state and what to do about it (status, diagnosis; a whole course's table in
course_status), its logs (tgi_logs, open_webui_logs), its API (api_checks; the way to it in
api_route, its GPUs in gpu_check) and its figures over time (monitor, drawn by monitor_plot;
nvidia-smi's CSV in nvidia_smi, TGI's /metrics in tgi_metrics).

The top of the arrows: may import every other package.
"""
