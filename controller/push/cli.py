"""`python -m controller.push`: argument parsing, exit codes and result documents (contract A)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from controller.model.quantity import parse_size

from .auth import Credentials, load_auth_dir, load_authfile
from .client import ClientOptions, RegistryClient, UploadStrategy
from .errors import InvalidInput, PushError, translate
from .progress import Progress
from .reference import parse_reference
from .result import ErrorBody, ErrorResult, PushResult, write_result
from .signcli import add_sign_arguments, sign_after_push, sign_options

DESCRIPTION = """\
Push an ML model directory to an OCI registry as an image, or copy an image between registries,
streaming: nothing is staged on local disk and memory stays bounded.

Exit codes: 0 ok, 1 internal error, 2 invalid input, 3 authentication/authorisation failure,
4 registry failure (digest mismatch, not found, unexpected answer), 5 registry unreachable (connection,
DNS or TLS failure, 5xx/429 after retries).
The result (one JSON object) goes to stdout and to --result-file; progress JSON lines go to stderr.
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags already; we also want the error in the result file."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidInput(f"{self.prog}: {message}")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 67108864 or 64M)") from exc


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type` for an integer flag bounded to [low, high]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
        if v < low or v > high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return v

    return parse


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("registry and output options")
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="plain HTTP or unverified TLS for this registry only (repeatable); others are TLS-verified",
    )
    g.add_argument(
        "--authfile", type=Path, help="Docker config.json (or .dockerconfigjson Secret) with credentials"
    )
    g.add_argument(
        "--auth-dir",
        type=Path,
        help="credential files mounted by the controller, read in name order (first wins per host)",
    )
    g.add_argument(
        "--registry-token",
        action="append",
        default=[],
        metavar="HOST=FILE",
        help="present the token in FILE (re-read at each login) as the password for HOST, e.g. a projected "
        "ServiceAccount token for OpenShift's registry (repeatable; wins over other credentials for HOST)",
    )
    g.add_argument(
        "--upload",
        action="append",
        default=[],
        metavar="[HOST=]STRATEGY",
        help="streamed, chunked:<size> or monolithic, for HOST or every registry (repeatable; last wins)",
    )
    g.add_argument("--ca-file", type=Path, help="PEM bundle of CAs to trust in addition to the system's")
    g.add_argument(
        "--result-file", type=Path, help="also write the result JSON here (e.g. /dev/termination-log)"
    )
    g.add_argument(
        "--concurrency",
        type=_int_between(1, 64),
        default=4,
        help="blobs uploaded in parallel (default 4, max 64)",
    )
    g.add_argument(
        "--chunk-size",
        type=_size,
        default=0,
        help="upload in PATCH chunks of this many bytes (e.g. 64M); 0 (default): one streamed PATCH per blob",
    )
    g.add_argument(
        "--retries", type=int, default=5, help="attempts per request/upload before failing (default 5)"
    )
    g.add_argument(
        "--progress-interval", type=float, default=2.0, help="seconds between progress lines (default 2)"
    )
    add_sign_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m controller.push",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser(
        "build", help="stream a model directory into an image (one tar layer per file under /models)"
    )
    b.add_argument(
        "--context", type=Path, required=True, help="model directory; every file becomes /models/<path>"
    )
    b.add_argument("--image", required=True, help="destination reference, e.g. registry:5000/ns/model:tag")
    b.add_argument(
        "--base",
        default="busybox",
        help="busybox (default: a static busybox layer, so KServe's `sh -c` commands run), none (model "
        "files only), or a base image whose layers go first (mounted or streamed, never downloaded)",
    )
    b.add_argument(
        "--format",
        choices=("modelcar", "modelpack", "both"),
        default="modelcar",
        help="modelcar (an image, default), modelpack (a CNCF ModelPack artifact), or both under one index",
    )
    meta = b.add_argument_group("metadata (annotations on the manifest, labels on the config)")
    meta.add_argument(
        "--model-name",
        help="model name (also the image title; omitted when not given, so digests do not depend on it)",
    )
    meta.add_argument("--model-version", help="model version")
    meta.add_argument("--model-family", help="model family, e.g. llama3 (default: config.json model_type)")
    meta.add_argument("--source-url", help="org.opencontainers.image.source, e.g. the model's repository URL")
    meta.add_argument("--revision", help="org.opencontainers.image.revision, e.g. a commit")
    b.add_argument("--platform", default="linux/amd64", help="os/arch for the config and base selection")
    b.add_argument(
        "--max-layers",
        type=_int_between(1, 1000),
        default=100,
        help="layer budget for the model (default 100; overlayfs allows ~128 in total): one layer per file "
        "up to this, beyond it the largest files keep their own layer and the rest share one",
    )
    _common(b)

    c = sub.add_parser("copy", help="copy an image or multi-arch index between registries, digests preserved")
    c.add_argument("src", help="source reference (docker:// prefix accepted)")
    c.add_argument("dst", help="destination reference")
    _common(c)

    bb = sub.add_parser(
        "buildah", help="compatibility: `buildah bud` + `buildah push` with storage on --storage"
    )
    bb.add_argument("--context", type=Path, required=True, help="build context directory")
    bb.add_argument("--image", required=True, help="destination reference")
    bb.add_argument(
        "--storage", type=Path, required=True, help="directory for buildah root, runroot, TMPDIR, HOME"
    )
    bb.add_argument("--containerfile", type=Path, help="Containerfile; default: generated COPY into /models")
    bb.add_argument("--base", help="FROM image for the generated Containerfile (default scratch)")
    _common(bb)

    s = sub.add_parser("skopeo", help="compatibility: `skopeo copy --all` with TMPDIR on --tmpdir")
    s.add_argument("src", help="source reference")
    s.add_argument("dst", help="destination reference")
    s.add_argument("--tmpdir", type=Path, help="TMPDIR for skopeo (e.g. a PVC path)")
    _common(s)
    return parser


def client_options(args: argparse.Namespace) -> ClientOptions:
    creds: dict[str, Credentials] = {}
    for item in args.registry_token:
        host, sep, file = item.partition("=")
        if not sep or not host or not file:
            raise InvalidInput(f"--registry-token {item!r}: expected HOST=FILE")
        creds[host] = Credentials("serviceaccount", password_file=Path(file))
    if args.authfile is not None:
        for host, c in load_authfile(args.authfile).items():
            creds.setdefault(host, c)
    if args.auth_dir is not None:
        for host, c in load_auth_dir(args.auth_dir).items():
            creds.setdefault(host, c)
    if args.ca_file is not None and not args.ca_file.is_file():
        raise InvalidInput(f"--ca-file {args.ca_file}: file not found")
    if args.retries < 1 or args.retries > 20:
        raise InvalidInput("--retries must be between 1 and 20")
    return ClientOptions(
        insecure=frozenset(args.insecure_registry),
        ca_file=args.ca_file,
        credentials=creds,
        retries=args.retries,
        connections=max(8, args.concurrency * 2 + 2),
    )


def upload_strategies(items: list[str]) -> dict[str, UploadStrategy]:
    """`--upload` items in order: `HOST=STRATEGY` for one host, a bare STRATEGY for every host ("*")."""
    out: dict[str, UploadStrategy] = {}
    for item in items:
        host, sep, text = item.rpartition("=")
        if not sep:
            out = {"*": UploadStrategy.parse(text)}
        elif not host:
            raise InvalidInput(f"--upload {item!r}: expected [HOST=]STRATEGY")
        else:
            out[host] = UploadStrategy.parse(text)
    return out


async def run(args: argparse.Namespace) -> PushResult:
    sign_options(args)  # a bad signing flag fails before anything is pushed
    result = await _push(args)
    return await sign_after_push(args, client_options(args), result)


async def _push(args: argparse.Namespace) -> PushResult:
    opts = client_options(args)
    progress = Progress(interval=args.progress_interval)
    if args.command == "build":
        from .build import build_image

        parts = args.platform.split("/")
        if len(parts) != 2 or not all(parts):
            raise InvalidInput(f"--platform {args.platform!r}: expected os/arch, e.g. linux/amd64")
        from .baselayer import busybox_path
        from .metadata import ImageMeta

        dst = parse_reference(args.image)
        # a build makes a new manifest: its digest cannot be chosen, so refuse before uploading anything
        if dst.digest:
            raise InvalidInput(
                f"--image {args.image!r}: a build cannot push to a digest; "
                f"name a tag (e.g. {dst.name}:latest)"
            )
        base = parse_reference(args.base) if args.base not in ("busybox", "none") else None
        meta = ImageMeta(
            name=args.model_name,
            version=args.model_version,
            family=args.model_family,
            source_url=args.source_url,
            revision=args.revision,
        )
        async with RegistryClient(opts, uploads=upload_strategies(args.upload)) as client:
            return await build_image(
                client,
                args.context,
                dst,
                base=base,
                base_layer=busybox_path() if args.base == "busybox" else None,
                fmt=args.format,
                meta=meta,
                concurrency=args.concurrency,
                chunk_size=args.chunk_size,
                platform=(parts[0], parts[1]),
                progress=progress,
                image_text=args.image,
                max_layers=args.max_layers,
            )
    if args.command == "copy":
        from .copy import copy_image

        src, dst = parse_reference(args.src), parse_reference(args.dst)
        async with RegistryClient(opts, uploads=upload_strategies(args.upload)) as client:
            return await copy_image(
                client,
                src,
                dst,
                concurrency=args.concurrency,
                chunk_size=args.chunk_size,
                progress=progress,
                image_text=args.dst,
            )
    from . import compat

    if args.command == "buildah":
        return await compat.run_buildah(args, opts)
    return await compat.run_skopeo(args, opts)


class Terminated(BaseException):
    """SIGTERM: the pod is being deleted (a cancelled run, an eviction, a drain)."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    # The program is PID 1 of its container, where a signal with the default action is ignored: without a
    # handler a deleted pod's push ran on for the whole grace period (30 s) until the kubelet's SIGKILL.
    signal.signal(signal.SIGTERM, _on_sigterm)
    result_file: Path | None = None
    argv = list(sys.argv[1:] if argv is None else argv)
    # Find --result-file before parsing, so even a parse error lands in the termination message.
    for i, a in enumerate(argv):
        if a == "--result-file" and i + 1 < len(argv):
            result_file = Path(argv[i + 1])
        elif a.startswith("--result-file="):
            result_file = Path(a.split("=", 1)[1])
    try:
        args = build_parser().parse_args(argv)
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        _fail(PushError("interrupted"), result_file)
        return 130
    except Terminated:
        _fail(PushError("terminated (SIGTERM): the pod was deleted"), result_file)
        return 128 + signal.SIGTERM
    except Exception as exc:
        # the error-to-result translation: every failure leaves with a kind the controller maps to a reason
        err = translate(exc)
        if err is not exc and err.kind == "internal":
            traceback.print_exc(file=sys.stderr)
        _fail(err, result_file)
        return err.exit_code
    write_result(result, result_file)
    return 0


def _fail(err: PushError, result_file: Path | None) -> None:
    sys.stderr.write(f"error ({err.kind}): {err}\n")
    doc = ErrorResult(error=ErrorBody(kind=err.kind, message=str(err)))
    try:
        write_result(doc, result_file)
    except OSError as exc:
        sys.stderr.write(f"cannot write --result-file: {exc}\n")
