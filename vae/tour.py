"""The guided tour: the lecture's argument in fifteen steps, each one doing something in the live app.

A step names the page it shows, what the teacher says, the element to point at (a Streamlit key: the page draws
it with `key=`, the browser gives it the class `st-key-<key>`), the widget values it sets, and the run it starts.
The UI (pages/_tour.py) applies a step whatever was clicked before, so Next always shows what the text says.
No Streamlit here: a test walks these steps in a browser and checks `shows` on each page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What a step does besides setting widgets."""

    NONE = "none"
    TRAIN = "train"  # start a run of the bundled digits settings, unless one is already training
    RACE = "race"  # start the estimator race (pathwise against the score function)
    STEP = "step"  # one SGD step of a paused run, so the lecture shows that minibatch's numbers


@dataclass(frozen=True)
class TourStep:
    title: str
    say: str  # one or two sentences for the teacher
    page: str  # the file under pages/
    point_at: str  # the key of the element to highlight
    settings: dict[str, Any] = field(default_factory=dict)  # widget key -> value, set before the page draws
    action: Action = Action.NONE
    shows: str = ""  # a regular expression the page's text matches once the step has happened (tests read it)


TOUR: tuple[TourStep, ...] = (
    TourStep("The ELBO and its two terms",
             "We train by maximising a lower bound on log p(x): reconstruct x from z, and pay in KL for how far "
             "q(z|x) strays from the prior.",
             "pages/lecture.py", "lecture_elbo", shows=r"evidence lower bound"),
    TourStep("Both terms, live",
             "A VAE on the bundled digits starts training now. Watch the ELBO climb while reconstruction rises "
             "and the KL term grows to pay for it.",
             "pages/train.py", "train_live", {"train:preset": "digits"}, Action.TRAIN,
             shows=r"Running|Queued|Finished"),
    TourStep("Why ∇φ cannot go inside",
             "Before the trick, z is sampled from q_φ(z|x): the gradient reaches z but has no path back through "
             "the sampling step to μ, σ and φ.",
             "pages/reparameterization.py", "reparam:graph", {"reparam:graph": "Before the trick"},
             shows=r"cannot pass the sampling step"),
    TourStep("The trick: z = μ + σ·ε",
             "Draw ε from a fixed N(0, 1) and compute z from it. Now z is a differentiable function of μ and σ, "
             "and the gradient reaches φ.",
             "pages/reparameterization.py", "reparam:graph", {"reparam:graph": "After the trick"},
             shows=r"the gradient reaches φ through μ and σ"),
    TourStep("ε against z",
             "The noise slider moved to ε = 1.5: the same ε always gives the same z, shifted by μ and stretched "
             "by σ. Drag it yourself.",
             "pages/reparameterization.py", "reparam_transform",
             {"reparam:family": "gaussian", "reparam:gaussian:noise": 1.5}, shows=r"1\.50"),
    TourStep("Families beyond the Gaussian",
             "Any family with a location and a scale works the same way; here the Laplace. Others go through "
             "their inverse CDF: z = F⁻¹(u) with u uniform.",
             "pages/reparameterization.py", "reparam:family", {"reparam:family": "laplace"}, shows=r"Laplace"),
    TourStep("No g at all: the Gamma",
             "The Gamma has no formula z = g(α, β, ε), yet torch's rsample still gives dz/dα: differentiate "
             "F(z; α) = u instead, dz/dα = −(∂F/∂α)/(∂F/∂z). The points are torch's, the line the CDF's.",
             "pages/reparameterization.py", "reparam:implicit_gradient",
             {"reparam:implicit": "gamma", "reparam:implicit:gamma:concentration": 0.5},
             shows=r"against the CDF's"),
    TourStep("A category: where the trick breaks",
             "A categorical z is argmax(θ + Gumbel noise): exact, but argmax has no gradient. At temperature "
             "0.3 the softmax relaxation is nearly one-hot and differentiable; slide τ up and it blurs.",
             "pages/reparameterization.py", "reparam:simplex", {"reparam:gumbel:temperature": 0.3},
             shows=r"draws of the same Gumbel noise"),
    TourStep("The variance claim",
             "Many estimates of the same gradient, each from one draw. The pathwise histogram is the narrow one "
             "(variance 4 here, against 15 for the score function); the dashed line is the exact answer.",
             "pages/estimators.py", "estimators:histogram",
             {"estimators:cost": "(z-k)^2", "estimators:mu": 1.0, "estimators:sigma": 1.0, "estimators:K": 1},
             shows=r"score function, sd"),
    TourStep("Where the claim fails",
             "With a step function f' is zero almost everywhere: the pathwise estimator returns 0 every time and "
             "is biased, while the score function still finds the gradient.",
             "pages/estimators.py", "estimators:cost", {"estimators:cost": "1[z>k]"}, shows=r"biased"),
    TourStep("The race inside a real VAE",
             "Two copies of the same VAE from the same weights; only the encoder's gradient estimator differs. "
             "The pathwise copy's ELBO climbs faster, and its gradient noise is far lower.",
             "pages/estimators.py", "estimators_race", action=Action.RACE, shows=r"(Running|Queued|Finished)"),
    TourStep("Three ways through a category",
             "With a discrete z the exact gradient is a sum over the categories, so bias is measured, not guessed: "
             "the score function is unbiased (its hatched bar is noise), the Gumbel-softmax buys a smaller spread "
             "with a bias, and straight-through is biased too.",
             "pages/estimators.py", "estimators:discrete_quality", shows=r"by enumerating"),
    TourStep("Walking the latent space",
             "The sliders moved to z = (1.5, −1): the decoder turns any point into an image. Drag them, or click "
             "a digit on the map to jump to its μ(x).",
             "pages/latent.py", "latent_explorer",
             {"latent:model": "digits-2d", "latent:slider:0": 1.5, "latent:slider:1": -1.0}, shows=r"1\.50"),
    TourStep("The SGD loop, one minibatch",
             "One step of the live run went through the loop: these are that minibatch's ε, μ, σ, z, the two ELBO "
             "terms and the gradient norms. Press Step for the next one.",
             "pages/lecture.py", "lecture_loop", action=Action.STEP, shows=r"[Gg]radient"),
    TourStep("The graph before the trick, with numbers",
             "The same minibatch on the graph before the trick: every node has its value, but μ, σ and φ have no "
             "gradient. After the trick they do.",
             "pages/lecture.py", "lecture_graph", {"lecture:graph": "Before the trick"}, Action.STEP,
             shows=r"no gradient"),
)


def step_from_text(text: str | None) -> int | None:
    """`?tour=3` -> 3; None for anything that is not a step number of the tour."""
    if text is None or not re.fullmatch(r"\d{1,3}", text.strip()):
        return None
    number = int(text)
    return number if 1 <= number <= len(TOUR) else None


def css_class(key: str) -> str:
    """The class the browser gives the element drawn with `key=` (Streamlit's own rule)."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())
