"""A local stand-in for the kubelet: registers Nodes and runs their pods' containers as local processes.

Run with ``python -m hack.nodeagent --kubeconfig K --node NAME [--ephemeral 2Gi] --state-dir D`` or
``--config nodes.json`` for several nodes. Pure logic lives in small modules (quantity, pathmap, eviction,
podstatus, envvars, images) with unit tests in tests/unit/nodeagent.
"""
