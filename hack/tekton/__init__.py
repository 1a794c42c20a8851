"""Real Tekton pipelines controller for the local cluster: build (build.sh), install and run (launcher)."""
