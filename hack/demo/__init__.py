"""`make demo`: a Pipeline's model push end to end on one machine (local control plane, real nodes,
registry, Tekton, the controller), verified with skopeo, then the buildah-on-a-small-node eviction."""
