# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The inference engines as data and rules of their own: what TGI's launcher accepts
(tgi_launcher), how TGI uses the GPUs of one pod (tgi_multi_gpu), and what vLLM's OpenAI server
of the pinned release accepts and does on a GPU (vllm_server).

Knows nothing of Kubernetes or of the collection's variables; imports nothing of the collection
outside this package.
"""
