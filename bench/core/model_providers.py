"""Model providers: the ways of running one trained model's inference that a benchmark puts side by side.

A dense net's figure of record is its fastest correct provider, because a user who ships a dense net
ships it the fastest way they can: condbench's own forward is one of several. `ours` is condbench's
inference (for a CondNet its block-sparse kernels, the fused native call where it applies); `torch` the
same weights as a plain `nn.Sequential`; `onnxruntime` that net exported to ONNX, on ONNX Runtime's CPU
execution provider with the suite's threads; `torch_compile` the `nn.Sequential` under
`torch.compile`; `cuda_graph` the `nn.Sequential` captured in a CUDA graph and replayed (on a GPU).
Those run nets whose every gate is always on: a CondNet's per-example block masks are not a graph they
can express without computing every block, which is a dense net, so for a CondNet they say so instead. `ours_compiled`, condbench's own forward under `torch.compile`, runs
CondNets too. Every provider is checked against the model's spec logits before it is
timed (bench.measure.model); one that cannot run or fails its check is a note, never a number.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from condcore.models import CondNet
from condcore.models.condnet import ACTIVATION_LAYERS


class ProviderUnavailable(Exception):
    """A provider cannot run this model here: the message is one line saying why."""


# A built provider: prepare(x) turns a test batch into the provider's input once, outside the timed
# region; run(prepared) computes the logits (a tensor, or an array torch.as_tensor takes).
Prepare = Callable[[torch.Tensor], object]
RunBatch = Callable[[object], object]


@dataclass(frozen=True)
class ModelProvider:
    name: str
    about: str  # one line for reports
    # (model, inference mode, threads) -> (prepare, run); raises ProviderUnavailable
    build: Callable[[CondNet, str, int], tuple[Prepare, RunBatch]]
    # seconds the machine idles after this provider's timing sample, where its threads outlive its calls
    settle_s: float = 0.0


MODEL_PROVIDERS: dict[str, ModelProvider] = {}


def register(provider: ModelProvider) -> ModelProvider:
    if provider.name in MODEL_PROVIDERS:
        raise ValueError(f"model provider {provider.name!r} is registered twice")
    MODEL_PROVIDERS[provider.name] = provider
    return provider


def model_provider_names() -> tuple[str, ...]:
    return tuple(MODEL_PROVIDERS)


# What a suite or `bench models` times when it names no providers: every one that runs in seconds.
DEFAULT_MODEL_PROVIDERS: tuple[str, ...] = ("ours", "torch", "onnxruntime", "torch_compile")


def is_dense(model: CondNet) -> bool:
    """Every gate always on: the net is a plain MLP, which any runtime can run."""
    return all(gate.always_on for gate in model.gates)


def as_sequential(model: CondNet) -> nn.Sequential:
    """The dense net's layers as a plain nn.Sequential (Linear, ReLU or Tanh, ..., Linear), sharing its weights."""
    if not is_dense(model):
        raise ProviderUnavailable("a CondNet's per-example block masks are not a plain MLP; it runs only as condbench's")
    layers: list[nn.Module] = []
    activation = ACTIVATION_LAYERS[model.config.activation]
    for linear in model.hidden:
        layers += [linear, activation()]
    return nn.Sequential(*layers, model.output).eval()


def _ours(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    model.eval()
    return (lambda x: x), (lambda x: model(x, mode=mode).logits)


def _torch(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    return (lambda x: x), as_sequential(model)


def _compiled(fn: Callable[[torch.Tensor], torch.Tensor]) -> RunBatch:
    """fn under torch.compile, any failure of the compiler (at build or at a shape's first call) this
    provider's note."""
    # Every nn.Sequential shares one forward code object, so each model and batch size is one more
    # recompile of it; past dynamo's limit (8) it would run the net eagerly, silently: a torch number
    # under torch.compile's name. Raised for a benchmark of many nets, and a hit made an error.
    dynamo = torch._dynamo.config
    for key, most in (("recompile_limit", 1024), ("accumulated_recompile_limit", 8192)):
        if hasattr(dynamo, key):
            setattr(dynamo, key, max(getattr(dynamo, key), most))
    if hasattr(dynamo, "fail_on_recompile_limit_hit"):
        dynamo.fail_on_recompile_limit_hit = True
    try:
        compiled = torch.compile(fn, dynamic=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the compiler is this provider's note
        raise ProviderUnavailable(f"torch.compile failed: {_first_line(exc)}") from None

    def run(x: torch.Tensor):
        try:
            return compiled(x)
        except Exception as exc:  # noqa: BLE001 - compilation happens on the first call of each shape
            raise ProviderUnavailable(f"torch.compile failed: {_first_line(exc)}") from None

    return run


def _torch_compile(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    return (lambda x: x), _compiled(as_sequential(model))


def _ours_compiled(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    # condbench's forward on its torch kernels, as a user would torch.compile a CondNet: dynamo breaks
    # the graph at each data-dependent step (which blocks run), so this is compiled pieces between
    # eager ones, and each distinct count of active blocks is a compile of its own.
    # Its graph breaks are the point, not news: dynamo's warning for each would flood the benchmark's output.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._dynamo")
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    model.eval()
    return (lambda x: x), _compiled(lambda x: model(x, mode=mode, backend="torch").logits)


def export_onnx(model: CondNet) -> bytes:
    """The dense net as an ONNX model (torch.onnx's exporter), its batch dimension dynamic."""
    net = as_sequential(model)
    example = torch.zeros(2, model.config.n_features)
    try:
        import onnxscript  # noqa: F401 - the exporter needs it; a missing one is a clear note
    except ImportError:
        raise ProviderUnavailable("onnxscript is not installed (pip install onnxscript onnx)") from None
    # The exporter logs a warning per torchvision op it cannot register and prints its progress: noise
    # in a benchmark's output, not news about this net.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [log.level for log in quiet]
    try:
        for log in quiet:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), dynamo=True, verbose=False,
                                        input_names=["x"], output_names=["logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        return program.model_proto.SerializeToString()
    except Exception as exc:  # noqa: BLE001 - any exporter failure is this provider's note
        raise ProviderUnavailable(f"ONNX export failed: {_first_line(exc)}") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)


def onnx_session(onnx_model: bytes, threads: int):
    """An ONNX Runtime session on the CPU execution provider with `threads` intra-op threads, as a user
    would configure it to match the rest of the run (its other options at their defaults)."""
    try:
        import onnxruntime
    except ImportError:
        raise ProviderUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _onnxruntime(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    as_sequential(model)  # a CondNet is refused before anything is exported
    weight = next(model.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        raise ProviderUnavailable(f"ONNX Runtime runs here on its CPU execution provider in float32; this model "
                                  f"runs on {weight.device.type} in {str(weight.dtype).removeprefix('torch.')}")
    session = onnx_session(export_onnx(model), threads)
    name = session.get_inputs()[0].name
    return (lambda x: {name: x.detach().contiguous().numpy()}), (lambda feed: session.run(None, feed)[0])


def _cuda_graph(model: CondNet, mode: str, threads: int) -> tuple[Prepare, RunBatch]:
    """The nn.Sequential captured in a CUDA graph per input shape and replayed: the dense net as a user
    serves it at small batches on a GPU, without a launch per layer from Python."""
    net = as_sequential(model)  # a CondNet is refused: its masks need the host between layers
    weight = next(model.parameters())
    if weight.device.type != "cuda":
        raise ProviderUnavailable(f"CUDA graphs replay work captured on a CUDA device; this model runs on "
                                  f"{weight.device.type}")
    graphs: dict[tuple, tuple] = {}  # input shape -> (graph, its input, its output)

    def prepare(x: torch.Tensor):
        key = (tuple(x.shape), x.dtype)
        if key not in graphs:
            try:
                graphs[key] = _capture(net, x)
            except RuntimeError as exc:
                raise ProviderUnavailable(f"CUDA graph capture failed: {_first_line(exc)}") from None
        return graphs[key], x

    def run(prepared):
        (graph, static_in, static_out), x = prepared
        static_in.copy_(x)
        graph.replay()
        return static_out

    return prepare, run


def _capture(net: nn.Module, x: torch.Tensor) -> tuple:
    static_in = x.clone()
    # Warmed up on a side stream first, as capture requires (the allocator and cuBLAS set up outside it).
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            net(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = net(static_in)
    return graph, static_in, static_out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


register(ModelProvider("ours", "condbench's inference (the CondNet's kernels; the fused native call where it applies)", _ours))
register(ModelProvider("torch", "the same weights as a plain torch nn.Sequential", _torch))
# ONNX Runtime runs with its defaults, as users ship it, spinning worker threads included; they spin on
# for tens of milliseconds after a call, and the candidate timed next ran up to 2.5x slower (20 ms after:
# still 1.4-2x; 0.5 s after: as alone). Hence the pause after its samples
# (results/ab/model-crosstalk-20261203).
register(ModelProvider("onnxruntime", "exported to ONNX, ONNX Runtime's CPU execution provider, the suite's threads",
                       _onnxruntime, settle_s=0.5))
register(ModelProvider("torch_compile", "the nn.Sequential under torch.compile (inductor)", _torch_compile))
# For dense nets on a GPU (suites/gpu.yaml): at small batches eager launches dominate, and a user
# serving there captures the net in a CUDA graph. Not in the default suite, whose models run on the CPU.
register(ModelProvider("cuda_graph", "the nn.Sequential captured in a CUDA graph per batch size, replayed (CUDA only)",
                       _cuda_graph))
# Not in the default suite: it added 20 s of compiling for four models, and ran the CondNets 2.7-10x
# slower than condbench's own forward (results/ab/condnet-compile-20261203).
register(ModelProvider("ours_compiled", "condbench's forward (torch kernels) under torch.compile: CondNets too",
                       _ours_compiled))
