"""Model cases: train (or reuse) one CondNet per dataset x policy x tau, and the dense nets of the
frontier's widths (bench.measure.model times them). Shared by `bench models` and the suite runner."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from bench.core.errors import UserError
from bench.plan.models import ModelCase
from condcore.data import FEATURES, Dataset, Split, load_dataset
from condcore.mask_export import export_masks, load_masks
from condcore.models import CondNet
from condcore.policies import POLICIES
from condcore.train import TRAINING_VERSION, TrainConfig, load_checkpoint, save_checkpoint, train


def training_memory_bytes(dataset: str, hidden: tuple[int, ...] | list[int], batch_size: int, n_classes: int = 10) -> int:
    """What training a model takes, an upper estimate: four float32 copies of each weight (itself, its
    gradient, Adam's two moments) and a few of each layer's activations per example of a minibatch."""
    widths = [FEATURES[dataset], *hidden, n_classes]
    weights = sum(a * b for a, b in zip(widths, widths[1:])) * 2  # the layers and, at most as big, their policies
    return 16 * weights + 16 * batch_size * sum(widths)


def check_fits(dataset: str, hidden, batch_size: int, where: str, device: str = "cpu") -> None:
    """One line, before any training starts, where a model cannot fit in the free memory of the machine
    (or of its GPU, for a model that trains on cuda)."""
    from bench.measure.kernel import MEMORY_HEADROOM, available_memory_bytes  # measure imports this module

    need, free = training_memory_bytes(dataset, hidden, batch_size), available_memory_bytes(device)
    if need > MEMORY_HEADROOM * free:
        on = "this machine" if device == "cpu" else f"its {device} device"
        raise UserError(f"{where}: training a {dataset} model with hidden widths {list(hidden)} needs about "
                        f"{need / 2**30:.3g} GiB; {on} has {free / 2**30:.3g} GiB free")


def train_or_reuse(case: ModelCase, data: Dataset, root: Path, *, progress: bool = True) -> tuple[CondNet, dict]:
    """Trains the case's model into root/<name>/ unless a finished checkpoint is already there (its
    metrics.json, written last, marks it finished)."""
    folder = root / case.name
    if (reused := _reuse(case, root)) is not None:
        return reused
    folder.mkdir(parents=True, exist_ok=True)
    # One trainer per model: two runs sharing a checkpoints folder would write one model.pt at once.
    with open(folder / ".train.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (reused := _reuse(case, root)) is not None:  # the other run finished it while this one waited
            return reused
        return _train(case, data, folder, progress)


def _reuse(case: ModelCase, root: Path) -> tuple[CondNet, dict] | None:
    """The finished checkpoint, or None where there is none; a damaged one (a truncated model.pt beside
    its metrics.json, a garbage masks.npz) is said once and trained again, never a traceback on every
    later run."""
    if not is_trained(case, root):
        return None
    folder = root / case.name
    try:
        json.loads((folder / "metrics.json").read_text())["training_version"]  # is_trained read it leniently
        loaded = load_checkpoint(folder / "model.pt")
        load_masks(folder / "masks.npz")
        return loaded
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises (EOFError, RuntimeError, ...)
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        print(f"note: {folder} is damaged ({type(exc).__name__}: {first}); training it again", file=sys.stderr)
        (folder / "metrics.json").unlink(missing_ok=True)  # no longer marks it finished
        return None


def _train(case: ModelCase, data: Dataset, folder: Path, progress: bool) -> tuple[CondNet, dict]:
    model_cfg = case.model_config(data.n_features, data.n_classes)
    # Validation every 5 epochs: a pass costs ~7% of a digits epoch, and a suite reads only the final test
    # numbers (the history stays in model.pt).
    train_cfg = TrainConfig(epochs=case.epochs, batch_size=case.batch_size, lr=case.lr, seed=case.seed,
                            inference_mode=POLICIES[case.policy].inference_mode, precision=case.precision, valid_every=5,
                            **case.recipe.train_options())
    torch.manual_seed(case.seed)
    result = train(CondNet(model_cfg).to(case.device), dataset_on(data, case.device), train_cfg, progress=progress)
    # The checkpoint, its test metrics and its masks from the CPU copy: one file whatever trained it, and
    # the same masks a CPU kernel case of this model reads.
    result.model.cpu()
    folder.mkdir(parents=True, exist_ok=True)
    export_masks(result.model, data.test, train_cfg.inference_mode, folder / "masks.npz", dataset=data.name)
    metrics = save_checkpoint(result, data, train_cfg, folder)
    return result.model, {**metrics, "history": result.history}  # as load_checkpoint gives them


def dataset_on(data: Dataset, device: str) -> Dataset:
    """The dataset with its splits' tensors on `device` (itself on the CPU)."""
    if device == "cpu":
        return data
    move = lambda split: Split(split.x.to(device), split.y.to(device))  # noqa: E731
    return Dataset(data.name, move(data.train), move(data.valid), move(data.test), data.n_classes)


def is_trained(case: ModelCase, root: Path) -> bool:
    """A finished checkpoint of this training version (an older one is trained again, not reused)."""
    folder = root / case.name
    if not all((folder / name).exists() for name in ("model.pt", "masks.npz", "metrics.json")):
        return False
    try:
        return json.loads((folder / "metrics.json").read_text()).get("training_version") == TRAINING_VERSION
    except (OSError, ValueError, AttributeError):
        return True  # damaged, not unfinished: _reuse says so before training it again


class Datasets:
    """The datasets a run reads ({name: data_dir}), each as each seed splits it (a seed draws its own
    train/test split), loaded on first use."""

    def __init__(self, sources: dict[str, str | Path | None]) -> None:
        self.sources = dict(sources)
        self._loaded: dict[tuple[str, int], Dataset] = {}

    def __call__(self, name: str, seed: int) -> Dataset:
        if (name, seed) not in self._loaded:
            self._loaded[(name, seed)] = load_dataset(name, self.sources[name], seed=seed)
        return self._loaded[(name, seed)]


_worker_data: Datasets | None = None


def _init_worker(sources: dict[str, str | Path | None]) -> None:
    global _worker_data
    # Ctrl-C is the parent's to handle: it terminates the pool, and a half-written checkpoint has no
    # metrics.json, so it is trained again on resume.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _worker_data = Datasets(sources)


def _train_in_worker(job: tuple[ModelCase, Path]) -> ModelCase:
    case, root = job
    train_or_reuse(case, _worker_data(case.dataset, case.seed), root, progress=False)
    return case


def train_missing(cases: list[ModelCase], datasets: Datasets, root: Path, jobs: int,
                  on_done: Callable[[ModelCase], None]) -> None:
    """Trains every case without a finished checkpoint, calling on_done(case) as each finishes.

    With jobs > 1, on that many single-threaded worker processes: the small GEMMs and the many small ops
    of a training step use two cores poorly, and two models side by side, one core each, trained
    1.27x faster than one after the other on two threads (measured here, digits, 2048x2048, bf16).
    A model's numbers then come from a one-thread run, which can differ from a two-thread run in the
    last bits. Each case trains on its own dataset's split for its seed.
    """
    # Longest first, so that no long model trains alone at the end while the other cores sit idle:
    # layers that train dense (dense, straight-through) cost the most, then the denser policies.
    todo = sorted((case for case in cases if not is_trained(case, root)),
                  key=lambda case: (POLICIES[case.policy].sparse_in_training, -case.tau))
    # Models that train on a GPU train here, one after another: each would otherwise start a CUDA
    # context of its own in a worker, and they would share the device anyway.
    on_gpu = [case for case in todo if case.device != "cpu"]
    todo = [case for case in todo if case.device == "cpu"]
    jobs = min(jobs, len(todo))
    # The models that do not fill a last round of `jobs` train first, here, on every thread: trained
    # last, each would run on one core while the other cores sat idle.
    first = todo if jobs <= 1 else todo[: len(todo) % jobs]
    in_process = on_gpu + first
    pool = None
    if jobs > 1:
        # spawn, not fork: a forked child of a process that has run OpenMP work can hang in it.
        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker,
                                                         initargs=(datasets.sources,))
    try:
        for case in in_process:
            train_or_reuse(case, datasets(case.dataset, case.seed), root, progress=False)
            on_done(case)
        if pool is None:
            return
        for case in pool.imap_unordered(_train_in_worker, [(case, root) for case in todo[len(first):]]):
            on_done(case)
        pool.close()
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if pool is not None:
            pool.join()
