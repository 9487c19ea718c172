"""Novelty detection (GMM, max-softmax), open-set metrics, and the WaferMonitor round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

from convsuite.core_ops import io
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import bundled_weights, model_config
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps
from convsuite.semicon.dense_baseline import DenseWaferNet
from convsuite.semicon.metrics import (
    closed_set_accuracy,
    macro_f1,
    novelty_auroc,
    open_set_report,
    oscr,
    oscr_curve,
)
from convsuite.semicon.monitor import Classification, WaferMonitor
from convsuite.semicon.openset import NoveltyDetector, mixture_log_likelihood, msp_score
from convsuite.semicon.train import fit_monitor

DIMS = 6


@pytest.fixture(scope="module")
def features() -> dict[str, np.ndarray]:
    """Three known Gaussian clusters (unequal, correlated covariances) and a novel one at their
    centroid: where a single Gaussian fitted to the known features is densest."""
    known_centres = 6.0 * np.eye(DIMS)[[0, 0, 1]] * np.array([[1.0], [-1.0], [1.0]])
    novel_centre = known_centres.mean(0, keepdims=True)

    def draw(seed: int, n: int, centres: np.ndarray) -> np.ndarray:
        shapes = np.random.default_rng(1)  # the same cluster shapes in every draw
        points = np.random.default_rng(seed)
        out = []
        for i, centre in enumerate(centres):
            mixing = np.eye(DIMS) + 0.3 * shapes.normal(size=(DIMS, DIMS))
            out.append(centre + (0.5 + 0.25 * i) * points.normal(size=(n, DIMS)) @ mixing)
        return np.concatenate(out)

    return {
        "train": draw(10, 300, known_centres),
        "val": draw(11, 400, known_centres),
        "fresh": draw(12, 1000, known_centres),
        "novel": draw(13, 300, novel_centre),
    }


def _auroc(detector: NoveltyDetector, known: np.ndarray, novel: np.ndarray) -> float:
    scores = np.r_[detector.score(known), detector.score(novel)]
    return novelty_auroc(scores, np.r_[np.zeros(len(known)), np.ones(len(novel))])


def test_gmm_flags_the_held_out_cluster_at_the_chosen_false_alarm_rate(features) -> None:
    detector = NoveltyDetector(max_components=5).fit(features["train"], features["val"])
    assert detector.n_fitted_components == 3  # BIC finds the three known clusters
    assert _auroc(detector, features["fresh"], features["novel"]) > 0.9
    false_alarms = float(np.mean(detector.predict(features["fresh"])))
    assert 0.025 < false_alarms < 0.085, false_alarms  # 5% promised; 3000 fresh known samples
    assert float(np.mean(detector.predict(features["novel"]))) > 0.8
    # The threshold is the 95th percentile of the validation scores.
    val_scores = detector.score(features["val"])
    assert detector.threshold == pytest.approx(np.quantile(val_scores, 0.95))
    assert detector.calibrate(features["val"], 0.2) < np.quantile(val_scores, 0.95)
    # One Gaussian puts its peak on the novel cluster: the mixture is what finds it.
    single = NoveltyDetector(n_components=1).fit(features["train"], features["val"])
    assert _auroc(single, features["fresh"], features["novel"]) < 0.5


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_json_round_trip_reproduces_scores(features, tmp_path: Path, covariance_type) -> None:
    detector = NoveltyDetector(n_components=2, covariance_type=covariance_type)
    detector.fit(features["train"], features["val"])
    path = detector.save(tmp_path / "detector.novelty.json")
    state = json.loads(path.read_text())
    assert state["threshold"] == detector.threshold and isinstance(state["means"], list)
    loaded = NoveltyDetector.load(path)
    probe = np.r_[features["fresh"][:50], features["novel"][:50]]
    np.testing.assert_array_equal(loaded.score(probe), detector.score(probe))
    np.testing.assert_array_equal(loaded.predict(probe), detector.predict(probe))
    # The in-memory form is plain numpy arrays, and rebuilds too.
    arrays = detector.to_dict()
    assert all(isinstance(arrays[k], np.ndarray) for k in ("weights", "means", "covariances"))
    np.testing.assert_array_equal(
        NoveltyDetector.from_dict(arrays).score(probe), loaded.score(probe)
    )


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_scores_equal_scikit_learns_on_the_same_mixture(features, covariance_type) -> None:
    """The oracle: a mixture fitted by scikit-learn scores the same through our arrays."""
    train = features["train"] / 3.0
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(train)
    far = np.linspace(20.0, 60.0, 5)[:, None] * np.ones(DIMS)  # exp(log-density) underflows
    probe = np.r_[features["fresh"][:200] / 3.0, features["novel"][:100] / 3.0, far]
    expected = gmm.score_samples(probe)
    ours = mixture_log_likelihood(
        probe, gmm.weights_, gmm.means_, gmm.precisions_cholesky_, covariance_type
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-9)
    assert np.isfinite(ours).all() and ours.min() < -800
    # A detector holding those arrays (no standardisation) scores -log-likelihood.
    state = {
        "format": "convsuite.semicon.NoveltyDetector/1",
        "covariance_type": covariance_type,
        "n_components": 3,
        "reg_covar": 1e-6,
        "false_alarm_rate": 0.05,
        "threshold": 1.0,
        "seed": 0,
        "weights": gmm.weights_,
        "means": gmm.means_,
        "covariances": gmm.covariances_,
        "precisions_cholesky": gmm.precisions_cholesky_,
        "center": np.zeros(DIMS),
        "scale": np.ones(DIMS),
    }
    np.testing.assert_allclose(
        NoveltyDetector.from_dict(state).score(probe), -expected, rtol=1e-12, atol=1e-9
    )


def test_a_fitted_detector_scores_as_its_own_mixture(features) -> None:
    detector = NoveltyDetector(n_components=3, covariance_type="diag", seed=2)
    detector.fit(features["train"])
    state = detector.to_dict()
    gmm = GaussianMixture(3, covariance_type="diag", reg_covar=1e-3, random_state=2)
    standard = (features["train"] - state["center"]) / state["scale"]
    gmm.fit(standard)
    np.testing.assert_allclose(state["means"], gmm.means_)
    probe = features["novel"][:50]
    expected = -gmm.score_samples((probe - state["center"]) / state["scale"])
    np.testing.assert_allclose(detector.score(probe), expected, rtol=1e-10)


def test_malformed_detector_arrays_are_input_errors(features) -> None:
    state = NoveltyDetector(n_components=2).fit(features["train"]).to_dict()
    broken = {
        "means must be \\(2, D\\)": {"means": state["means"][:1]},
        "weights must have shape": {"weights": state["weights"][:1]},
        "precisions_cholesky must have shape": {"precisions_cholesky": state["means"]},
        "center must have shape": {"center": state["center"][:-1]},
        "non-finite values in means": {"means": state["means"] * np.nan},
        "weights must be positive and sum to 1": {"weights": state["weights"] * 2},
        "Cholesky diagonals": {"precisions_cholesky": -state["precisions_cholesky"]},
        "non-finite values in threshold": {"threshold": float("inf")},
        "incomplete or malformed": {"covariance_type": "banana"},
    }
    for problem, change in broken.items():
        with pytest.raises(InputError, match=f"novelty.json: .*{problem}"):
            NoveltyDetector.from_dict({**state, **change}, "novelty.json")


def test_malformed_detector_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        NoveltyDetector.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        NoveltyDetector.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="is not a"):
        NoveltyDetector.load(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        NoveltyDetector().score(np.zeros((1, 3)))


def test_msp_score() -> None:
    scores = msp_score(torch.tensor([[0.0, 0.0], [10.0, -10.0], [np.log(3.0), 0.0]]))
    np.testing.assert_allclose(scores, [0.5, 2.061e-9, 0.25], rtol=1e-3, atol=1e-12)


def test_oscr_on_a_hand_computed_example() -> None:
    # Known maps: scores 0.1 (right), 0.2 (wrong), 0.4 (right); novel maps: 0.3, 0.5.
    # Thresholds 0.1, 0.2: CCR 1/3, FPR 0; 0.3: FPR 1/2; 0.4: CCR 2/3; 0.5: FPR 1.
    # Area: 1/2 * 1/3 + 1/2 * 2/3 = 1/2.
    known, correct, novel = [0.1, 0.2, 0.4], [True, False, True], [0.3, 0.5]
    fpr, ccr = oscr_curve(known, correct, novel)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(ccr, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert oscr(known, correct, novel) == pytest.approx(0.5)
    # A tie between a known and a novel map is a diagonal step (as in ROC AUC): 1/2 * 1/2.
    assert oscr([0.2], [True], [0.2]) == pytest.approx(0.5)
    assert oscr([0.1, 0.2], [False, False], [0.3]) == 0.0


def test_oscr_is_auroc_when_every_known_map_is_right_and_at_most_accuracy() -> None:
    rng = np.random.default_rng(4)
    known, novel = rng.normal(size=200), rng.normal(1.0, size=150)
    known[:20] = novel[:20]  # some ties
    auroc = roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[known, novel])
    assert oscr(known, np.ones(200, bool), novel) == pytest.approx(auroc)
    correct = rng.random(200) < 0.7
    assert 0.5 * correct.mean() < oscr(known, correct, novel) <= correct.mean()


def test_closed_set_metrics_and_auroc_by_hand() -> None:
    assert novelty_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    truth, predicted = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert closed_set_accuracy(truth, predicted) == 0.75
    # F1(a) = 2 * 1 * 0.5 / 1.5 = 2/3, F1(b) = 2 * 2/3 * 1 / (5/3) = 0.8.
    assert macro_f1(truth, predicted) == pytest.approx((2 / 3 + 0.8) / 2)
    report = open_set_report(
        ["a", "b", "x", "a"], ["a", "b", "a", "b"], [0.1, 0.2, 0.9, 0.3], ["a", "b"], 0.25
    )
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["auroc"] == 1.0 and report["oscr"] == pytest.approx(2 / 3)
    assert report["false_alarm_rate"] == pytest.approx(1 / 3) and report["detection_rate"] == 1.0
    with pytest.raises(ValueError, match="both"):
        novelty_auroc([0.1, 0.2], [0, 0])


@pytest.fixture
def card_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The model cards written (``save_checkpoint`` writes them through ``io.atomic_write``)."""
    written: list[Path] = []
    original = io.atomic_write

    def counting(target, mode="w"):
        if str(target).endswith(".json"):
            written.append(Path(target))
        return original(target, mode)

    monkeypatch.setattr(io, "atomic_write", counting)
    return written


def test_monitor_fits_saves_loads_and_classifies(tmp_path: Path, card_writes) -> None:
    options = SimulationOptions(grid=256, defects_scale=0.05)
    known = ("center", "edge-ring", "random")
    train = simulate_wafer_maps(48, seed=20, options=options, patterns=known)
    val = simulate_wafer_maps(24, seed=21, options=options, patterns=(*known, "scratch"))
    monitor = fit_monitor(
        train,
        val,
        model_config("wafer_sparse", "tiny"),
        epochs=3,
        out_dir=tmp_path,
        batch_size=16,
        logger=False,
    )
    assert monitor.classes == known  # the training labels, in PATTERNS order
    assert card_writes == [tmp_path / "monitor.json"]  # the card is written once
    names = {p.name for p in tmp_path.iterdir()}
    assert {"monitor.safetensors", "monitor.json", "monitor.novelty.json"} <= names
    card = json.loads((tmp_path / "monitor.json").read_text())
    assert card["architecture"] == "SparseWaferNet" and card["card_version"] == 2
    assert card["config"]["classes"] == card["outputs"]["classes"] == list(known)
    assert card["inputs"] == {
        "grid": 256,
        "pitch_mm": 300 / 256,
        "diameter_mm": 300.0,
        "die_level": True,  # 1.17 mm cells: a die map
    }
    assert card["outputs"]["novelty"]["gmm_components"] == 3  # one per known class
    assert card["files"] == {"novelty": "monitor.novelty.json"}
    assert set(card["metrics"]) == {
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "val_false_alarm_rate",
        "train_seconds",
    }
    assert card["metrics"] == monitor.card.metrics  # the monitor in memory is the one on disk

    test = simulate_wafer_maps(6, seed=22, options=options, patterns=(*known, "donut"))
    results = monitor.classify(test, batch_size=4)
    loaded = WaferMonitor.from_pretrained(tmp_path)
    again = loaded.classify(iter(test), batch_size=5)  # any iterable, any batch size
    assert len(results) == 6 and all(isinstance(r, Classification) for r in results)
    for first, second in zip(results, again, strict=True):
        assert first.class_name == second.class_name and first.class_name in known
        assert first.novelty_score == pytest.approx(second.novelty_score, rel=1e-4, abs=1e-4)
        assert 1 / 3 <= first.probability <= 1  # the class Gaussians' posterior
        assert 0 <= first.msp_score <= 2 / 3  # one minus the head's maximum softmax
        assert first.is_novel == (first.novelty_score > monitor.threshold)
    assert loaded.threshold == monitor.threshold
    # The class is the detector's (class Gaussians on the learned features and the statistics).
    assert card["outputs"]["class_from"] == "class Gaussians' posterior"
    posterior = loaded.detector.posterior(loaded.features(test, batch_size=4))
    assert [r.class_name for r in again] == [known[i] for i in posterior.argmax(1)]
    assert [r.probability for r in again] == pytest.approx(posterior.max(1), abs=1e-6)
    report = loaded.evaluate(test)
    assert {"accuracy", "auroc", "oscr", "false_alarm_rate", "msp_auroc"} <= set(report)

    # Saving under another name writes its card once, naming its own detector file.
    card_writes.clear()
    weights = loaded.save(tmp_path / "copy", name="line3")
    assert card_writes == [tmp_path / "copy" / "line3.json"]
    assert json.loads(weights.with_suffix(".json").read_text())["files"] == {
        "novelty": "line3.novelty.json"
    }
    copy = WaferMonitor.from_pretrained(weights)
    assert [r.novelty_score for r in copy.classify(test, batch_size=5)] == [
        r.novelty_score for r in again
    ]


def test_dense_monitor_round_trip(tmp_path: Path) -> None:
    options = SimulationOptions(grid=256, defects_scale=0.05)
    known = ("center", "random")
    train = simulate_wafer_maps(16, seed=23, options=options, patterns=known)
    val = simulate_wafer_maps(8, seed=24, options=options, patterns=known)
    config = model_config("wafer_dense", "tiny")
    monitor = fit_monitor(train, val, config, epochs=1, out_dir=tmp_path, logger=False)
    card = json.loads((tmp_path / "monitor.json").read_text())
    assert card["architecture"] == "DenseWaferNet" and card["inputs"]["bins"] == 32
    loaded = WaferMonitor.from_pretrained(tmp_path / "monitor.safetensors")
    assert isinstance(loaded.net, DenseWaferNet)
    scores = [r.novelty_score for r in loaded.classify(val)]
    assert scores == pytest.approx([r.novelty_score for r in monitor.classify(val)], abs=1e-6)


def _copy_bundled(folder: Path) -> Path:
    """The bundled monitor's three files copied into ``folder``; returns the card's path."""
    bundled = bundled_weights("convsuite.semicon", "wafer_monitor_small")
    for suffix in (".safetensors", ".json", ".novelty.json"):
        (folder / f"m{suffix}").write_bytes(bundled.with_suffix(suffix).read_bytes())
    return folder / "m.json"


def test_loading_errors_are_one_line_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="checkpoint file does not exist"):
        WaferMonitor.from_pretrained(tmp_path)
    with pytest.raises(InputError, match="no bundled checkpoint of that name"):
        WaferMonitor.from_pretrained("wafer_monitor_huge")
    with pytest.raises(InputError, match="ships no bundled weights"):
        DenseWaferNet.from_pretrained()
    with pytest.raises(InputError, match="holds a SparseWaferNet, not a DenseWaferNet"):
        DenseWaferNet.from_pretrained("wafer_monitor_small")
    card_path = _copy_bundled(tmp_path)
    card = json.loads(card_path.read_text())
    card["files"] = {}
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="names no novelty detector file"):
        WaferMonitor.from_pretrained(tmp_path / "m.safetensors")
    card["files"] = {"novelty": "../../etc/passwd"}  # refused by the card's own checks
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="m.json: .*novelty"):
        WaferMonitor.from_pretrained(tmp_path / "m.safetensors")
    card["files"] = {"novelty": "missing.novelty.json"}
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="missing.novelty.json: novelty detector file does not"):
        WaferMonitor.from_pretrained(tmp_path / "m.safetensors")
    card["architecture"] = "SkyReconNet"
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="holds a SkyReconNet, not a SparseWaferNet or Dense"):
        WaferMonitor.from_pretrained(tmp_path / "m.safetensors")


def _labelled(features: dict[str, np.ndarray]) -> np.ndarray:
    """Class indices of the fixture's known draws (three clusters of equal size, in order)."""
    return np.repeat(np.arange(3), len(features["train"]) // 3)


def test_class_components_are_the_class_gaussians_with_a_shared_covariance(features) -> None:
    from scipy.stats import multivariate_normal

    labels = _labelled(features)
    detector = NoveltyDetector("classes", covariance_type="tied", reg_covar=1e-3)
    detector.fit(features["train"], features["val"], labels)
    # Oracle: class means and the pooled within-class covariance of the standardised features,
    # scored with scipy; Bayes' rule over the classes gives the posterior.
    train = features["train"]
    center, scale = train.mean(0), train.std(0)
    standard = (train - center) / scale
    means = np.stack([standard[labels == k].mean(0) for k in range(3)])
    residuals = standard - means[labels]
    covariance = residuals.T @ residuals / len(train) + 1e-3 * np.eye(DIMS)
    probe = (features["novel"][:50] - center) / scale
    joint = np.stack(
        [np.log(1 / 3) + multivariate_normal(means[k], covariance).logpdf(probe) for k in range(3)],
        1,
    )
    expected = -np.logaddexp.reduce(joint, axis=1)
    np.testing.assert_allclose(detector.score(features["novel"][:50]), expected, rtol=1e-9)
    posterior = np.exp(joint + expected[:, None])
    np.testing.assert_allclose(detector.posterior(features["novel"][:50]), posterior, atol=1e-9)
    fresh = np.repeat(np.arange(3), len(features["fresh"]) // 3)
    assert np.mean(detector.posterior(features["fresh"]).argmax(1) == fresh) > 0.95
    assert _auroc(detector, features["fresh"], features["novel"]) > 0.9
    with pytest.raises(ValueError, match="needs the training labels"):
        NoveltyDetector("classes", covariance_type="tied").fit(features["train"])
    with pytest.raises(ValueError, match="every class present"):
        NoveltyDetector("classes", covariance_type="tied").fit(features["train"], None, labels * 2)
    with pytest.raises(ValueError, match="needs covariance_type='tied'"):
        NoveltyDetector("classes")
    with pytest.raises(RuntimeError, match="posterior"):
        NoveltyDetector(2).fit(features["train"]).posterior(features["train"])


def _blocks_data(seed: int, n: int, novel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two classes; block A (40 noisy dimensions) separates them, block B (3 dimensions) is
    where a novel pattern differs (its first dimension shifted by 5 standard deviations)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    a = rng.normal(size=(n, 40)) + 3.0 * labels[:, None] * (np.arange(40) < 4)
    b = rng.normal(size=(n, 3)) + 2.0 * labels[:, None]
    if novel:
        b[:, 0] += 5.0
    return np.concatenate([a, b], 1), labels


def test_fused_detector_sums_the_standardised_block_scores(tmp_path: Path) -> None:
    from convsuite.semicon.openset import FusedNoveltyDetector, load_detector

    train, labels = _blocks_data(0, 200)
    val, _ = _blocks_data(1, 200)
    fresh, fresh_labels = _blocks_data(2, 400)
    novel, _ = _blocks_data(3, 200, novel=True)
    fused = FusedNoveltyDetector([(0, 40), (40, 43)]).fit(train, val, labels)
    # Oracle: each block's class-Gaussian score, standardised by its validation median and
    # standard deviation, summed.
    expected = 0.0
    for start, stop in [(0, 40), (40, 43)]:
        part = NoveltyDetector("classes", covariance_type="tied").fit(
            train[:, start:stop], val[:, start:stop], labels
        )
        val_scores = part.score(val[:, start:stop])
        scores = part.score(novel[:, start:stop])
        expected = expected + (scores - np.median(val_scores)) / val_scores.std()
    np.testing.assert_allclose(fused.score(novel), expected, rtol=1e-9)
    assert fused.threshold == pytest.approx(np.quantile(fused.score(val), 0.95))
    # The 3-dimension block's signal is not drowned by the 40 noisy ones: fusing beats one
    # mixture on all 43 dimensions.
    joint = NoveltyDetector("classes", covariance_type="tied").fit(train, val, labels)
    assert _auroc(fused, fresh, novel) > _auroc(joint, fresh, novel) + 0.05
    assert _auroc(fused, fresh, novel) > 0.95
    assert np.mean(fused.posterior(fresh).argmax(1) == fresh_labels) > 0.95
    # JSON round trip; the file says which detector it is.
    path = fused.save(tmp_path / "fused.novelty.json")
    loaded = load_detector(path)
    assert isinstance(loaded, FusedNoveltyDetector) and loaded.threshold == fused.threshold
    # (equal to rounding: the fitted Cholesky factor is column-major, the loaded one row-major)
    np.testing.assert_allclose(loaded.score(novel), fused.score(novel), rtol=1e-12)
    np.testing.assert_allclose(loaded.posterior(fresh), fused.posterior(fresh), atol=1e-12)
    mixture = load_detector(NoveltyDetector(2).fit(train).save(tmp_path / "mixture.json"))
    assert isinstance(mixture, NoveltyDetector) and not mixture.classifies


def test_malformed_fused_detector_files_are_input_errors(tmp_path: Path) -> None:
    from convsuite.semicon.openset import FusedNoveltyDetector, load_detector

    train, labels = _blocks_data(0, 100)
    state = json.loads(
        FusedNoveltyDetector([(0, 40), (40, 43)])
        .fit(train, labels=labels)
        .save(tmp_path / "ok.json")
        .read_text()
    )
    for change, message in [
        ({"blocks": [[0, 40], [41, 43]]}, "without gaps"),
        ({"spreads": [1.0, -1.0]}, "do not fit its blocks"),
        ({"blocks": [[0, 40], [40, 44]]}, "do not fit its blocks"),
        ({"offsets": [0.0]}, "do not fit its blocks"),
        ({"parts": []}, "do not fit its blocks"),
    ]:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**state, **change}))
        with pytest.raises(InputError, match=message) as error:
            load_detector(path)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="without gaps"):
        FusedNoveltyDetector([(0, 3), (4, 6)])
