"""The README's quick example, runnable: native and compat styles give torch's numbers.

python examples/quickstart.py
"""

import jax
import jax.numpy as jnp

import jaxloss
from jaxloss.compat import functional as F
from jaxloss.compat import nn


def main():
    logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -2.0, 0.0]])
    labels = jnp.array([0, -100, 2])  # -100 is ignored, as in torch
    class_weight = jnp.array([1.0, 2.0, 0.5])

    # Native: class axis last, keyword-only options, jit/grad/vmap as usual.
    native = jaxloss.cross_entropy(logits, labels, class_weights=class_weight, label_smoothing=0.1)
    grads = jax.grad(jaxloss.cross_entropy)(logits, labels, class_weights=class_weight)
    masked = jaxloss.cross_entropy(
        logits, jnp.array([0, 1, 2]), where=jnp.array([True, False, True])
    )

    # Compat: torch's signatures and class axis 1.
    criterion = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=0.1)
    compat = criterion(logits, labels)
    kl = F.kl_div(jax.nn.log_softmax(logits), jax.nn.softmax(logits[::-1]), reduction="batchmean")

    print(f"native cross_entropy      {float(native):.6f}")
    print(f"nn.CrossEntropyLoss       {float(compat):.6f}")
    print(f"masked (where) mean       {float(masked):.6f}")
    print(f"kl_div batchmean          {float(kl):.6f}")
    print(f"grad row of ignored label {grads[1].tolist()}")
    return native, compat


if __name__ == "__main__":
    main()
