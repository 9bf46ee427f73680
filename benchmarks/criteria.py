"""Forward+backward time of every criterion: jitted jaxloss against torch eager (at its fastest
thread count, found in the same run), against optax where optax has the same loss, and, for
the elementwise criteria, against a floor: one fused elementwise program with the same reads,
the same written gradient and the same transcendentals per element, measured in the same run
(nll_loss: the least XLA program for its work, a gather, a mean and a one-hot gradient).
Medians of rounds timed in blocks per contender (`side_by_side`); ratios < 1 mean jaxloss is
faster.

    python benchmarks/criteria.py            # n=8192 x c=128 float32 inputs
    python benchmarks/criteria.py --quick    # tiny shapes, to check the code runs (CI)
    python benchmarks/criteria.py --only huber_loss nll_loss --out DIR   # a few rows
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss.parity.cases import ALL_CRITERIA
from jaxloss.parity.report import timing_case, timing_steps
from jaxloss.parity.timing import (
    cpu_dispatch,
    default_results_dir,
    fastest_torch_threads,
    machine,
    rounds_for,
    side_by_side,
    synchronous_cpu_dispatch,
    write_result,
)


def _optax_equivalents():
    """optax losses that compute the same mean loss as a criterion's timing case."""
    import optax

    return {
        "cross_entropy": lambda x, y: jnp.mean(
            optax.losses.softmax_cross_entropy(
                x, optax.smooth_labels(jax.nn.one_hot(y, x.shape[-1]), 0.1)
            )
        ),
        "binary_cross_entropy_with_logits": lambda x, y: jnp.mean(
            optax.losses.sigmoid_binary_cross_entropy(x, y)
        ),
        "kl_div": lambda x, y: jnp.sum(optax.losses.kl_divergence(x, y)) / x.shape[0],
        "mse_loss": lambda x, y: jnp.mean(optax.losses.squared_error(x, y)),
        "huber_loss": lambda x, y: jnp.mean(optax.losses.huber_loss(x, y, delta=1.0)),
        "sigmoid_focal_loss": lambda x, y: jnp.mean(
            optax.losses.sigmoid_focal_loss(x, y, alpha=0.25)
        ),
    }


# The transcendentals per element of each elementwise criterion's best formula (loss and
# gradient together): the floor evaluates exactly these once per element.
_FLOOR_TRANSCENDENTALS = {
    "l1_loss": (),
    "mse_loss": (),
    "huber_loss": (),
    "smooth_l1_loss": (),
    "margin_ranking_loss": (),
    "hinge_embedding_loss": (),
    "binary_cross_entropy_with_logits": (jnp.exp, jnp.log1p),
    "soft_margin_loss": (jnp.exp, jnp.log1p),
    "multilabel_soft_margin_loss": (jnp.exp, jnp.log1p),
    "binary_cross_entropy": (jnp.log, jnp.log1p),
    "poisson_nll_loss": (jnp.exp,),
    "gaussian_nll_loss": (jnp.log,),
    "kl_div": (jnp.log,),
    "sigmoid_focal_loss": (jnp.exp, jnp.log1p),
}


def _floor_step(criterion, case):
    """One fused elementwise pass: read every input once, apply the criterion's
    transcendentals, write one array like the gradient. A mean's forward+backward reads its
    inputs twice (XLA:CPU cannot also emit the sum from the pass that writes), so it sits
    above this, unless it keeps its transcendentals out of the pass that writes."""
    ops = _FLOOR_TRANSCENDENTALS[criterion]
    arrays = [jnp.asarray(a) for a in case.args if isinstance(a, np.ndarray)]
    shape = arrays[case.grad_argnums[0]].shape

    @jax.jit
    def floor(*arrays):
        value = arrays[0]
        for other in arrays[1:]:
            value = value * jnp.broadcast_to(other, shape) + 0.5  # read every input
        for op in ops:
            value = op(jnp.abs(value) * 0.01)
        return value

    return lambda: jax.block_until_ready(floor(*arrays))


def _nll_floor_step(case):
    """The least XLA program for nll_loss's mean forward+backward: pick each row's entry (a
    gather without bounds handling), its mean, and the gradient written in one pass as a
    one-hot of -1/N; no ignore_index, weights or checks."""
    log_probs, labels = (jnp.asarray(a) for a in case.args[:2])

    @jax.jit
    def floor(x, y):
        n, c = x.shape
        picked = jnp.take_along_axis(x, y[:, None], 1, mode="promise_in_bounds")
        hit = jax.lax.broadcasted_iota(y.dtype, (n, c), 1) == y[:, None]
        return -jnp.mean(picked), jnp.where(hit, -1.0 / n, 0.0).astype(x.dtype)

    return lambda: jax.block_until_ready(floor(log_probs, labels))


def _optax_step(loss, case):
    arrays = [jnp.asarray(a) for a in case.args]
    step = jax.jit(jax.value_and_grad(loss, argnums=0))
    return lambda: jax.block_until_ready(step(*arrays))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument(
        "--repeats", type=int, default=15, help="the fewest rounds (more for fast criteria)"
    )
    parser.add_argument(
        "--out",
        default=default_results_dir(),
        help="folder of criteria.json (default: per CPU kind)",
    )
    parser.add_argument("--only", nargs="+", metavar="CRITERION", help="time only these criteria")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(ALL_CRITERIA))
    if unknown:
        parser.error(f"--only: unknown criteria {unknown}; choose from {sorted(ALL_CRITERIA)}")
    n, c, repeats = (64, 8, 2) if args.quick else (8192, 128, args.repeats)
    optax_losses = _optax_equivalents()
    rng = np.random.default_rng(0)
    print(
        f"float32, n={n}, c={c}, forward+backward w.r.t. the first input, median of "
        f"rounds in blocks per contender (ms; at least {repeats}, about 0.4 s of each); "
        f"{cpu_dispatch()} CPU dispatch\non {machine()}"
    )
    print(
        f"{'criterion':<36}{'jaxloss':>9}{'torch':>9}{'thr':>4}{'ratio':>7}"
        f"{'optax':>9}{'ratio':>7}{'floor':>9}{'ratio':>7}{'rounds':>7}"
    )
    rows = []
    for criterion in args.only or ALL_CRITERIA:
        case = timing_case(criterion, rng, n=n, c=c)
        ours, theirs = timing_steps(case)
        threads = fastest_torch_threads(theirs, repeats=3 if args.quick else 5)
        jax_steps = {"jaxloss": ours}
        if criterion in optax_losses:
            jax_steps["optax"] = _optax_step(optax_losses[criterion], case)
        if criterion in _FLOOR_TRANSCENDENTALS:
            jax_steps["floor"] = _floor_step(criterion, case)
        elif criterion == "nll_loss":
            jax_steps["floor"] = _nll_floor_step(case)
        rounds = 2 if args.quick else rounds_for([*jax_steps.values(), theirs], repeats)
        medians = side_by_side(jax_steps, {"torch": theirs}, rounds)
        ms, torch_ms = medians["jaxloss"], medians["torch"]
        line = f"{criterion:<36}{ms:9.3f}{torch_ms:9.3f}{threads:4d}{ms / torch_ms:7.2f}"
        for other in ("optax", "floor"):
            if other in medians:
                line += f"{medians[other]:9.3f}{ms / medians[other]:7.2f}"
            else:
                line += f"{'-':>9}{'-':>7}"
        print(f"{line}{rounds:7d}", flush=True)
        rows.append(dict(criterion=criterion, torch_threads=threads, rounds=rounds, ms=medians))
    print(
        "ratio = jaxloss / other; thr = torch's fastest thread count here. The CE row's optax "
        "column uses a materialised smoothed one-hot target (optax has no label smoothing on "
        "integer labels). floor = one fused elementwise pass with the criterion's reads, "
        "written gradient and transcendentals, without the loss's sum (XLA:CPU cannot emit it "
        "from the same pass), so a mean's forward+backward, which reads its inputs twice, "
        "sits above it. nll_loss's floor: the least XLA program for its work (a gather of one "
        "entry per row, their mean, a one-hot gradient)."
    )
    write_result(f"{args.out}/criteria.json", n=n, c=c, cpu_dispatch=cpu_dispatch(), rows=rows)
    return 0


if __name__ == "__main__":
    synchronous_cpu_dispatch()  # see its docstring: each step is waited for anyway
    raise SystemExit(main())
