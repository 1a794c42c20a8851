import pytest

from hack.nodeagent.config import NodeConfig, parse_label, parse_taint
from hack.nodeagent.envvars import expand, field_value
from hack.nodeagent.images import ImageNotAllowed, InvalidImageName, resolve_argv
from hack.nodeagent.nodes import capacity


def test_expand_like_kubelet():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"


def test_field_values():
    pod = {
        "metadata": {"name": "p", "namespace": "n", "labels": {"k": "v"}},
        "spec": {"nodeName": "local-node-1"},
    }
    assert field_value(pod, "metadata.name") == "p"
    assert field_value(pod, "spec.nodeName") == "local-node-1"
    assert field_value(pod, "metadata.labels['k']") == "v"


def test_image_entrypoints_and_allow_list():
    img = "quay.io/modelpush/model-image-push:latest"
    assert resolve_argv(img, None, ["copy", "a", "b"]) == [
        "python3",
        "-m",
        "controller.push",
        "copy",
        "a",
        "b",
    ]
    assert resolve_argv(img, ["sh", "-c"], ["true"]) == ["sh", "-c", "true"]
    digest = "sha256:" + "ab" * 32
    assert resolve_argv(f"quay.io/skopeo/stable:v1@{digest}", None, ["copy"]) == ["skopeo", "copy"]
    assert resolve_argv("quay.io/buildah/stable", None, None) == ["buildah"]
    with pytest.raises(ImageNotAllowed, match='Failed to pull image "busybox"'):
        resolve_argv("busybox", ["sh"], None)
    # the kubelet refuses a name that is no reference before any pull (its InvalidImageName)
    for bad in ("quay.io//modelpush/model-image-push:1", "Quay.io/UPPER/model-image-push", "a b"):
        with pytest.raises(InvalidImageName, match="invalid reference format"):
            resolve_argv(bad, None, None)


def test_taints_and_labels():
    assert parse_taint("modelpush.dev/small=true:NoSchedule") == {
        "key": "modelpush.dev/small",
        "value": "true",
        "effect": "NoSchedule",
    }
    assert parse_taint("dedicated:NoExecute") == {"key": "dedicated", "effect": "NoExecute"}
    with pytest.raises(ValueError):
        parse_taint("k=v:Sometimes")
    assert parse_label("a=b") == ("a", "b")
    with pytest.raises(ValueError):
        NodeConfig(name="n", ephemeral="lots")


def test_node_capacity_and_allocatable():
    cap, alloc = capacity(NodeConfig(name="n", ephemeral="256Mi"))
    assert alloc["ephemeral-storage"] == "256Mi"
    assert cap["ephemeral-storage"].endswith("Ki")
    assert alloc["pods"] == "110"


def test_disk_usage_counts_allocated_bytes_and_hardlinks_once(tmp_path):
    from hack.nodeagent.du import disk_usage

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 1_000_000)
    (tmp_path / "d" / "g").hardlink_to(tmp_path / "d" / "f")
    used = disk_usage([tmp_path / "d"])
    assert 1_000_000 <= used < 1_200_000
    assert disk_usage([tmp_path / "missing"]) == 0
    assert disk_usage([tmp_path / "d", tmp_path / "d" / "f"]) == used  # a file root, counted once


def test_cli_single_node_and_config_file(tmp_path):
    from hack.nodeagent.__main__ import parse_args

    base = ["--kubeconfig", "k", "--state-dir", str(tmp_path)]
    a, cfg = parse_args(
        [*base, "--node", "n1", "--ephemeral", "2Gi", "--label", "a=b", "--taint", "x=y:NoSchedule"]
    )
    assert a.kubeconfig == "k"
    (n,) = cfg.nodes
    assert (n.name, n.ephemeral, n.labels, n.taints) == ("n1", "2Gi", {"a": "b"}, ["x=y:NoSchedule"])
    f = tmp_path / "nodes.json"
    f.write_text('{"nodes": [{"name": "a"}, {"name": "b", "ephemeral": "256Mi"}]}')
    _, cfg = parse_args(["--kubeconfig", "k", "--state-dir", str(tmp_path), "--config", str(f)])
    assert [(n.name, n.ephemeral) for n in cfg.nodes] == [("a", "10Gi"), ("b", "256Mi")]
