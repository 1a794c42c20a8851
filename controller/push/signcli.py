"""The push program's signing flags (`--sign-key` ...) and the step that runs after a push."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .client import ClientOptions, RegistryClient
from .errors import InvalidInput
from .reference import parse_reference
from .result import PushResult

if TYPE_CHECKING:
    from .sign import Inputs, SignOptions

# The signing modules (cryptography, PyNaCl/libsodium) are imported only when a run signs.


def add_sign_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("signing (cosign-compatible signature and SLSA provenance)")
    g.add_argument(
        "--sign-key", type=Path, help="cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY); enables signing"
    )
    g.add_argument(
        "--sign-password-file", type=Path, help="file holding the key's password (cosign.password)"
    )
    g.add_argument(
        "--sign-key-source",
        default="",
        metavar="NAMESPACE/NAME",
        help="the Secret the key came from, named in error messages",
    )
    g.add_argument(
        "--signature-storage",
        choices=("tag", "referrers", "both"),
        default="tag",
        help="tag: sha256-<hex>.sig/.att tags (cosign's default); referrers: OCI 1.1 referrers where the "
        "registry supports them, else the tag; both",
    )
    g.add_argument(
        "--provenance-context", help="JSON: params, builder, invocation, startedOn (from the controller)"
    )
    g.add_argument("--rekor-url", help="also upload the signature to this Rekor log (untested here)")


def sign_options(args: argparse.Namespace) -> SignOptions | None:
    if getattr(args, "sign_key", None) is None:
        return None
    from .sign import SignOptions, parse_context
    from .signkey import SigningError

    try:
        context = parse_context(args.provenance_context)
    except SigningError as exc:
        raise InvalidInput(str(exc)) from exc
    return SignOptions(
        key_file=args.sign_key,
        password_file=args.sign_password_file,
        key_source=args.sign_key_source or str(args.sign_key.parent),
        storage=args.signature_storage,
        context=context,
        rekor_url=args.rekor_url,
    )


def _inputs(args: argparse.Namespace, result: PushResult) -> Inputs:
    from .sign import Inputs

    if args.command in ("build", "buildah"):
        return Inputs(context_dir=args.context)
    # the native copy preserves digests; skopeo mode may recompress, so its source digest is unknown
    return Inputs(source_image=args.src, source_digest=result.digest if args.command == "copy" else None)


async def sign_after_push(
    args: argparse.Namespace, client_opts: ClientOptions, result: PushResult
) -> PushResult:
    opts = sign_options(args)
    if opts is None:
        return result
    from .sign import sign_and_attest

    dst = parse_reference(args.image if args.command in ("build", "buildah") else args.dst)
    async with RegistryClient(client_opts) as client:
        return await sign_and_attest(client, dst, result, _inputs(args, result), opts)
