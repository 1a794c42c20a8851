"""A deterministic synthetic model: the same size always gives the same files and bytes."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from controller.model import quantity

CHUNK = 4 << 20
SHARDS = 4


def parse_size(text: str) -> int:
    """The demo's --size: `300M`, `24Mi`, `1G` in binary units, at least 1M."""
    size = quantity.parse_size(text)
    if size < 1 << 20:
        raise ValueError("the model must be at least 1M")
    return size


def layout(size: int) -> dict[str, int]:
    """relpath -> size: small metadata files plus SHARDS weight shards that add up to `size` in total."""
    meta = {"config.json": 0, "tokenizer.json": 0, "README.md": 0}
    texts = metadata(size)
    for name in meta:
        meta[name] = len(texts[name])
    rest = size - sum(meta.values())
    base = rest // SHARDS
    shards = {
        f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors": base
        + (rest - base * SHARDS if i == SHARDS - 1 else 0)
        for i in range(SHARDS)
    }
    return {**meta, **shards}


def metadata(size: int) -> dict[str, bytes]:
    cfg = {"architectures": ["DemoForCausalLM"], "model_type": "demo", "total_bytes": size}
    return {
        "config.json": (json.dumps(cfg, sort_keys=True) + "\n").encode(),
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE", "vocab": {}}}\n',
        "README.md": b"# demo model\nSynthetic, deterministic weights written by `make demo`.\n",
    }


def write_model(directory: Path, size: int) -> dict[str, str]:
    """Writes the model into `directory` and returns relpath -> sha256 hex of every file."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = metadata(size)
    hashes: dict[str, str] = {}
    for name, length in layout(size).items():
        h = hashlib.sha256()
        with (directory / name).open("wb") as f:
            if name in texts:
                f.write(texts[name])
                h.update(texts[name])
            else:
                # Seeded per file: incompressible like real weights, yet identical on every run.
                rng = random.Random(f"{name}:{size}")
                left = length
                while left:
                    block = rng.randbytes(min(CHUNK, left))
                    f.write(block)
                    h.update(block)
                    left -= len(block)
        hashes[name] = h.hexdigest()
    return hashes
