# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A namespace's settings and the objects made from them: the roles' variables typed and checked
(role_settings, tgi_settings, the rule of each TGI setting in tgi_setting_rules,
known_variables), the TGI pod (tgi_workload), the vLLM pod from the same settings
(vllm_workload) and the part of the TGI pod a change of model or GPUs owns
(tgi_pod_spec), and the inventory files people also edit (inventory_files: host_vars, hosts).

May import gpu, engine and cluster; never capacity or operations.
"""
