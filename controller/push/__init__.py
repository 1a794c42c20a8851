"""The work pod's program: a streaming OCI registry client, model-dir builder and image copier.

Only this package talks to registries. Run it with `python -m controller.push --help`.
"""
