"""A simulated ICC: a real Kubernetes control plane plus a node agent that plays the GPU nodes.

Used by the collection's tests and its demo. Not part of the collection (see build_ignore).
"""
