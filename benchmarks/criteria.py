"""Forward+backward time of every criterion: jitted jaxloss vs torch, and vs optax where optax
has the same loss, measured side by side in one run (medians; ratios < 1 mean jaxloss is faster).

    python benchmarks/criteria.py            # n=8192 x c=128 float32 inputs
    python benchmarks/criteria.py --quick    # tiny shapes, to check the code runs (CI)
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss.parity.cases import CRITERIA
from jaxloss.parity.report import median_ms, time_case, timing_case


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
        "kl_div": lambda x, y: jnp.mean(optax.losses.kl_divergence(x, y)),
        "mse_loss": lambda x, y: jnp.mean(optax.losses.squared_error(x, y)),
        "huber_loss": lambda x, y: jnp.mean(optax.losses.huber_loss(x, y, delta=1.0)),
    }


def _time_optax(loss, case, repeats):
    arrays = [jnp.asarray(a) for a in case.args]
    step = jax.jit(jax.value_and_grad(loss, argnums=0))
    return median_ms(lambda: jax.block_until_ready(step(*arrays)), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    n, c, repeats = (64, 8, 2) if args.quick else (8192, 128, args.repeats)
    optax_losses = _optax_equivalents()
    rng = np.random.default_rng(0)
    print(
        f"float32, n={n}, c={c}, forward+backward w.r.t. the first input, median of {repeats} "
        f"(ms); jax {jax.__version__}"
    )
    print(f"{'criterion':<36}{'jaxloss':>10}{'torch':>10}{'ratio':>8}{'optax':>10}{'ratio':>8}")
    for criterion in CRITERIA:
        case = timing_case(criterion, rng, n=n, c=c)
        ours, theirs = time_case(case, repeats)
        line = f"{criterion:<36}{ours:10.3f}{theirs:10.3f}{ours / theirs:8.2f}"
        if criterion in optax_losses:
            reference = _time_optax(optax_losses[criterion], case, repeats)
            line += f"{reference:10.3f}{ours / reference:8.2f}"
        print(line, flush=True)
    print(
        "ratio = jaxloss / other. The CE row's optax column uses a materialised smoothed "
        "one-hot target (optax has no label smoothing on integer labels)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
