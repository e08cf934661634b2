"""Exported backbones: weights in safetensors (or TorchScript) with a JSON description beside.

``save_backbone`` writes ``FILE`` (``.safetensors`` or ``.pt``) and ``FILE.json`` (say
``backbone.safetensors.json``) with
the architecture (a name of :data:`~nocollapse.models.BACKBONES` and its arguments), the
input geometry and normalisation, and whatever the caller adds (the run's evaluation).
The two files vouch for each other: the JSON holds the SHA-256 of the weights file, and
the weights file holds the SHA-256 of the JSON's description (safetensors metadata, or a
TorchScript extra file), so a replaced weights file and an edited description are both
refused by :func:`load_backbone`.

:func:`load_backbone` reads safetensors only: a header of JSON and raw tensor bytes, so no
file can run code when loaded (nothing is unpickled). TorchScript archives hold code;
they are for ``torch.jit.load`` in a deployment that trusts the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nocollapse.errors import NocollapseError
from nocollapse.models.backbone_input import RawImages, describe_input
from nocollapse.models.registry import BACKBONES, build_backbone
from nocollapse.models.weights import non_finite
from nocollapse.runio import atomic_write_files

FORMAT = "nocollapse-backbone/1"
FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt"}
# The key, in the weights file's metadata, of the description's SHA-256.
DESCRIPTION_KEY = "nocollapse_description_sha256"


# Bounds checked before anything is allocated: the description's size, the architecture's
# arguments (a data set's channels and image side), the weights file's header.
MAX_DESCRIPTION_BYTES = 1 << 20
MAX_ARGS = {"in_channels": 64, "image_size": 4096}
MAX_HEADER = 1 << 20
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
                      torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}


class BackboneFileError(NocollapseError, ValueError):
    """An exported backbone that is missing, damaged, or does not match its description."""


def description_path(weights: str | Path) -> Path:
    """Where the JSON description of ``weights`` lives: the same name with ``.json`` added
    (``backbone.safetensors.json``), so a safetensors and a TorchScript export of one name
    keep their own descriptions."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".json")


def save_backbone(backbone: nn.Module, description: dict[str, Any], path: str | Path,
                  fmt: str = "safetensors") -> Path:
    """Write ``backbone``'s weights to ``path`` and ``description`` (with a ``weights``
    section added) to :func:`description_path`; returns the JSON's path.

    ``description`` needs ``architecture`` ({"name", "args": {"in_channels",
    "image_size"}}) and ``input`` ({"channels", "size"}); the rest is carried as given.
    Both files are written to temporary files first, then renamed: a failure leaves both
    as they were (:func:`~nocollapse.runio.atomic_write_files`).
    """
    path = Path(path)
    body = {"format": FORMAT, **description}
    body.pop("weights", None)
    digest = _description_digest(body)
    state = {name: tensor.detach().cpu().contiguous()
             for name, tensor in backbone.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save

        data = save(state, metadata={DESCRIPTION_KEY: digest})
    elif fmt == "torchscript":
        size, channels = body["input"]["size"], body["input"]["channels"]
        example = torch.zeros(2, channels, size, size)
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(backbone.eval(), example)
            torch.jit.save(traced, buffer, _extra_files={DESCRIPTION_KEY: digest})
        data = buffer.getvalue()
    else:
        raise BackboneFileError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    body["weights"] = {"file": path.name, "format": fmt,
                       "sha256": hashlib.sha256(data).hexdigest()}
    json_path = description_path(path)
    # the two files vouch for each other: both are replaced, or neither
    atomic_write_files([(path, data), (json_path, (json.dumps(body, indent=2) + "\n").encode())])
    return json_path


def read_description(path: str | Path) -> dict[str, Any]:
    """The checked JSON description of the weights file ``path``
    (:class:`BackboneFileError` when missing, malformed or not for this file)."""
    path = Path(path)
    json_path = description_path(path)
    if path.suffix == ".json":
        raise BackboneFileError(f"{path} is the description; pass the weights file beside it "
                                f"({path.stem})")
    if not path.is_file():
        raise BackboneFileError(f"no exported backbone at {path}; write one with "
                                "nocollapse export RUN_DIR")
    if not json_path.is_file():
        raise BackboneFileError(
            f"{path} has no description beside it ({json_path.name}, written by nocollapse "
            "export): the weights alone do not say which network to build; export again")
    if json_path.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise BackboneFileError(f"{json_path} is {json_path.stat().st_size} bytes; a "
                                f"description is at most {MAX_DESCRIPTION_BYTES}: export again")
    try:
        body = json.loads(json_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BackboneFileError(f"{json_path} is not valid JSON ({type(error).__name__}: "
                                f"{str(error)[:120]}); it was damaged after export: export "
                                "again") from error
    problem = _schema_problem(body)
    if problem:
        raise BackboneFileError(f"{json_path} is not a nocollapse backbone description "
                                f"({problem}); export again")
    weights = body["weights"]
    if weights["file"] != path.name:
        raise BackboneFileError(f"{json_path} describes {weights['file']}, not {path.name}: "
                                "the files do not belong together")
    expected = _expected_state(body["architecture"])
    most = 2 * sum(_nbytes(shape, dtype) for shape, dtype in expected.values()) + MAX_HEADER
    if path.stat().st_size > most:
        raise BackboneFileError(
            f"{path} is {path.stat().st_size} bytes, more than {body['architecture']['name']}"
            f"'s weights take ({most} bytes at most): it is not the file export wrote")
    with open(path, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != weights["sha256"]:
        raise BackboneFileError(
            f"{path} does not match its description: its SHA-256 differs from the one in "
            f"{json_path.name} (the weights were replaced or changed after export)")
    return dict(body)


def load_backbone(path: str | Path, raw: bool = False) -> nn.Module:
    """The exported backbone as a plain ``nn.Module`` in evaluation mode.

    Input: float32 images ``(B, channels, size, size)``, pixel values / 255 normalised
    with the description's ``normalization`` mean and std; output: ``(B, features)``.
    The module carries its input contract (``input_size``, ``in_channels``, ``mean``,
    ``std``, ``pixels``, ``out_dim``, ``description``) and refuses another input shape
    with :class:`~nocollapse.models.backbone_input.BackboneInputError`; ``raw=True``
    wraps it in :class:`~nocollapse.models.backbone_input.RawImages` (uint8 images in).
    Reads a ``.safetensors`` file and the JSON beside it, after checking that each
    matches the other; nothing is unpickled. Raises :class:`BackboneFileError`.
    """
    path = Path(path)
    body = read_description(path)
    if body["weights"]["format"] != "safetensors":
        raise BackboneFileError(
            f"{path} is a TorchScript archive: load it with torch.jit.load, which runs the "
            "archive's code (only for files you trust); load_backbone reads safetensors "
            "only: nocollapse export RUN_DIR --format safetensors")
    from safetensors import SafetensorError, safe_open

    expected = _expected_state(body["architecture"])
    try:
        with safe_open(str(path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get(DESCRIPTION_KEY)
            _check_header(path, handle, expected)  # names, dtypes, shapes: before any read
            state = {name: handle.get_tensor(name) for name in expected}
    except (SafetensorError, OSError, ValueError) as error:
        raise BackboneFileError(f"{path} is not a readable safetensors file ({error}); "
                                "export again") from error
    described = {key: value for key, value in body.items() if key != "weights"}
    if recorded != _description_digest(described):
        raise BackboneFileError(
            f"{description_path(path)} was changed after export: its description no longer "
            f"matches the one recorded in {path.name}; export again")
    architecture = body["architecture"]
    args = architecture["args"]
    bad = next(non_finite(state.items()), None)
    if bad is not None:
        raise BackboneFileError(f"{path} holds weights that are not finite ({bad[0]}: NaN "
                                "or inf); export a run that did not diverge")
    backbone, _ = build_backbone(architecture["name"], int(args["in_channels"]),
                                 int(args["image_size"]))
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise BackboneFileError(f"{path} does not hold {architecture['name']}'s weights "
                                f"({first})") from error
    described_backbone = describe_input(backbone.eval(), body)
    return RawImages(described_backbone).eval() if raw else described_backbone


def _expected_state(architecture: dict[str, Any]) -> dict[str, tuple[list[int], str]]:
    """``{name: (shape, safetensors dtype)}`` of the described backbone, built on the meta
    device (no memory for its weights)."""
    args = architecture["args"]
    with torch.device("meta"):
        backbone, _ = build_backbone(architecture["name"], int(args["in_channels"]),
                                     int(args["image_size"]))
    return {name: (list(tensor.shape), SAFETENSORS_DTYPES.get(tensor.dtype, str(tensor.dtype)))
            for name, tensor in backbone.state_dict().items()}


def _nbytes(shape: list[int], dtype: str) -> int:
    size = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2}.get(dtype, 8)
    count = 1
    for extent in shape:
        count *= extent
    return count * size


def _check_header(path: Path, handle: Any, expected: dict[str, tuple[list[int], str]]) -> None:
    """The file's tensors are the backbone's, by name, dtype and shape (the header alone)."""
    names = set(handle.keys())
    if names != set(expected):
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        raise BackboneFileError(f"{path} does not hold the described backbone's weights "
                                f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, (shape, dtype) in expected.items():
        found = handle.get_slice(name)
        if found.get_dtype() != dtype or list(found.get_shape()) != shape:
            raise BackboneFileError(
                f"{path}: {name} is {found.get_dtype()} {list(found.get_shape())}, the "
                f"described backbone's is {dtype} {shape}; export again")


def _description_digest(body: dict[str, object]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _schema_problem(body: object) -> str | None:
    """What is missing or of the wrong type in a description, or None."""
    if not isinstance(body, dict):
        return f"it holds a {type(body).__name__}, not an object"
    if body.get("format") != FORMAT:
        return f"format {body.get('format')!r}, expected {FORMAT!r}"
    architecture, weights = body.get("architecture"), body.get("weights")
    if not isinstance(architecture, dict) or architecture.get("name") not in BACKBONES:
        return f"architecture.name must be one of {', '.join(BACKBONES)}"
    args = architecture.get("args")
    if not isinstance(args, dict) or not all(
            isinstance(args.get(key), int) and not isinstance(args[key], bool)
            and 0 < args[key] <= MAX_ARGS[key] for key in MAX_ARGS):
        return ("architecture.args needs integers in_channels in [1, "
                f"{MAX_ARGS['in_channels']}] and image_size in [1, {MAX_ARGS['image_size']}]")
    if not isinstance(weights, dict) or not all(
            isinstance(weights.get(key), str) for key in ("file", "format", "sha256")):
        return "weights needs file, format and sha256"
    if weights["format"] not in FORMATS:
        return f"weights.format must be one of {', '.join(FORMATS)}"
    return None
