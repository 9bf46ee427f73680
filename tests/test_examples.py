"""The Flax training examples: each trains a few steps, the data loaders read the standard file
formats and reject malformed ones clearly, LeNet reaches >= 95% on the embedded digits, and the
torch-vs-Flax training parity holds step by step for all three models."""

import gzip
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import cifar10_cnn  # noqa: E402
import common  # noqa: E402
import mlp  # noqa: E402
import mnist_lenet  # noqa: E402
import parity_training  # noqa: E402


def _write_idx(path: Path, array: np.ndarray, compress: bool):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(directory: Path, compress: bool, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n, (image_name, label_name) in (
        ("train", n_train, common._IDX_FILES["train"]),
        ("test", n_test, common._IDX_FILES["test"]),
    ):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(directory / image_name, images, compress)
        _write_idx(directory / label_name, labels, compress)
        arrays[split] = (images, labels)
    return arrays


def _fake_cifar(directory: Path, n=12):
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_mnist_loader_reads_idx_files(tmp_path, compress):
    arrays = _fake_mnist(tmp_path, compress)
    (x_train, _), (x_test, y_test) = common.mnist(tmp_path)
    assert x_train.shape == (40, 28, 28, 1) and x_test.shape == (20, 28, 28, 1)
    np.testing.assert_allclose(x_train[..., 0] * 255, arrays["train"][0], atol=1e-4)
    np.testing.assert_array_equal(y_test, arrays["test"][1])


def test_mnist_loader_errors_name_the_file_and_the_format(tmp_path):
    with pytest.raises(common.DataError, match="no such directory"):
        common.mnist(tmp_path / "absent")
    _fake_mnist(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(common.DataError, match="missing t10k-labels-idx1-ubyte"):
        common.mnist(tmp_path)
    _fake_mnist(tmp_path, compress=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(common.DataError, match="magic 00 00 08 03"):
        common.mnist(tmp_path)
    _fake_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])  # truncated data
    with pytest.raises(common.DataError, match="header says"):
        common.mnist(tmp_path)
    _fake_mnist(tmp_path, compress=False, n_train=40)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39), compress=False)
    with pytest.raises(common.DataError, match=r"40 images but .* 39 labels"):
        common.mnist(tmp_path)


def test_cifar_loader_reads_pickle_batches_in_chw_order(tmp_path):
    written = _fake_cifar(tmp_path)
    (x_train, _), (x_test, y_test) = common.cifar10(tmp_path)
    assert x_train.shape == (60, 32, 32, 3) and x_test.shape == (12, 32, 32, 3)
    data, labels = written["test_batch"]
    # Pixel (row 3, col 5) of image 0: red at 3*32+5, green 1024 later, blue 2048 later.
    np.testing.assert_allclose(x_test[0, 3, 5] * 255, data[0, [101, 1125, 2149]], atol=1e-4)
    np.testing.assert_array_equal(y_test, labels)


def test_cifar_loader_errors(tmp_path):
    _fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(common.DataError, match=r"missing .*data_batch_3"):
        common.cifar10(tmp_path)
    _fake_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(common.DataError, match="not a CIFAR-10 python pickle batch"):
        common.cifar10(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(common.DataError, match=r"\(N, 3072\)"):
        common.cifar10(tmp_path)


@pytest.mark.parametrize(
    "module, extra",
    [
        (mlp, []),
        # LeNet and the CIFAR CNN also train step by step against torch in the default tier
        # (test_training_matches_torch_step_by_step_for_all_three_models).
        pytest.param(mnist_lenet, [], marks=pytest.mark.slow),
        pytest.param(cifar10_cnn, [], marks=pytest.mark.slow),
    ],
    ids=["mlp", "lenet", "cifar_cnn"],
)
def test_each_example_trains_a_few_steps_and_saves_a_plot(module, extra, tmp_path, capsys):
    history = module.main(
        ["--steps", "3", "--batch-size", "8", "--out", str(tmp_path), "--no-progress", *extra]
    )
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
    assert Path(history["plot"]).is_file()
    assert "test accuracy: " in capsys.readouterr().out


def test_examples_read_real_data_directories(tmp_path):
    _fake_mnist(tmp_path, compress=True)
    history = mnist_lenet.main(
        ["--steps", "2", "--data-dir", str(tmp_path), "--out", str(tmp_path), "--no-progress"]
    )
    assert len(history["loss"]) == 2


@pytest.mark.slow  # ~9 s of compiles; the CIFAR loader's own checks run by default
def test_cifar_example_reads_a_real_data_directory(tmp_path):
    cifar_dir = tmp_path / "cifar" / "cifar-10-batches-py"
    cifar_dir.mkdir(parents=True)
    _fake_cifar(cifar_dir)
    history = cifar10_cnn.main(
        [
            "--steps",
            "2",
            "--data-dir",
            str(tmp_path / "cifar"),
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert len(history["loss"]) == 2


@pytest.mark.slow
def test_lenet_reaches_95_percent_on_the_embedded_digits(tmp_path):
    """The README's main command, as it runs there (seeded)."""
    history = mnist_lenet.main(["--seed", "0", "--out", str(tmp_path), "--no-progress"])
    assert history["test_accuracy"][-1] >= 0.95, history["test_accuracy"]


def test_training_matches_torch_step_by_step_for_all_three_models(full_tier):
    # The CNN's compiles take the longest: --full runs it, the default tier the other two.
    expected = {"MLP", "LeNet-5", "CIFAR-10 CNN"} if full_tier else {"MLP", "LeNet-5"}
    results = parity_training.run(steps=6, batch_size=16, seed=0, models=expected)
    assert set(results) == expected
    for name, (theirs, ours) in results.items():
        assert len(theirs) == 6
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, err_msg=name)
        assert not np.allclose(theirs[0], theirs[-1]), f"{name}: the loss never moved"


def test_load_torch_state_rejects_a_mismatched_layer():
    import torch
    from flax import nnx

    model = common.MLP(rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"fc1\.weight"):
        common.load_torch_state(model, {"fc1.weight": torch.zeros(7, 10)})


@pytest.mark.slow  # ~10 s of compiles on 8 devices; the fused layouts run in test_parallel.py
def test_sharded_lm_head_example_tracks_the_single_device_loss(capsys):
    """examples/lm_head_sharded.py on the (2, 4) mesh: every step's sharded loss next to the
    one-device loss, equal to float32 rounding, and the memory comparison at the end."""
    import lm_head_sharded

    assert lm_head_sharded.main(["--steps", "3"]) == 0
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3
    for _, sharded, single in rows:
        assert abs(float(sharded) - float(single)) <= 1e-5 * abs(float(single))
    assert float(rows[-1][1]) < float(rows[0][1])  # it learns
    assert "temp memory per device" in printed


@pytest.mark.slow  # ~8 s of compiles (six scans); every loss is tested on its own by default
def test_box_regression_example_fits_every_loss_and_writes_the_plot(tmp_path, capsys):
    """examples/box_regression.py: each IoU loss raises the mean IoU from its start; the PNG
    of IoU against step is written (a short run; the default is 300 steps)."""
    import box_regression

    out = tmp_path / "boxes.png"
    finals = box_regression.main(["--steps", "40", "--boxes", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    assert set(finals) == {"GIoU", "DIoU", "CIoU", "EIoU", "SIoU", "Wise-IoU v3"}
    start = float(printed.split("mean IoU at the start ")[1].split()[0])
    for name, final in finals.items():
        assert name in printed
        assert final > start + 0.05, (name, final, start)
    assert out.stat().st_size > 0


@pytest.mark.slow  # ~25 s: a full run (SFT then DPO) on 8 devices
def test_dpo_example_learns_the_preference(tmp_path):
    """examples/dpo_sharded.py: SFT then DPO of the tiny causal LM on the (2, 4) mesh; the
    reward margin and the preference accuracy rise to a clear preference, and the PNG and the
    memory comparison are written."""
    import dpo_sharded

    history = dpo_sharded.main(["--out", str(tmp_path)])
    assert history["sft loss"][-1] < 0.6 * history["sft loss"][0]
    assert np.mean(history["accuracy"][-10:]) >= 0.95
    assert np.mean(history["reward margin"][-10:]) > np.mean(history["reward margin"][:10]) + 1.0
    assert (tmp_path / "dpo_sharded.png").stat().st_size > 10_000
    assert 0 < history["fused_temp_bytes"] and 0 < history["naive_temp_bytes"]


@pytest.mark.slow  # ~30 s: a full run on 8 devices, and the memory compiles at B = 8192
def test_contrastive_example_learns_retrieval_on_the_ring(tmp_path):
    """examples/contrastive_sharded.py: the two towers trained with SigLIP's ring over 8
    devices; held-out retrieval accuracy rises from chance to above 0.9, the PNG is written,
    and the ring's step needs less memory per device than gathering every text."""
    import contrastive_sharded

    history = contrastive_sharded.main(["--out", str(tmp_path)])
    assert history["accuracy"][0] < 0.3 and history["accuracy"][-1] > 0.9
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert (tmp_path / "contrastive_sharded.png").stat().st_size > 10_000
    big = history["memory"][8192]
    assert big["ring"] < big["gather"] / 2
