"""Training throughput of the "pytorch-examples-mnist" preset (784-400-20, Bernoulli, Adam 1e-3, batch 128).

Measures steps per second of
  1. the library: `vae.job.TrainingJob` running in its own thread, the whole training set one tensor on the
     device and each minibatch an index slice; timed from outside, from resume() until the job is seen
     paused again, with the exact step count it then publishes, so the job's own bookkeeping (metric
     flushes, good-weight copies) is part of what is measured;
  2. the peer: a loop written like pytorch/examples' VAE `main.py`: `torchvision.datasets.MNIST` with
     `transforms.ToTensor()` (reproduced here with Pillow and numpy, per sample: uint8 -> PIL image ->
     float tensor / 255 of shape (1, 28, 28)) behind `DataLoader(batch_size=128, shuffle=True)`, and the
     example's model, loss (BCE sum + KLD) and Adam step unchanged, `loss.item()` every step included;
  3. the matmul limit: the step's matmuls alone through autograd at the preset's shapes, with nothing else (no
     loss, optimiser, data or metrics): what any training loop with these shapes can reach on this machine.
Each runs with the same number of torch threads in a process of its own (as a person runs either), each gets a
warm-up, and they take turns in rounds so none is favoured by the machine's state; the figures are the medians
over rounds of the ratios within a round (robust to other programs). One process for all would be unfair: each
thread that runs torch ops keeps its own OpenMP team, and once a process holds more OpenMP threads than there are
cores, GNU OpenMP stops spinning between parallel regions and every op pays a wake-up (measured: the library
180 -> 100 steps/s, the peer 75 -> 52). With --steps above ~430 the library's rounds include its end-of-epoch
held-out evaluation (469 steps per epoch), as the example's test() does after each epoch. For scale, it also
prints the float32 matmul peak of large square matrices and the fraction of it each reaches (128-row matrices run
well below that peak, so the matmuls alone reach only 50-70% of it); --profile adds where a step's time goes.

Data: real MNIST when IDX files are found (`--data DIR`, else `vae.data.default_data_dir()/mnist`); with only
the 10k test images, they are repeated to 60000 training images so an epoch is as long as MNIST's. Nothing is
ever downloaded: with no files, random uint8 images of MNIST's shape are used, and the report says so.

    python bench/train_throughput.py --data /path/to/mnist-idx-folder [--steps 300] [--threads 2] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._figures import emit, median_figure
from vae.config import preset_config
from vae.data import Dataset, default_data_dir, read_idx
from vae.job import JobSnapshot, JobStatus, TrainingJob, resolve_device

PRESET = "pytorch-examples-mnist"
LOOPS = ("library", "peer", "matmuls")  # what measure() times, each in a process of its own
MNIST_TRAIN_SIZE = 60000


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Images:
    """uint8 images (N, 28, 28) and labels for training, float32 held-out images, and where they came from."""

    train: np.ndarray
    labels: np.ndarray
    test: np.ndarray
    source: str


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_images(data_dir: Path | None) -> Images:
    """MNIST from IDX files in `data_dir` (or the library's cache folder), else random pixels."""
    folder = data_dir if data_dir is not None else default_data_dir() / "mnist"
    train_path = _find_idx(folder, "train-images-idx3-ubyte")
    test_path = _find_idx(folder, "t10k-images-idx3-ubyte")
    labels_path = _find_idx(folder, "train-labels-idx1-ubyte" if train_path else "t10k-labels-idx1-ubyte")
    if test_path is None and train_path is None:
        rng = np.random.default_rng(0)
        train = rng.integers(0, 256, (MNIST_TRAIN_SIZE, 28, 28), dtype=np.uint8)
        source = f"RANDOM uint8 pixels {train.shape} (no MNIST IDX files in {folder})"
        return Images(train, np.zeros(len(train), np.int64), train[:10000], source)
    test = read_idx(test_path or train_path)
    train = read_idx(train_path) if train_path else test
    labels = read_idx(labels_path).astype(np.int64) if labels_path else np.zeros(len(train), np.int64)
    source = f"MNIST {train_path.name if train_path else test_path.name} from {folder}"
    if len(train) < MNIST_TRAIN_SIZE:  # only the test file: repeat it to a full-length epoch
        repeats = -(-MNIST_TRAIN_SIZE // len(train))
        train = np.tile(train, (repeats, 1, 1))[:MNIST_TRAIN_SIZE]
        labels = np.tile(labels, repeats)[:MNIST_TRAIN_SIZE]
        source += f", repeated to {MNIST_TRAIN_SIZE} images"
    return Images(train, labels, test, source)


def library_dataset(images: Images) -> Dataset:
    """What `vae.data` returns for MNIST: flattened float32 in [0, 1]."""

    def flat(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32) / np.float32(255.0)

    return Dataset("mnist", flat(images.train), flat(images.test), images.labels, None, (28, 28))


# ---------------------------------------------------------------------------------------------
# The peer: pytorch/examples' VAE main.py


class MNISTLike(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST(transform=transforms.ToTensor()), per sample, as torchvision does it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = torch.from_numpy(images)  # uint8 (N, 28, 28), as MNIST stores it
        self.targets = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], int(self.targets[index])
        pic = Image.fromarray(img.numpy(), mode="L")
        return self.to_tensor(pic), target

    @staticmethod
    def to_tensor(pic: Image.Image) -> torch.Tensor:
        """transforms.functional.to_tensor for a mode-"L" PIL image."""
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)


class ExampleVAE(nn.Module):
    """pytorch/examples vae/main.py's model, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def example_loss(recon_x: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


class PeerLoop:
    """The example's train() loop, resumable: `run(n)` takes n optimiser steps and returns the seconds taken."""

    def __init__(self, images: Images, device: torch.device, batch_size: int, lr: float) -> None:
        self.device = device
        # The example: {'num_workers': 1, 'pin_memory': True} with CUDA, nothing extra on the CPU.
        kwargs = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
        loader = torch.utils.data.DataLoader(
            MNISTLike(images.train, images.labels), batch_size=batch_size, shuffle=True, **kwargs
        )
        self.batches = self._forever(loader)
        self.model = ExampleVAE().to(device)
        self.optimizer = optim.Adam(self.model.parameters(), lr=lr)
        self.train_loss = 0.0

    @staticmethod
    def _forever(loader: torch.utils.data.DataLoader) -> Iterator[torch.Tensor]:
        """Batches across epochs: a new shuffled pass (and, with workers, new workers) at each epoch's end."""
        while True:
            for data, _ in loader:
                yield data

    def warm_up(self, steps: int) -> None:
        self.run(steps)

    def run(self, steps: int) -> tuple[int, float]:
        """(steps taken, seconds)."""
        self.model.train()
        _synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            data = next(self.batches).to(self.device)
            self.optimizer.zero_grad()
            recon_batch, mu, logvar = self.model(data)
            loss = example_loss(recon_batch, data, mu, logvar)
            loss.backward()
            self.train_loss += loss.item()
            self.optimizer.step()
        _synchronize(self.device)
        return steps, time.perf_counter() - start

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# The library


class LibraryLoop:
    """A TrainingJob driven from outside. `run(steps)` resumes it, sleeps for about that many steps, pauses it and
    counts the steps it took: the step count is exact once the job is paused, and the clock runs from the resume
    command to the pause being seen, so every step's cost and the job's flush at the pause are inside the interval.
    The measuring thread sleeps meanwhile: polling `snapshot()` every few milliseconds would steal a core from
    torch's threads and slow the job down by 10-20% on a 2-core machine."""

    def __init__(self, images: Images, device: torch.device, threads: int) -> None:
        config = preset_config(PRESET).replace(device=device.type, epochs=1000)  # never finishes here
        self.job = TrainingJob(config, library_dataset(images), num_threads=threads, niceness=0)  # as the peer
        self.job.start(paused=True)
        self._wait(lambda s: s.status == JobStatus.PAUSED)
        self.rate = 0.0  # steps/s of the last run, to size the next one

    def _wait(self, predicate: Callable[[JobSnapshot], bool], poll: float = 0.001) -> JobSnapshot:
        snap = self.job.wait_until(lambda s: predicate(s) or not s.is_alive, timeout=120.0, poll=poll)
        if not snap.is_alive:
            raise RuntimeError(f"The training job ended: {snap.status.value}: {snap.message}")
        return snap

    def warm_up(self, steps: int) -> None:
        start = time.perf_counter()
        self.job.resume()
        self._wait(lambda s: s.step >= steps, poll=0.05)
        self.job.pause()
        self.rate = self._wait(lambda s: s.status == JobStatus.PAUSED).step / (time.perf_counter() - start)

    def run(self, steps: int) -> tuple[int, float]:
        """(steps taken, seconds): about `steps`, at the rate of the last run."""
        before = self.job.snapshot().step
        start = time.perf_counter()
        self.job.resume()
        time.sleep(steps / self.rate)
        self.job.pause()
        after = self._wait(lambda s: s.status == JobStatus.PAUSED and s.step > before).step
        seconds = time.perf_counter() - start
        self.rate = (after - before) / seconds
        return after - before, seconds

    def close(self) -> None:
        self.job.stop()
        self.job.join(10.0)


# ---------------------------------------------------------------------------------------------
# The physical limit


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, seconds: float = 1.0) -> float:
    """Best float32 torch.matmul rate over a few square sizes, in GFLOP/s."""
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    best = 0.0
    for n in sizes:
        a, b = (torch.randn(n, n, device=device) for _ in range(2))
        torch.matmul(a, b)  # warm-up
        deadline = time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < deadline:
            _synchronize(device)
            start = time.perf_counter()
            torch.matmul(a, b)
            _synchronize(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_step(batch: int, sizes: tuple[tuple[int, int], ...]) -> float:
    """The matmul FLOPs autograd runs per step: each linear layer's forward (2*B*in*out), its weight gradient
    (the same) and its input gradient (the same again), except the first layer's: nothing asks for the gradient
    with respect to the pixels. 784-400-20 at batch 128: 0.420 GFLOP."""
    forward = [2 * batch * n_in * n_out for n_in, n_out in sizes]
    return 3 * sum(forward) - forward[0]


PRESET_LAYERS = ((784, 400), (400, 20), (400, 20), (20, 400), (400, 784))  # (in, out): encoder, loc, scale, decoder


class MatmulLoop:
    """The preset's matmuls alone, through autograd (encoder, the loc and scale heads, decoder, their backward pass
    with two ReLUs and nothing else: no loss, optimiser, data or metrics): the limit any training loop with these
    shapes has on this machine, measured the way the loops are, a round at a time."""

    def __init__(self, device: torch.device, batch: int, sizes: tuple[tuple[int, int], ...] = PRESET_LAYERS) -> None:
        self.device = device
        self.x = torch.rand(batch, sizes[0][0], device=device)
        self.weights = [torch.randn(n_out, n_in, device=device, requires_grad=True) for n_in, n_out in sizes]

    def step(self) -> None:
        for weight in self.weights:
            weight.grad = None  # as training steps drop theirs: the backward pass then adds nothing up
        encoder, loc_head, scale_head, decoder_in, decoder_out = self.weights
        hidden = torch.relu(self.x @ encoder.T)
        z = hidden @ loc_head.T + hidden @ scale_head.T
        (torch.relu(z @ decoder_in.T) @ decoder_out.T).sum().backward()

    def warm_up(self, steps: int) -> None:
        self.run(steps)

    def run(self, steps: int) -> tuple[int, float]:
        """(steps taken, seconds)."""
        _synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _synchronize(self.device)
        return steps, time.perf_counter() - start

    def close(self) -> None:
        pass


# Where a step's time goes: torch profiler op names -> a part of the step.
STEP_PARTS = {
    "matmuls": ("aten::mm", "aten::addmm", "aten::bmm"),
    "optimiser (Adam, zero_grad)": ("aten::_fused_adam_", "aten::_foreach_add_", "Optimizer.step#Adam.step",
                                    "Optimizer.zero_grad#Adam.zero_grad"),
    "gradient norm": ("aten::linalg_vector_norm", "aten::_foreach_norm"),
}


def step_profile(images: Images, device: torch.device, steps: int = 60) -> list[tuple[str, float]]:
    """(part, ms per step) of `Trainer.step` on the preset, from torch's profiler: matmuls, the optimiser, the
    gradient norm, every other op (the loss's elementwise work, the minibatch's gather, the metrics row), and the
    rest of the wall time (Python, dispatch and autograd's bookkeeping)."""
    from torch.profiler import ProfilerActivity, profile

    from vae.trainer import Trainer

    trainer = Trainer(preset_config(PRESET).replace(device=device.type), library_dataset(images), device)
    for _ in range(10):
        trainer.step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        wall = time.perf_counter() - start
    self_ms = {event.key: event.self_cpu_time_total / 1000 / steps for event in profiler.key_averages()}
    parts = [(part, sum(self_ms.get(name, 0.0) for name in names)) for part, names in STEP_PARTS.items()]
    named = {name for names in STEP_PARTS.values() for name in names}
    autograd = sum(ms for name, ms in self_ms.items() if name.startswith("autograd::") or name.endswith("Backward0"))
    other_ops = sum(ms for name, ms in self_ms.items() if name not in named) - autograd
    parts += [("other ops (loss, gather, metrics)", other_ops), ("autograd's bookkeeping", autograd)]
    parts.append(("Python and dispatch (the rest)", max(0.0, wall * 1000 / steps - sum(ms for _, ms in parts))))
    return parts


# ---------------------------------------------------------------------------------------------
# Driver


@dataclass
class Rates:
    """Steps per second of each timed round."""

    rounds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return float(np.median(self.rounds))


class LoopProcess:
    """One loop in a process of its own (this script with --worker), driven a command at a time: a JSON line in
    on its stdin, a JSON line of (steps, seconds) back on its stdout."""

    def __init__(self, kind: str, args: argparse.Namespace, threads: int) -> None:
        self.kind = kind
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--device", args.device,
                   "--threads", str(threads), *(["--data", args.data] if args.data else [])]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._reply()  # ready: data loaded, model built

    def _reply(self) -> dict[str, float]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"The {self.kind} loop's process ended (exit {self.process.wait()}); see its stderr.")
        return json.loads(line)

    def request(self, action: str, steps: int) -> tuple[int, float]:
        self.process.stdin.write(json.dumps({"action": action, "steps": steps}) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        return int(reply["steps"]), reply["seconds"]

    def close(self) -> None:
        self.process.stdin.close()  # the worker's end of input: it stops its loop and exits
        self.process.wait(timeout=30)


def serve_loop(args: argparse.Namespace) -> None:
    """The --worker side of LoopProcess: build one loop, then warm it up or run it as each line asks."""
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = load_images(Path(args.data) if args.data else None)
    config = preset_config(PRESET)
    if args.worker == "library":
        loop: LibraryLoop | PeerLoop | MatmulLoop = LibraryLoop(images, device, args.threads)
    elif args.worker == "peer":
        loop = PeerLoop(images, device, config.batch_size, config.lr)
    else:
        loop = MatmulLoop(device, config.batch_size)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["action"] == "warm_up":
                loop.warm_up(command["steps"])
                steps, seconds = command["steps"], 0.0
            else:
                steps, seconds = loop.run(command["steps"])
            print(json.dumps({"steps": steps, "seconds": seconds}), flush=True)
    finally:
        loop.close()


def measure(args: argparse.Namespace, threads: int) -> dict[str, Rates]:
    """Warm every loop up, then run them one after another (in turn forwards and backwards) for `rounds` rounds of
    about steps / rounds steps each. Other programs on a shared machine hit single rounds: report medians."""
    loops = {kind: LoopProcess(kind, args, threads) for kind in LOOPS}
    rates = {kind: Rates() for kind in loops}
    try:
        for loop in loops.values():
            loop.request("warm_up", args.warmup)
        per_round = max(10, args.steps // args.rounds)
        for index in range(args.rounds):
            for kind in LOOPS if index % 2 == 0 else LOOPS[::-1]:
                steps, seconds = loops[kind].request("run", per_round)
                rates[kind].rounds.append(steps / seconds)
    finally:
        for loop in loops.values():
            loop.close()
    return rates


def report(args: argparse.Namespace) -> dict[str, object]:
    device = resolve_device(args.device)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)  # for the matmul peak; each loop sets the same in its process
    rates = measure(args, threads)  # before this process runs any torch op of its own
    images = load_images(Path(args.data) if args.data else None)
    library, peer, matmuls = (rates[kind].median for kind in LOOPS)
    peak = matmul_peak_gflops(device)
    flops = flops_per_step(preset_config(PRESET).batch_size, PRESET_LAYERS)
    square_limit = peak * 1e9 / flops
    return {
        "device": str(device),
        "threads": threads,
        "data": images.source,
        **{f"{kind}_steps_per_s": rates[kind].median for kind in LOOPS},
        **{f"{kind}_rounds": rates[kind].rounds for kind in LOOPS},
        "ratio_library_to_peer": library / peer,
        "library_fraction_of_matmuls": library / matmuls,
        "peer_fraction_of_matmuls": peer / matmuls,
        "matmul_peak_gflops": peak,
        "gflop_per_step": flops / 1e9,
        "square_peak_steps_per_s": square_limit,
        "library_fraction_of_square_peak": library / square_limit,
        "matmuls_fraction_of_square_peak": matmuls / square_limit,
        "step_profile_ms": step_profile(images, device) if args.profile else None,
    }


def print_report(r: dict[str, object]) -> None:
    print(f"Training throughput, preset {PRESET} (784-400-20, batch 128, Adam 1e-3)")
    print(f"  device {r['device']}, {r['threads']} torch thread(s), each loop in a process of its own")
    print(f"  data: {r['data']}")
    for kind, label in (("library", "library (TrainingJob, index slices)"), ("peer", "peer (DataLoader + ToTensor)"),
                        ("matmuls", "the step's matmuls alone (autograd)")):
        rounds = r[f"{kind}_rounds"]
        print(f"  {label:36s} {r[f'{kind}_steps_per_s']:6.1f} steps/s "
              f"(median of {len(rounds)} rounds, {min(rounds):.0f}-{max(rounds):.0f})")
    print(f"  ratio library / peer: {r['ratio_library_to_peer']:.2f}x")
    print(f"  fraction of the matmul limit (the step's matmuls alone): library {r['library_fraction_of_matmuls']:.1%}, "
          f"peer {r['peer_fraction_of_matmuls']:.1%}")
    print(f"  float32 matmul peak (square 1024-2048): {r['matmul_peak_gflops']:.1f} GFLOP/s; at "
          f"{r['gflop_per_step']:.3f} GFLOP a step (forward, weight and input gradients of each layer, less the "
          f"pixels' gradient) that is {r['square_peak_steps_per_s']:.0f} steps/s, of which the library reaches "
          f"{r['library_fraction_of_square_peak']:.1%} and the step's matmuls alone "
          f"{r['matmuls_fraction_of_square_peak']:.1%} (128-row matrices run below the square peak)")
    if r["step_profile_ms"]:
        total = sum(ms for _, ms in r["step_profile_ms"])
        print(f"  where a library step's {total:.2f} ms go (torch profiler, which adds its own overhead):")
        for part, ms in r["step_profile_ms"]:
            print(f"    {part:36s} {ms:6.2f} ms  {ms / total:5.1%}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with MNIST IDX files (default: the library's cache folder)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per loop (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps per loop first (default 30)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two loops (default 5)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also print where a step's time goes")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--worker", choices=LOOPS, help=argparse.SUPPRESS)  # one loop, for measure()
    args = parser.parse_args(argv)
    if args.steps < 10 or args.rounds < 1 or args.warmup < 1:
        parser.error("--steps must be at least 10, --rounds and --warmup at least 1.")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU is available here; use --device cpu or auto.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        serve_loop(args)
        return
    result = report(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    library = result["library_rounds"]
    ratios = [lib / peer for lib, peer in zip(library, result["peer_rounds"], strict=True)]
    fractions = [lib / matmuls for lib, matmuls in zip(library, result["matmuls_rounds"], strict=True)]
    emit([median_figure("training: library / pytorch-examples loop (steps/s)", ratios, "x", 2.5, True),
          median_figure("training: library / the step's matmuls alone (steps/s)", fractions, "fraction", 0.60, True)])

if __name__ == "__main__":
    main()
