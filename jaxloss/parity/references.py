"""Reference implementations that do not import as they are installed.

torchvision's wheel links the CUDA build of torch, so with the CPU torch of the parity tests
``import torchvision`` fails ("operator torchvision::nms does not exist"). Its loss and box
functions are plain Python over torch, so `torchvision_ops` loads those files from the
installed wheel under stand-in ``torchvision`` package modules whose C-extension hooks do
nothing. segmentation_models_pytorch's ``__init__`` imports timm and torchvision; it is
installed without its dependencies (``pip install --no-deps``) and `smp_losses` loads its
``losses/`` files the same way; so are Liger-Kernel's ``chunked_loss/`` (`liger_chunked_loss`)
and open_clip's ``loss.py`` (`open_clip_losses`). Nothing is copied: the files are read
where pip put them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from pathlib import Path

_TORCHVISION_FILES = (
    "_utils",
    "_box_convert",
    "boxes",
    "giou_loss",
    "diou_loss",
    "ciou_loss",
    "focal_loss",
)


def _installed_directory(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{package} is not installed; the parity extra installs it (pip install "
            f"'jaxloss[test]' with constraints.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def torchvision_ops() -> types.SimpleNamespace:
    """torchvision.ops' box and loss functions (``box_iou``, ``generalized_box_iou_loss``,
    ``sigmoid_focal_loss``, ...), loaded from the installed wheel without its C extension.
    If ``import torchvision`` works (a matching torch), the real module is used."""
    import torch  # noqa: F401  (the files import it; fail here with torch's own error)

    try:
        import torchvision.ops as real

        return types.SimpleNamespace(**{n: getattr(real, n) for n in dir(real)})
    except Exception:  # the CUDA-linked wheel beside the CPU torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    root = _installed_directory("torchvision")
    stand_in = types.ModuleType("torchvision")
    stand_in.__path__ = []  # a package with nothing to find on disk
    utils = types.ModuleType("torchvision.utils")
    utils._log_api_usage_once = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    extension = types.ModuleType("torchvision.extension")
    extension._assert_has_ops = lambda: None  # type: ignore[attr-defined]
    ops = types.ModuleType("torchvision.ops")
    ops.__path__ = [str(root / "ops")]  # the real files, without ops/__init__.py
    stand_in.utils, stand_in.extension, stand_in.ops = utils, extension, ops  # type: ignore[attr-defined]
    saved = {
        name: sys.modules.get(name)
        for name in ("torchvision", "torchvision.utils", "torchvision.extension", "torchvision.ops")
    }
    sys.modules.update(
        {
            "torchvision": stand_in,
            "torchvision.utils": utils,
            "torchvision.extension": extension,
            "torchvision.ops": ops,
        }
    )
    try:
        modules = [
            importlib.import_module(f"torchvision.ops.{name}") for name in _TORCHVISION_FILES
        ]
    finally:
        for name, module in saved.items():  # leave no stand-in behind for other importers
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in [m for m in sys.modules if m.startswith("torchvision.ops.")]:
            del sys.modules[name]
    functions = {}
    for module in modules:
        functions.update(
            {n: v for n, v in vars(module).items() if callable(v) and not n.startswith("__")}
        )
    return types.SimpleNamespace(**functions)


_SMP_FILES = ("constants", "_functional", "dice", "jaccard", "tversky", "lovasz", "mcc", "focal")


def _files_without_init(
    package: str, subpackage: str | None, files: Sequence[str]
) -> types.SimpleNamespace:
    """The public names of `package.subpackage`'s `files` (of `package`'s own files when
    `subpackage` is None), loaded from the installed package without running its
    ``__init__`` files (stand-in package modules while they load; the stand-ins and the
    loaded modules are removed from ``sys.modules`` afterwards)."""
    import torch  # noqa: F401  (the files import it)

    root = _installed_directory(package)
    stand_in = types.ModuleType(package)
    stand_in.__path__ = [str(root)] if subpackage is None else []
    names = [package]
    stand_ins = [stand_in]
    prefix = package
    if subpackage is not None:
        inner = types.ModuleType(f"{package}.{subpackage}")
        inner.__path__ = [str(root / subpackage)]  # the real files, without their __init__.py
        setattr(stand_in, subpackage, inner)
        names.append(f"{package}.{subpackage}")
        stand_ins.append(inner)
        prefix = f"{package}.{subpackage}"
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(dict(zip(names, stand_ins)))
    try:
        modules = [importlib.import_module(f"{prefix}.{name}") for name in files]
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in [m for m in sys.modules if m.startswith(f"{package}.")]:
            del sys.modules[name]
    found = {}
    for module in modules:
        found.update({n: v for n, v in vars(module).items() if not n.startswith("__")})
    return types.SimpleNamespace(**found)


@functools.cache
def smp_losses() -> types.SimpleNamespace:
    """segmentation_models_pytorch.losses (``DiceLoss``, ``JaccardLoss``, ``TverskyLoss``,
    ``LovaszLoss``, ``MCCLoss``, ``FocalLoss``, ...), loaded from the installed package
    without its ``__init__`` (which imports timm and a CUDA-linked torchvision)."""
    return _files_without_init("segmentation_models_pytorch", "losses", _SMP_FILES)


_LIGER_FILES = (
    "fused_linear_ppo",
    "fused_linear_preference",
    "fused_linear_unpaired_preference",
    "fused_linear_distillation",
    "jsd_loss",
    "cosine_similarity_loss",
    "dpo_loss",
    "cpo_loss",
    "simpo_loss",
    "orpo_loss",
    "kto_loss",
    "grpo_loss",
)


@functools.cache
def liger_chunked_loss() -> types.SimpleNamespace:
    """Liger-Kernel's pure-torch ``liger_kernel.chunked_loss`` (the fused JSD and cosine
    distillation losses, the preference and PPO bases and their selective log-probabilities,
    the DPO, CPO, SimPO, ORPO, KTO and GRPO losses),
    loaded without the package's ``__init__``, which imports triton (and with it a CUDA
    torch)."""
    return _files_without_init("liger_kernel", "chunked_loss", _LIGER_FILES)


@functools.cache
def open_clip_losses() -> types.SimpleNamespace:
    """open_clip's ``loss.py`` (``ClipLoss``, ``SigLipLoss`` and their distributed helpers),
    loaded without the package's ``__init__``, which imports timm and torchvision (whose
    wheels would replace the CPU torch)."""
    return _files_without_init("open_clip", None, ("loss",))
