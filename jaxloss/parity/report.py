"""The parity report: every criterion against torch (and torchvision.ops' box losses, box
IoUs and focal loss against torchvision) on fresh random inputs.

    python -m jaxloss.parity [--seed N] [--criteria cross_entropy,kl_div] [--pairwise]
                             [--no-timing]

For each criterion it runs every drawn case (the full product of its options, shapes and
regimes; ``--pairwise`` for the covering array the test-suite runs) in float32 and float64 and
prints the worst scale-aware error of the value and of the gradients (largest difference over
the largest magnitude of torch's array) and the worst fraction of the tolerance used, then the
median time of a jitted jaxloss forward+backward against torch's on one larger input.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from .cases import ALL_CRITERIA, Case, cases, display_name
from .compare import compare, compat_function, reference_function
from .timing import fastest_torch_threads, side_by_side


def timing_case(criterion: str, rng: np.random.Generator, n: int = 8192, c: int = 128) -> Case:
    """One larger float32 input per criterion (n x c, about a million elements by default)."""
    f = np.float32
    d = c
    x = rng.standard_normal((n, c)).astype(f)
    y = rng.standard_normal((n, c)).astype(f)
    probs = rng.uniform(0.01, 0.99, (n, c)).astype(f)
    labels = rng.integers(0, c, n)
    signs = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0).astype(f)
    e = np.exp(x - x.max(1, keepdims=True))
    soft = (e / e.sum(1, keepdims=True)).astype(f)
    m = min(n, 1024)
    mlm = np.full((m, c), -1)
    mlm[:, :4] = rng.integers(0, c, (m, 4))
    # CTC: (T, N, C) log-probs at the first shape of benchmarks/ctc.py for the default n.
    steps, batch, classes = max(8, min(200, n // 40)), 16, min(c, 32)
    ctc_x = rng.standard_normal((steps, batch, classes))
    ctc_lp = (ctc_x - np.log(np.exp(ctc_x).sum(-1, keepdims=True))).astype(f)
    ctc_targets = rng.integers(1, classes, (batch, steps // 4))
    # Boxes: n*c/4 matched pairs (as many numbers as the other inputs), and 256 x 256 pairwise.
    pairs = max(n * c // 4, 1)
    corner = rng.uniform(0, 100, (pairs, 2)).astype(f)
    boxes = np.concatenate([corner, corner + rng.uniform(1, 30, (pairs, 2)).astype(f)], 1)
    shifted = boxes + rng.normal(0, 5, boxes.shape).astype(f)
    square = min(pairs, 256)
    table = {
        "ctc_loss": ((ctc_lp, ctc_targets, np.full(batch, steps), np.full(batch, steps // 4)), {}),
        "l1_loss": ((x, y), {}),
        "mse_loss": ((x, y), {}),
        "huber_loss": ((x, y), {}),
        "smooth_l1_loss": ((x, y), {}),
        "cross_entropy": ((x, labels), {"label_smoothing": 0.1}),
        "nll_loss": ((np.log(soft), labels), {}),
        "poisson_nll_loss": ((x, np.round(probs * 5)), {}),
        "gaussian_nll_loss": ((x, y, probs), {}),
        "kl_div": ((np.log(soft), soft), {"reduction": "batchmean"}),
        "binary_cross_entropy": ((probs, np.round(probs)), {}),
        "binary_cross_entropy_with_logits": ((x, probs), {}),
        "margin_ranking_loss": ((x[:, 0], y[:, 0], signs), {}),
        "hinge_embedding_loss": ((x, np.sign(y)), {}),
        "multilabel_margin_loss": ((x[:m], mlm), {}),
        "soft_margin_loss": ((x, np.sign(y)), {}),
        "multilabel_soft_margin_loss": ((x, np.round(probs)), {}),
        "cosine_embedding_loss": ((x, y, signs), {}),
        "multi_margin_loss": ((x, labels), {}),
        "triplet_margin_loss": ((x[:, :d], y[:, :d], probs[:, :d]), {}),
        "triplet_margin_with_distance_loss": ((x[:, :d], y[:, :d], probs[:, :d]), {}),
        "sigmoid_focal_loss": ((x, probs), {"reduction": "mean"}),
        "generalized_box_iou_loss": ((shifted, boxes), {"reduction": "mean"}),
        "distance_box_iou_loss": ((shifted, boxes), {"reduction": "mean"}),
        "complete_box_iou_loss": ((shifted, boxes), {"reduction": "mean"}),
        "box_iou": ((shifted[:square], boxes[:square]), {}),
        "generalized_box_iou": ((shifted[:square], boxes[:square]), {}),
        "distance_box_iou": ((shifted[:square], boxes[:square]), {}),
        "complete_box_iou": ((shifted[:square], boxes[:square]), {}),
    }
    args, kwargs = table[criterion]
    grads = tuple(i for i, a in enumerate(args) if a.dtype.kind == "f")[:1]
    return Case(criterion, args, kwargs, grads, "timing")


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up (and compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def timing_steps(case: Case):
    """(jitted jaxloss forward+backward, torch's eager one) of a case, each a no-argument
    callable that blocks until done. Every array is passed in, so XLA cannot constant-fold."""
    import jax
    import jax.numpy as jnp
    import torch

    fn = compat_function(case.criterion, case.library)
    arrays = [jnp.asarray(a) for a in case.args]

    def total(*args):
        return jnp.sum(fn(*args, **case.kwargs))

    step = jax.jit(jax.value_and_grad(total, argnums=case.grad_argnums[0]))
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in case.args]
    reference = reference_function(case.criterion, case.library)

    def torch_step():
        leaf = tensors[case.grad_argnums[0]].detach().requires_grad_(True)
        args = list(tensors)
        args[case.grad_argnums[0]] = leaf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = reference(*args, **case.kwargs).sum()
        out.backward()
        return leaf.grad

    return (lambda: jax.block_until_ready(step(*arrays))), torch_step


def time_case(case: Case, repeats: int = 7) -> tuple[float, float]:
    """Median ms of forward+backward: (jitted jaxloss, torch at its fastest thread count),
    side by side in one run (see `jaxloss.parity.timing`)."""
    jax_step, torch_step = timing_steps(case)
    fastest_torch_threads(torch_step)
    medians = side_by_side({"jax": jax_step}, {"torch": torch_step}, repeats)
    return medians["jax"], medians["torch"]


def _option_summary(drawn: list[Case]) -> str:
    keys = sorted({k for c in drawn for k in c.kwargs})
    return ",".join(
        k.replace("reduction", "red").replace("size_average", "legacy")
        for k in keys
        if k != "reduce"
    )


def _fmt(x: float) -> str:
    return "    inf" if not np.isfinite(x) else f"{x:7.1e}"


def run(
    seed: int, criteria: list[str], timing: bool, coverage: str = "full", out=sys.stdout
) -> int:
    import jax

    try:
        import torch
    except ImportError:  # pragma: no cover - the report needs torch by definition
        print(
            "The parity report compares against torch: pip install 'jaxloss[parity]' "
            "-c constraints.txt",
            file=sys.stderr,
        )
        return 2
    # float64 cases need 64-bit JAX arrays; scoped to this run, the caller's config is kept.
    with jax.enable_x64(True):
        return _run(seed, criteria, timing, coverage, out, jax.__version__, torch.__version__)


def _run(seed, criteria, timing, coverage, out, jax_version, torch_version) -> int:
    width = max(
        [len("criterion (torch.nn, torchvision.ops)")] + [len(display_name(c)) for c in criteria]
    )
    header = (
        f"{'criterion (torch.nn, torchvision.ops)':<{width}} {'cases':>5} {'options tried':<44} "
        f"{'f32 value':>9} {'f32 grad':>9} {'f64 value':>9} {'f64 grad':>9} "
        f"{'tol used':>8} {'ok':>3}"
    )
    if timing:
        header += f" {'jax ms':>8} {'torch ms':>9} {'ratio':>6}"
    print(
        f"jaxloss parity report: seed {seed}, {coverage} coverage, torch {torch_version}, "
        f"jax {jax_version}",
        file=out,
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    failures = 0
    rng = np.random.default_rng(seed)
    for criterion in criteria:
        errors = []
        n_cases = 0
        used = 0.0
        all_ok = True
        options = ""
        for dtype in (np.float32, np.float64):
            drawn = cases(criterion, seed=seed, dtypes=(dtype,), coverage=coverage)
            options = _option_summary(drawn)
            n_cases += len(drawn)
            outcomes = [compare(c) for c in drawn]
            bad = [o for o in outcomes if not o.ok]
            failures += len(bad)
            all_ok = all_ok and not bad
            errors += [max(o.value_error for o in outcomes), max(o.grad_error for o in outcomes)]
            used = max([used] + [o.tolerance_used for o in outcomes])
            for o in bad[:3]:
                print(
                    f"  MISMATCH {o.case.describe()} ({o.case.regime}): {o.detail[:300]}", file=out
                )
        cells = " ".join(f"{_fmt(e):>9}" for e in errors)
        line = (
            f"{display_name(criterion):<{width}} {n_cases:>5} {options[:44]:<44} {cells} "
            f"{used:8.2f} {'yes' if all_ok else 'NO':>3}"
        )
        if timing:
            jax_ms, torch_ms = time_case(timing_case(criterion, rng))
            line += f" {jax_ms:8.2f} {torch_ms:9.2f} {jax_ms / torch_ms:6.2f}"
        print(line, file=out, flush=True)
    print("-" * len(header), file=out)
    print(
        "Errors are the worst over all cases of max|jaxloss - torch| / max(max|torch|, atol/rtol) "
        "per array; "
        "'tol used' is the worst difference over its tolerance (<= 1 passes); 'inf' marks a "
        "nan/inf mismatch.",
        file=out,
    )
    if timing:
        print(
            "Times: median forward+backward w.r.t. the first input on one ~1M-element float32 "
            "input, jitted jaxloss vs eager torch, same run; ratio < 1 means jaxloss is "
            "faster.",
            file=out,
        )
    print(f"{failures} mismatching case(s).", file=out)
    return 1 if failures else 0


def libraries_report(seed: int, libraries_wanted, match: str = "", out=None) -> int:
    """The worst error of each reference function of optax, Keras, MONAI and
    segmentation_models_pytorch against its jaxloss counterpart, over its configurations."""
    from . import libraries

    out = out or sys.stdout
    chosen = [
        c
        for c in libraries.comparisons()
        if (not libraries_wanted or c.library in libraries_wanted) and match in c.id
    ]
    by_reference: dict[tuple[str, str], list] = {}
    failures = 0
    for comparison in chosen:
        for dtype in comparison.dtypes:
            result = libraries.run(comparison, dtype, seed)
            by_reference.setdefault((comparison.library, comparison.reference), []).append(result)
            if not result.ok:
                failures += 1
                print(f"  MISMATCH {comparison.id} {dtype}: {result.detail[:300]}", file=out)
    width = max([len("reference")] + [len(r) for _, r in by_reference])
    header = (
        f"{'library':<7} {'reference':<{width}} {'configs':>7} {'f32 value':>9} {'f32 grad':>9} "
        f"{'f64 value':>9} {'f64 grad':>9} {'ok':>3}"
    )
    print(f"jaxloss against the other loss libraries: seed {seed}", file=out)
    print(header, file=out)
    print("-" * len(header), file=out)
    for (library, reference), results in by_reference.items():
        cells = []
        for dtype in ("float32", "float64"):
            of_dtype = [r for r in results if r.dtype == np.dtype(dtype)]
            if not of_dtype:
                cells += ["      n/a"] * 2
                continue
            cells.append(f"{_fmt(max(r.value_error for r in of_dtype)):>9}")
            cells.append(f"{_fmt(max(r.grad_error for r in of_dtype)):>9}")
        configs = len({r.comparison.name for r in results})
        ok = "yes" if all(r.ok for r in results) else "NO"
        print(
            f"{library:<7} {reference:<{width}} {configs:>7} {' '.join(cells)} {ok:>3}",
            file=out,
        )
    print("-" * len(header), file=out)
    print(
        "Errors: the worst over a reference's configurations of max|jaxloss - reference| / "
        "max(max|reference|, atol/rtol), values and gradients (a vector-Jacobian product); "
        "'n/a': a reference that cannot compute in that dtype. Where a reference computes in "
        "float32 inside (Keras' means, MONAI's class weights and focal term) its float64 "
        "column shows that float32 rounding.",
        file=out,
    )
    print(f"worst case: {failures} mismatching run(s).", file=out)
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxloss.parity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for the random inputs (default: fresh from the clock)",
    )
    parser.add_argument(
        "--criteria",
        default=",".join(ALL_CRITERIA),
        help="comma-separated torch.nn.functional or torchvision.ops names (default: all "
        f"{len(ALL_CRITERIA)})",
    )
    parser.add_argument(
        "--pairwise",
        action="store_true",
        help="a pairwise covering array of each criterion's options instead of "
        "their full product (what ./dev test runs)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip the timing columns")
    parser.add_argument(
        "--libraries",
        action="store_true",
        help="compare with optax, keras, MONAI and segmentation_models_pytorch instead of torch",
    )
    parser.add_argument(
        "--library",
        default="",
        help="with --libraries: comma-separated libraries (optax, keras, monai, smp; default all)",
    )
    parser.add_argument(
        "--match", default="", help="with --libraries: only comparisons whose id contains this"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    if args.libraries:
        wanted = {name.strip() for name in args.library.split(",") if name.strip()}
        return libraries_report(seed, wanted, args.match)
    criteria = [c.strip() for c in args.criteria.split(",") if c.strip()]
    unknown = [c for c in criteria if c not in ALL_CRITERIA]
    if unknown:
        parser.error(f"unknown criteria {unknown}; choose from {sorted(ALL_CRITERIA)}")
    return run(
        seed, criteria, timing=not args.no_timing, coverage="pairwise" if args.pairwise else "full"
    )
