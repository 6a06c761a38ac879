# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Will it fit and run: the rules judged before anything is written (gpu_rules: the model on the
GPUs asked for, each rule's verdict on one configuration in gpu_verdicts and the alternatives to
a refusal in gpu_alternatives; vllm_verdicts: the same for a namespace on vLLM; cluster_rules:
free GPUs and quota), what the check reads from
the cluster (cluster_reader), and the check as gpu_capacity_check runs it (check).

May import workload, gpu, engine and cluster; never operations.
"""
