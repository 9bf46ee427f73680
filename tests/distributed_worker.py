"""One process of tests/test_distributed.py: `python distributed_worker.py PORT RANK OUT`.

Two such processes, 4 CPU devices each, join over localhost with jax.distributed (gloo CPU
collectives) into one (2, 4) data x model mesh of 8 devices. Each computes the fused
linear cross-entropy, the head's log-probabilities and entropies, and the fused distillation
loss, with their gradients, on arrays sharded over that mesh (tokens over 'data', the heads'
vocabulary over 'model') and the same on one device of its own, and writes the largest
differences to OUT as JSON.
"""

import json
import sys


def main(port: int, rank: int, out: str) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=rank)
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxloss

    assert jax.device_count() == 8 and jax.local_device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)  # the same draw in both processes
    x = rng.normal(size=(32, 8)).astype(np.float32)
    w = rng.normal(size=(16, 8)).astype(np.float32)
    bias = rng.normal(size=16).astype(np.float32)
    labels = rng.integers(0, 16, size=32)
    labels[:10] = -100  # the first data shard has fewer counted tokens

    mesh = jax.make_mesh((2, 4), ("data", "model"))

    def sharded(array, spec):
        sharding = NamedSharding(mesh, spec)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    x_teacher = rng.normal(size=(32, 6)).astype(np.float32)
    w_teacher = rng.normal(size=(16, 6)).astype(np.float32)
    cotangent = rng.normal(size=32).astype(np.float32)

    # Each case: a scalar of (x, w, bias, labels, the teacher's x and w), differentiated with
    # respect to the student head's (x, w, bias).
    def cross_entropy(x, w, bias, y, x_t, w_t):
        return jaxloss.linear_cross_entropy(
            x, w, y, bias=bias, label_smoothing=0.1, z_loss=1e-3, chunk_size=8
        )

    def log_probs(x, w, bias, y, x_t, w_t):
        stats = jaxloss.linear_log_probs(
            x, w, y, bias=bias, temperature=0.9, with_entropy=True, chunk_size=8
        )
        return jnp.sum(stats.log_probs * cotangent) + jnp.sum(stats.entropy)

    def distillation(x, w, bias, y, x_t, w_t):
        return jaxloss.linear_distillation_loss(
            x, w, x_t, w_t, y, bias_student=bias, beta=0.3, weight_hard=0.5, chunk_size=8
        )

    specs = (P("data"), P("model"), P("model"), P("data"), P("data"), P("model"))
    whole = (x, w, bias, labels, x_teacher, w_teacher)
    args = [sharded(a, spec) for a, spec in zip(whole, specs)]
    local = jax.local_devices()[0]
    on_one = [jax.device_put(a, local) for a in whole]
    result = {"rank": rank}
    for case in (cross_entropy, log_probs, distillation):
        value, grads = jax.jit(jax.value_and_grad(case, argnums=(0, 1, 2)))(*args)
        value = float(value.addressable_data(0))  # replicated: every device holds it
        grads = [np.asarray(multihost_utils.process_allgather(g, tiled=True)) for g in grads]
        expected, expected_grads = jax.value_and_grad(case, argnums=(0, 1, 2))(*on_one)
        result[case.__name__] = {
            "value": abs(value - float(expected)) / abs(float(expected)),
            "grads": [
                float(np.max(np.abs(g - np.asarray(e))) / np.max(np.abs(np.asarray(e))))
                for g, e in zip(grads, expected_grads)
            ],
        }
    with open(out, "w") as handle:
        json.dump(result, handle)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
