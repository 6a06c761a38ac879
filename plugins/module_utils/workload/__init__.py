# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A namespace's settings and the objects made from them: the roles' variables typed and checked
(role_settings, tgi_settings, the rule of each TGI setting in tgi_setting_rules,
known_variables) and the TGI pod (tgi_workload).

May import gpu, engine and cluster; never capacity or operations.
"""
