"""KServe's own artefacts for tests, read from its Go module (never retyped): the modelcar commands from
`pkg/utils/storage.go`, the model mount path from `pkg/constants/constants.go`, and the InferenceService
CRD from `config/crd/full/`.

`go mod download` fetches the module once into Go's module cache (a few MB; no build).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

KSERVE_MODULE = "github.com/kserve/kserve"
KSERVE_VERSION = os.environ.get("KSERVE_VERSION", "v0.17.0")
CRD_PATH = "config/crd/full/serving.kserve.io_inferenceservices.yaml"


def _go() -> str:
    """`go` from PATH, else the toolchain hack/go.sh provides (when present), else /usr/local/go."""
    found = shutil.which("go")
    go_sh = Path(__file__).resolve().parent / "go.sh"
    if not found and go_sh.is_file():
        out = subprocess.run(["bash", str(go_sh)], capture_output=True, text=True, check=True).stdout
        found = str(Path(out.strip().splitlines()[-1]) / "go")
    found = found or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise RuntimeError("go is needed to download Go modules (hack/install-deps.sh installs it)")
    return found


@cache
def module_dir(module: str = KSERVE_MODULE, version: str = KSERVE_VERSION) -> Path:
    """The module's source in Go's module cache, downloaded on first use."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-modcacherw"}
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd="/",
        timeout=600,
    ).stdout
    return Path(json.loads(out)["Dir"])


def crd_file() -> Path:
    return module_dir() / CRD_PATH


def k8s_expand(text: str) -> str:
    """Kubernetes' expansion of container args with no env: `$$` becomes `$`, `$(X)` stays as it is."""
    return re.sub(r"\$\$", "$", text)


def _go_concat(expr: str, values: dict[str, str]) -> str:
    """Evaluate a Go expression of double-quoted literals and identifiers joined by `+`."""
    parts = re.findall(r'"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*', expr)
    return "".join(json.loads(p) if p.startswith('"') else values[p] for p in parts)


@dataclass(frozen=True)
class ModelcarCommands:
    """KServe's modelcar commands: as written in the pod spec, and as the container runtime gets them."""

    pod_init_args: list[str]  # the modelcar-init container's args as KServe writes them in the pod spec
    pod_sidecar_args: list[str]  # the modelcar sidecar's args, likewise (`$$` escapes still in)
    model_path: str  # where the runtime container finds the model (/mnt/models)

    @property
    def init_args(self) -> list[str]:
        """What the container runtime runs for modelcar-init (after Kubernetes' expansion)."""
        return [k8s_expand(a) for a in self.pod_init_args]

    @property
    def sidecar_args(self) -> list[str]:
        return [k8s_expand(a) for a in self.pod_sidecar_args]

    @property
    def mount_dir(self) -> str:
        """The emptyDir's mount path, the model path's parent."""
        return self.model_path.rsplit("/", 1)[0] or "/"


def modelcar_commands(image: str) -> ModelcarCommands:
    """KServe's modelcar-init and sidecar args for `image`, taken from storage.go of the kserve module."""
    src = (module_dir() / "pkg/utils/storage.go").read_text()
    consts = (module_dir() / "pkg/constants/constants.go").read_text()
    m = re.search(r'DefaultModelLocalMountPath\s*=\s*"([^"]+)"', consts)
    if not m:
        raise RuntimeError("DefaultModelLocalMountPath not found in kserve's constants.go")
    model_path = m.group(1)

    def args_of(func: str) -> list[str]:
        body = src[src.index(f"func {func}(") :]
        block = body[body.index("Args: []string{") : body.index("},", body.index("Args: []string{"))]
        lines = [ln.strip().rstrip(",") for ln in block.splitlines()[1:]]
        exprs = [ln for ln in lines if ln and not ln.startswith("//")]
        out = []
        for expr in exprs:
            fmt = re.fullmatch(r'fmt\.Sprintf\(("(?:[^"\\]|\\.)*"),\s*modelPath\)', expr)
            if fmt:
                out.append(json.loads(fmt.group(1)).replace("%s", model_path))
            else:
                out.append(_go_concat(expr, {"image": image}))
        return out

    return ModelcarCommands(
        pod_init_args=args_of("CreateModelcarInitContainer"),
        pod_sidecar_args=args_of("CreateModelcarContainer"),
        model_path=model_path,
    )


if __name__ == "__main__":
    cmds = modelcar_commands("registry.local/model:v1")
    print(
        json.dumps({"init": cmds.init_args, "sidecar": cmds.sidecar_args, "path": cmds.model_path}, indent=1)
    )
