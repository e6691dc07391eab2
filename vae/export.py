"""What a student takes home from a run: its metrics as CSV, and a standalone PyTorch script that trains it again.

`metrics_csv(snapshot)` is one table, so a spreadsheet opens it in one sheet: a `kind` column says which chart a
row belongs to, and both kinds share `step` and `epoch`, so a filter on `kind` gives either table and one scatter
plot of ELBO against step shows both curves.

    kind      step  epoch  elbo  reconstruction  kl  grad_norm
    train        1      1   ...            ...  ...        ...   one SGD step, on its minibatch (left chart)
    held_out    23      1   ...            ...  ...             after an epoch, on the held-out data (right chart)

Train rows come first, then held-out rows; a held-out row's step is the last step of its epoch. The values are
nats per example, written in full (Python's shortest exact form).

`standalone_script(config)` writes the run as one file that needs only torch, numpy and (for the bundled digits)
scikit-learn, in the order of a lecture: settings, data, model, loss, loop, evaluation. It draws its random numbers
exactly as `vae.trainer.Trainer` does (same split, initialisation, batch order and noise, in the same order), so on
the same machine it prints the held-out ELBO terms the Train page plots, to every digit. Configurations it cannot
write are refused with a sentence (`ConfigError`): see `script_refusal`.
"""

from __future__ import annotations

import csv
import io
import math
from string import Template

from vae.config import (
    ConfigError,
    Device,
    EncoderGradient,
    Likelihood,
    PosteriorFamily,
    TrainConfig,
)
from vae.data import DISPLAY_NAMES, IDX_FILES, MIRRORS
from vae.metrics import TRAIN_METRICS, JobSnapshot

CSV_COLUMNS = ("kind", "step", "epoch", *TRAIN_METRICS)


def metrics_csv(snapshot: JobSnapshot) -> str:
    """The run's per-step training metrics and per-epoch held-out metrics as one CSV table (see the module's doc)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, restval="", lineterminator="\n")  # restval: a held-out row's gradient
    writer.writeheader()
    writer.writerows(_train_rows(snapshot))
    writer.writerows(_held_out_rows(snapshot))
    return out.getvalue()


def _train_rows(snapshot: JobSnapshot) -> list[dict]:
    columns = {name: snapshot.train[name].tolist() for name in ("step", *TRAIN_METRICS)}  # Python floats: exact text
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return [{"kind": "train", "epoch": math.ceil(row["step"] / snapshot.steps_per_epoch), **row} for row in rows]


def _held_out_rows(snapshot: JobSnapshot) -> list[dict]:
    return [{"kind": "held_out", "step": m.epoch * snapshot.steps_per_epoch, **vars(m)} for m in snapshot.held_out]


# ---------------------------------------------------------------------------------------------------------------
# The standalone script


def script_refusal(config: TrainConfig) -> str | None:
    """Why `standalone_script` cannot write this configuration, as a sentence; None when it can."""
    if config.model.posterior != PosteriorFamily.GAUSSIAN:
        return (f"The standalone script trains a Gaussian posterior only, not {config.model.posterior.value}: "
                "its point is the one line z = μ + σ·ε.")
    if config.encoder_gradient != EncoderGradient.PATHWISE:
        return "The standalone script trains with the reparameterization trick only, not the score-function estimator."
    if config.kl_cycles > 0 or config.free_bits > 0:
        return ("The standalone script trains the plain ELBO (with a KL warm-up at most), not cyclical annealing "
                "or free bits.")
    if config.dataset != "digits" and config.dataset not in MIRRORS:
        return (f"The standalone script knows the bundled digits, MNIST and Fashion-MNIST, not {config.dataset!r}: "
                "it cannot carry your own file.")
    return None


def standalone_script(config: TrainConfig) -> str:
    """A runnable PyTorch file that trains `config` from scratch and prints the held-out ELBO terms per epoch, the
    same numbers as this library's `Trainer`. `ConfigError` with a sentence for what it cannot write."""
    refusal = script_refusal(config)
    if refusal:
        raise ConfigError(refusal)
    config.validate()
    return _SCRIPT.substitute(_script_parts(config))


def _script_parts(config: TrainConfig) -> dict[str, str]:
    """What `_SCRIPT` leaves open, filled for `config`: only the code this run needs is written."""
    model = config.model
    settings = {"seed": str(config.seed), "epochs": str(config.epochs), "batch_size": str(config.batch_size),
                "lr": repr(config.lr), "beta": repr(config.beta), "hidden_sizes": repr(list(model.hidden_sizes)),
                "latent_dim": str(model.latent_dim), "device": _DEVICES[config.device]}
    return {"title": _title(config), "imports": _imports(config), **settings, **_data_parts(config),
            **_likelihood_parts(config), **_warmup_parts(config)}


def _data_parts(config: TrainConfig) -> dict[str, str]:
    if config.dataset == "digits":
        return {"requirements": "torch, numpy and scikit-learn", "data": _DIGITS_DATA}
    return {"requirements": "torch and numpy", "data": _idx_data(config)}


def _likelihood_parts(config: TrainConfig) -> dict[str, str]:
    if config.model.likelihood == Likelihood.GAUSSIAN:
        return {"decoder_output": "pixel means (before a sigmoid)", "pixel_noise": _GAUSSIAN_NOISE_PARAMETER,
                "reconstruction": _GAUSSIAN_RECONSTRUCTION}
    return {"decoder_output": "pixel logits", "pixel_noise": "", "reconstruction": _BERNOULLI_RECONSTRUCTION}


def _warmup_parts(config: TrainConfig) -> dict[str, str]:
    """A run without KL warm-up gets none of its code."""
    if config.kl_warmup_epochs <= 0:
        return {"warmup_setting": "", "warmup_function": "", "kl_weight": "", "loss_beta": "beta"}
    setting = f"kl_warmup_epochs = {config.kl_warmup_epochs!r}  # beta ramps up linearly from 0 over this many epochs\n"
    return {"warmup_setting": setting, "warmup_function": _WARMUP_BETA, "kl_weight": _WARMUP_WEIGHT,
            "loss_beta": "kl_weight"}


def _title(config: TrainConfig) -> str:
    data = "the bundled 8x8 digits" if config.dataset == "digits" else DISPLAY_NAMES[config.dataset]
    model = config.model
    return (f'A VAE on {data}, trained from scratch as reparam-lab trains its run "{config.preset.value}":\n'
            f"{_LIKELIHOOD_NAMES[model.likelihood]} pixels, {model.latent_dim} latent dimensions, "
            f"{config.epochs} epochs.")


def _imports(config: TrainConfig) -> str:
    """Sorted as isort sorts them: the standard library, then the others."""
    standard = ["import math"]
    others = ["import numpy as np", "import torch"]
    if config.model.likelihood == Likelihood.BERNOULLI:
        others.append("import torch.nn.functional as F")
    if config.dataset == "digits":
        others.append("from sklearn.datasets import load_digits")
    else:
        standard = ["import gzip", "import math", "import urllib.request", "from pathlib import Path"]
    return "\n".join(standard) + "\n\n" + "\n".join([*others, "from torch import nn"])


def _idx_data(config: TrainConfig) -> str:
    mirrors = "".join(f'    "{url}",\n' for url in MIRRORS[config.dataset])
    return _IDX_DATA.substitute(name=config.dataset, mirrors=mirrors,
                                pixels=config.model.input_dim, train=IDX_FILES["train_images"],
                                test=IDX_FILES["test_images"])


_LIKELIHOOD_NAMES = {Likelihood.BERNOULLI: "Bernoulli", Likelihood.GAUSSIAN: "Gaussian"}
_DEVICES = {
    Device.AUTO: 'torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the GPU when there is one',
    Device.CPU: 'torch.device("cpu")',
    Device.CUDA: 'torch.device("cuda")',
}

_DIGITS_DATA = '''\
# 1797 images of 8x8 pixels, scaled from 0..16 to [0, 1]; the same 80/20 split as the app's, whatever the seed
x = (load_digits().data / 16.0).astype(np.float32)  # (1797, 64)
order = np.random.default_rng(0).permutation(len(x))
n_test = round(0.2 * len(x))
x_test = torch.as_tensor(x[order[:n_test]], device=device)  # (359, 64)
x_train = torch.as_tensor(x[order[n_test:]], device=device)  # (1438, 64)
'''

_IDX_DATA = Template('''\
# The standard training and test images (labels are not needed), downloaded once into ./data/$name
MIRRORS = (
$mirrors)


def download(path):
    """From the first mirror that answers (the hosts come and go); a failed download leaves no file behind."""
    for mirror in MIRRORS:
        try:
            data = urllib.request.urlopen(mirror + path.name, timeout=60).read()
        except OSError as error:
            print(f"{mirror}: {error}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    raise SystemExit(f"Could not download {path.name} from any mirror.")


def idx_images(file_name):
    """Images of an IDX file (16 header bytes, then one byte per pixel) as (N, H*W) floats in [0, 1]."""
    path = Path("data", "$name", file_name)
    if not path.exists():
        download(path)
    pixels = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=16).reshape(-1, $pixels)
    return torch.as_tensor(pixels.astype(np.float32) / 255.0, device=device)


x_train = idx_images("$train")  # (60000, $pixels)
x_test = idx_images("$test")  # (10000, $pixels)
''')

_GAUSSIAN_NOISE_PARAMETER = '''\
        self.log_sigma_x = nn.Parameter(torch.zeros(()))  # log of one learned pixel noise level
'''

_BERNOULLI_RECONSTRUCTION = '''\
    # log p(x|z) of Bernoulli pixels is minus the binary cross-entropy, summed over the D pixels (grey x works too)
    reconstruction = -F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none").sum(-1)  # (B,)
'''

_GAUSSIAN_RECONSTRUCTION = '''\
    # log N(x; mean, σ_x²) of each pixel, summed over the D pixels
    mean = torch.sigmoid(model.decoder(z))  # (B, D)
    sigma_x = model.log_sigma_x.exp().expand_as(mean)  # one σ_x for every pixel
    log_density = -((x - mean) ** 2) / (2 * sigma_x**2) - sigma_x.log() - math.log(math.sqrt(2 * math.pi))
    reconstruction = log_density.sum(-1)  # (B,)
'''

_WARMUP_BETA = '''

def beta_at(step):
    """KL warm-up: the KL weight ramps linearly from 0 to beta over kl_warmup_epochs, then stays."""
    warmup_steps = kl_warmup_epochs * steps_per_epoch
    return beta * min(1.0, step / warmup_steps)
'''

_WARMUP_WEIGHT = """\
        kl_weight = beta_at((epoch - 1) * steps_per_epoch + i)  # after the steps taken so far
"""

_SCRIPT = Template('''\
"""$title

A standalone script written by reparam-lab: it needs only $requirements. It draws every random
number as the app does (the data split, the initial weights, the order of the minibatches and the noise ε), so on
the same machine it prints the held-out ELBO terms the app's Train page plots, to every digit.

    python train_vae.py
"""

$imports

# ---------------------------------------------------------------------------------------------------------------
# Settings: those of the run in the app
seed = $seed
epochs = $epochs
batch_size = $batch_size
lr = $lr  # Adam's learning rate
beta = $beta  # the KL term's weight: 1 is the ELBO
${warmup_setting}\
hidden_sizes = $hidden_sizes  # the encoder's hidden layers; the decoder's are these reversed
latent_dim = $latent_dim  # K, the size of z
device = $device
torch.set_num_threads(1)  # as the app's Train page trains: one thread, so every sum adds up in the same order

# ---------------------------------------------------------------------------------------------------------------
# Data: every image flattened to D pixels in [0, 1]; all of it lives on the device, a minibatch is an index slice
${data}\
steps_per_epoch = math.ceil(len(x_train) / batch_size)

# ---------------------------------------------------------------------------------------------------------------
# Model: an MLP encoder x -> (μ, log σ²) of q(z|x) = N(μ, σ²), and an MLP decoder z -> $decoder_output


def mlp(sizes):
    """Linear layers of the given widths with a ReLU between two of them."""
    layers = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class VAE(nn.Module):
    def __init__(self, input_dim):
        super().__init__()
        self.encoder = nn.Sequential(mlp([input_dim, *hidden_sizes]), nn.ReLU())
        self.to_mu = nn.Linear(hidden_sizes[-1], latent_dim)
        self.to_log_var = nn.Linear(hidden_sizes[-1], latent_dim)  # log σ², so σ = exp(log σ² / 2) > 0
        self.decoder = mlp([latent_dim, *reversed(hidden_sizes), input_dim])
${pixel_noise}\


torch.manual_seed(seed)  # nn.Linear draws its initial weights from torch's global generator, in this order
model = VAE(x_train.shape[1]).to(device)

# ---------------------------------------------------------------------------------------------------------------
# Loss: the ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), term by term, in nats per example


def elbo_terms(x, generator):
    """One draw z ~ q(z|x) per example of x (B, D): the reconstruction term and the KL, each (B,)."""
    hidden = model.encoder(x)
    mu = model.to_mu(hidden)  # (B, K)
    sigma = torch.exp(0.5 * model.to_log_var(hidden))  # (B, K)
    eps = torch.randn(mu.shape, generator=generator, device=device)  # the noise, which holds no parameter
    z = mu + sigma * eps  # the reparameterization trick: z is a differentiable function of μ and σ
${reconstruction}\
    # KL(N(μ, σ²) || N(0, 1)) in closed form, summed over the K latents
    kl = 0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2)).sum(-1)  # (B,)
    return reconstruction, kl
$warmup_function

@torch.no_grad()
def evaluate(epoch):
    """The held-out ELBO terms with the same noise every epoch: the numbers move only because the model does."""
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    totals = torch.zeros(3, device=device)
    for x in torch.split(x_test, 1024):
        reconstruction, kl = elbo_terms(x, generator)
        totals += torch.stack([(reconstruction - kl).sum(), reconstruction.sum(), kl.sum()])
    elbo, reconstruction, kl = (totals / len(x_test)).tolist()
    # 9 significant digits write a float32 exactly, to compare with the app
    print(f"epoch {epoch}: held-out ELBO {elbo:.9g} = reconstruction {reconstruction:.9g} - KL {kl:.9g}")


# ---------------------------------------------------------------------------------------------------------------
# The loop: minibatch SGD with Adam on -ELBO; one generator draws the minibatch order and then the noise
generator = torch.Generator(device=device).manual_seed(seed)
optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # fused: one kernel for all the weights
for epoch in range(1, epochs + 1):
    order = torch.randperm(len(x_train), generator=generator, device=device)  # a fresh shuffle each epoch
    for i in range(steps_per_epoch):
        x = x_train[order[i * batch_size : (i + 1) * batch_size]]  # (B, D)
        reconstruction, kl = elbo_terms(x, generator)
${kl_weight}\
        loss = -(reconstruction - $loss_beta * kl).mean()  # minimise -ELBO, averaged over the minibatch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the gradient reaches the encoder through z = μ + σ·ε
        optimizer.step()
    evaluate(epoch)
''')
