# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""GPUs and what a model needs of them: the GPU catalog (catalog), the GPUs that pods hold and
nodes offer (allocation), what a model's id and config say of it (model_facts), the memory it
needs per GPU under TGI (sizing) and under vLLM (vllm_sizing), and what the Hugging Face Hub
says of a model (hub).

May import engine and cluster (values only), never workload, capacity or operations.
"""
