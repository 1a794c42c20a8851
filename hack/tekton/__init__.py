"""Real Tekton Pipelines for the local cluster: its commands built from the Go module (build.sh), its release
manifests installed in-cluster with local images (incluster), and PipelineRun builders (pipelines)."""
