"""One process of tests/test_distributed.py: `python distributed_worker.py PORT RANK OUT`.

Two such processes, 4 CPU devices each, join over localhost with jax.distributed (gloo CPU
collectives) into one (2, 4) data x model mesh of 8 devices. Each computes the fused
linear cross-entropy and its gradients on arrays sharded over that mesh (tokens over
'data', the head's vocabulary over 'model') and the same loss on one device of its own,
and writes the largest differences to OUT as JSON.
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

    options = dict(label_smoothing=0.1, z_loss=1e-3, chunk_size=8)
    y = sharded(labels, P("data"))

    def loss(x, w, bias, y):
        return jaxloss.linear_cross_entropy(x, w, y, bias=bias, **options)

    args = (sharded(x, P("data")), sharded(w, P("model")), sharded(bias, P("model")), y)
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*args)
    value = float(value.addressable_data(0))  # replicated: every device holds it
    grads = [np.asarray(multihost_utils.process_allgather(g, tiled=True)) for g in grads]

    local = jax.local_devices()[0]

    def reference(x, w, bias):
        return jaxloss.linear_cross_entropy(x, w, jnp.asarray(labels), bias=bias, **options)

    on_one = [jax.device_put(a, local) for a in (x, w, bias)]
    expected, expected_grads = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))(*on_one)
    result = {
        "rank": rank,
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
