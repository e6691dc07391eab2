"""What one recorded SGD step says it did, held against the step itself; and the Lecture page's Step, which shows it."""

import copy
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from scipy import stats

from pages._session import JOB_KEY
from tests.conftest import open_app_page
from vae.config import POSTERIOR_FAMILIES, TrainConfig
from vae.families import FAMILIES, posterior_family, posterior_params
from vae.graphs import NO_GRADIENT, computation_graph, to_svg
from vae.job import JobStatus, TrainingJob
from vae.metrics import TRAIN_METRICS
from vae.step_inspection import LOOP_LINES, graph_numbers, latent_table, loop_position, parameter_groups
from vae.trainer import Trainer

SVG = "{http://www.w3.org/2000/svg}"


def config_for(small_config: TrainConfig, family: str) -> TrainConfig:
    return small_config.replace(posterior=family)


def recorded(config: TrainConfig, dataset, steps: int = 3):
    """A trainer after `steps` steps, the last one recorded, and copies of its model just before and after it."""
    trainer = Trainer(config, dataset)
    for _ in range(steps - 1):
        trainer.step()
    before = copy.deepcopy(trainer.model)
    trainer.step(record=True)
    return trainer, before, trainer.last_record


def weight_distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(a.parameters(), b.parameters(),
                                                                          strict=True))))


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
def test_z_is_the_familys_transform_of_the_recorded_noise(small_digits, small_config, family):
    record = recorded(config_for(small_config, family), small_digits)[2]
    assert record.family == family and record.noise.shape == record.z.shape == (32, 2)
    if posterior_family(family).kind == "location-scale":  # Gaussian, Laplace, Student-t: z = loc + scale * eps
        expected = record.loc + record.scale * record.noise
    elif family == "gamma":  # z = F^-1(u; alpha = e^loc, beta = 1/scale), scipy's quantile
        assert ((record.noise > 0) & (record.noise < 1)).all()
        expected = stats.gamma(np.exp(record.loc), scale=record.scale).ppf(record.noise)
    else:  # Logistic: z = loc + s log(u / (1 - u)), u ~ Uniform(0, 1)
        assert ((record.noise > 0) & (record.noise < 1)).all()
        expected = record.loc + record.scale * np.log(record.noise / (1 - record.noise))
    np.testing.assert_allclose(record.z, expected, rtol=1e-5, atol=1e-5)
    assert (record.scale > 0).all()


@pytest.mark.parametrize("family", ["gaussian", "student-t"])
def test_the_recorded_draws_are_the_ones_the_step_trained_on(small_digits, small_config, family):
    """Decoding the record's z with the weights the step started from gives the step's own per-image terms."""
    trainer, before, record = recorded(config_for(small_config, family), small_digits)
    np.testing.assert_array_equal(record.x, small_digits.x_train[record.indices])
    x, z = torch.as_tensor(record.x), torch.as_tensor(record.z)
    with torch.no_grad():
        loc, scale = before.encode(x)
        reconstruction = before.likelihood(before.decode(z)).log_prob(x)
    np.testing.assert_allclose(record.loc, loc.numpy(), rtol=1e-6)
    np.testing.assert_allclose(record.scale, scale.numpy(), rtol=1e-6)
    np.testing.assert_allclose(record.reconstruction, reconstruction.numpy(), rtol=1e-5)
    means = {"reconstruction": record.reconstruction.mean(), "kl": record.kl.mean()}
    assert record.metrics["reconstruction"] == pytest.approx(means["reconstruction"], rel=1e-5)
    assert record.metrics["elbo"] == pytest.approx(means["reconstruction"] - means["kl"], rel=1e-5)
    assert record.loss == pytest.approx(-(means["reconstruction"] - record.beta * means["kl"]), rel=1e-5)


def test_gradient_and_update_norms_per_parameter_group(small_digits, small_config):
    trainer, before, record = recorded(small_config, small_digits)
    model = trainer.model
    phi = [*model.encoder.parameters(), *model.to_loc.parameters(), *model.to_log_var.parameters()]
    theta = list(model.decoder.parameters())
    assert {id(p) for p in phi} == {id(p) for p in parameter_groups(model)["phi"]}
    for name, group in (("theta", theta), ("phi", phi)):
        assert record.grad_norms[name] == pytest.approx(float(torch.cat([p.grad.flatten() for p in group]).norm()),
                                                        rel=1e-5)
    assert np.hypot(record.grad_norms["theta"], record.grad_norms["phi"]) == pytest.approx(
        record.metrics["grad_norm"], rel=1e-5)  # the two groups make up the norm the job publishes
    assert record.update_norm == pytest.approx(weight_distance(model, before), rel=1e-5)
    decoder_before = torch.cat([p.detach().flatten() for p in before.decoder.parameters()])
    assert record.update_norms["theta"] == pytest.approx(
        float((torch.cat([p.detach().flatten() for p in theta]) - decoder_before).norm()), rel=1e-5)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_the_graphs_gradients_are_backpropagation_through_z(small_digits, small_config, family):
    """dL/dz by autograd on the weights the step started from; dL/dloc and dL/dscale by the chain rule with the
    family's analytic dz/dparams."""
    _, before, record = recorded(config_for(small_config, family), small_digits)
    x, z = torch.as_tensor(record.x[:1]), torch.as_tensor(record.z[:1]).requires_grad_()
    log_likelihood = before.likelihood(before.decode(z)).log_prob(x).sum()
    (dz,) = torch.autograd.grad(log_likelihood, z)
    path = record.path
    assert path.log_likelihood == pytest.approx(float(log_likelihood.detach()), rel=1e-5)
    np.testing.assert_allclose(path.dz, dz[0].numpy(), rtol=1e-4, atol=1e-6)
    params = posterior_params(family, torch.as_tensor(record.loc[:1]), torch.as_tensor(record.scale[:1]))
    derivatives = FAMILIES[family].derivatives(params, torch.as_tensor(record.noise[:1]))
    np.testing.assert_allclose(path.dloc, (dz * derivatives["loc"])[0].numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(path.dscale, (dz * derivatives["scale"])[0].numpy(), rtol=1e-4, atol=1e-6)
    assert path.theta_norm > 0 and path.phi_norm > 0


def test_a_record_drawn_on_the_graph(small_digits, small_config):
    record = recorded(small_config, small_digits)[2]
    numbers = graph_numbers(record, dim=1)
    assert numbers["mu"] == (pytest.approx(record.loc[0, 1]), pytest.approx(record.path.dloc[1]))
    assert numbers["z"][0] == pytest.approx(record.z[0, 1]) and numbers["eps"] == (record.noise[0, 1], None)

    def lines(reparameterized: bool) -> dict[str, list[str]]:
        svg = ET.fromstring(to_svg(computation_graph(reparameterized), graph_numbers(record)))
        return {g.get("id"): [t.text for t in g.iter(f"{SVG}tspan")] for g in svg.iter(f"{SVG}g")
                if g.get("class") == "node"}

    before, after = lines(False), lines(True)
    assert before["node-mu"][-1] == NO_GRADIENT and after["node-mu"][-1].startswith("∂L/∂μ = ")
    assert before["node-z"][-1] == after["node-z"][-1]  # dL/dz is the same number either way
    assert f"{record.loc[0, 0]:.3g}".replace("-", "−") in before["node-mu"][-2]


def test_latent_table_speaks_the_familys_symbols(small_digits, small_config):
    gaussian = recorded(small_config, small_digits, steps=1)[2]
    table = latent_table(gaussian, examples=3, dims=2)
    assert list(table) == ["image", "dim", "ε", "μ", "σ", "z"]
    assert table["image"] == [1, 1, 2, 2, 3, 3] and table["dim"] == [1, 2] * 3
    assert table["z"][3] == pytest.approx(gaussian.z[1, 1]) and table["ε"][0] == pytest.approx(gaussian.noise[0, 0])
    assert list(latent_table(recorded(config_for(small_config, "laplace"), small_digits, 1)[2])) == [
        "image", "dim", "ε", "μ", "b", "z"]
    assert list(latent_table(recorded(config_for(small_config, "logistic"), small_digits, 1)[2])) == [
        "image", "dim", "u", "μ", "s", "z"]


def test_the_loop_position_of_each_status():
    assert loop_position(JobStatus.PAUSED)[0] == ("batch",)  # where Step or Resume goes on
    assert loop_position(JobStatus.RUNNING)[0] == LOOP_LINES[1:-1]  # the whole body, over and over
    assert loop_position(JobStatus.QUEUED)[0] == ("init",) and loop_position(JobStatus.FINISHED)[0] == ("until",)
    assert loop_position(JobStatus.STOPPED)[0] == ()


# --- The Lecture page's Step ---------------------------------------------------------------------------------


@pytest.fixture
def lecture():
    at = open_app_page("pages/lecture.py")
    yield at
    job = at.session_state[JOB_KEY] if JOB_KEY in at.session_state else None
    if job is not None:
        job.stop()
        job.join(timeout=10)


def step_button(at):
    return next(b for b in at.button if b.key == "lecture:step")


def shown_numbers(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def graph_markdown(at) -> str:
    return next(m.value for m in at.markdown if "computation-graph" in m.value)


def test_step_without_a_run_starts_the_digits_one_paused_and_shows_its_minibatch(lecture):
    assert "No run is live" in " ".join(m.value for m in lecture.markdown)
    step_button(lecture).click().run()
    assert not lecture.exception
    job = lecture.session_state[JOB_KEY]
    record = job.last_step_record()
    snap = job.wait_until(lambda s: s.status == JobStatus.PAUSED)
    assert record.step == snap.step == 1 and job.config.preset == "digits" and job.config.dataset == "digits"
    # The ELBO terms shown are the ones the job published for that step.
    published = {name: snap.train[name][-1] for name in TRAIN_METRICS}
    assert record.metrics == pytest.approx(published)
    numbers = shown_numbers(lecture)
    assert numbers["Reconstruction"] == f"{published['reconstruction']:.2f}"
    assert numbers["KL"] == f"{published['kl']:.2f}" and numbers["ELBO"] == f"{published['elbo']:.2f}"
    assert numbers["‖∇θ‖ decoder"] == f"{record.grad_norms['theta']:.3g}"
    assert numbers["‖∇φ‖ encoder"] == f"{record.grad_norms['phi']:.3g}"
    assert numbers["‖Δθ, Δφ‖ update"] == f"{record.update_norm:.3g}"
    table = lecture.table[0].value
    assert table.to_dict("list") == latent_table(record)  # noise, μ, σ and z of the first images
    assert any(m.value.startswith('<img src="data:image/png;base64,') for m in lecture.markdown)  # the images of M
    assert "Gaussian" in " ".join(m.value for m in lecture.markdown)
    graph = graph_markdown(lecture)
    assert 'id="graph-after"' in graph and f"{record.z[0, 0]:.3g}".replace("-", "−") in graph
    lecture.get("button_group")[0].set_value("Before the trick").run()  # the graph before the trick
    assert NO_GRADIENT in graph_markdown(lecture) and 'id="graph-before"' in graph_markdown(lecture)


def test_step_on_a_live_run_walks_its_next_minibatch_and_names_its_family(lecture, small_digits, small_config):
    job = TrainingJob(config_for(small_config, "laplace"), small_digits)
    job.step(2)
    job.wait_until(lambda s: s.step == 2)
    lecture.session_state[JOB_KEY] = job
    lecture.run()
    assert "One minibatch through the loop" in " ".join(m.value for m in lecture.markdown)
    step_button(lecture).click().run()
    assert not lecture.exception
    record = job.last_step_record()
    assert record.step == 3 and record.family == "laplace"
    assert list(lecture.table[0].value.columns) == ["image", "dim", "ε", "μ", "b", "z"]
    text = " ".join(m.value for m in lecture.markdown)
    assert "**Laplace**" in text and FAMILIES["laplace"].base in text
    assert shown_numbers(lecture)["ELBO"] == f"{job.snapshot().train['elbo'][-1]:.2f}"
    loop = next(m.value for m in lecture.markdown if "**repeat**" in m.value)
    assert ":orange-background[$x \\leftarrow$ a random minibatch" in loop and "paused" in loop
