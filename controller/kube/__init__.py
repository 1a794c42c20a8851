"""All Kubernetes API I/O of the controller."""
