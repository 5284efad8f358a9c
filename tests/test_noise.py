"""Noise models: actual vs nominal rates, purity in (dataset, spec, seed), bad specs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from noisybench.errors import ConfigError, UnknownNameError
from noisybench.noise import NoiseSpec, parse_noise, realize_noise, round_half_up

C = 10
LABELS = np.repeat(np.arange(C), 100)  # 100 samples per class


class MapDataset:
    name = "fake"
    asym_maps = {"default": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}}
    human_label_sets = ("aggre",)

    def human_labels(self, name: str) -> np.ndarray:
        return (LABELS + 1) % C


def realize(spec: str, seed: int = 1, labels: np.ndarray = LABELS, **kw):
    return realize_noise(spec, labels, C, seed, dataset_id="fake", **kw)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45, 0.5, 0.8])
def test_sym_is_exact_per_class_and_never_keeps_the_label(rate: float) -> None:
    r = realize(f"sym:{rate}")
    flipped = r.labels != LABELS
    for c in range(C):
        assert flipped[LABELS == c].sum() == round_half_up(Fraction(str(rate)) * 100)
    assert r.actual_rate == pytest.approx(rate)
    assert r.nominal_rate == rate


def test_sym_dividemix_rate_is_r_times_c_minus_1_over_c() -> None:
    labels = np.repeat(np.arange(C), 2000)
    rates = [realize("sym-dividemix:0.5", seed=s, labels=labels).actual_rate for s in range(3)]
    assert np.mean(rates) == pytest.approx(0.5 * (C - 1) / C, abs=0.01)
    assert all(r < 0.5 for r in rates)


def test_asym_uses_the_dataset_map_exactly() -> None:
    r = realize("asym:0.4", dataset=MapDataset())
    counts = np.array(r.transition_counts)
    for src, dst in MapDataset.asym_maps["default"].items():
        assert counts[src, dst] == 40 and counts[src, src] == 60
    for c in (0, 1, 4, 8, 9):
        assert counts[c, c] == 100
    assert r.actual_rate == pytest.approx(0.4 * 5 / 10)


def test_asym_without_a_map_is_a_clear_error() -> None:
    class NoMap:
        name = "blobs"
        asym_maps: dict = {}

    with pytest.raises(ConfigError, match="dataset 'blobs' has none"):
        realize("asym:0.4", dataset=NoMap())


def test_pairflip_moves_to_next_class() -> None:
    counts = np.array(realize("pairflip:0.45").transition_counts)
    for c in range(C):
        assert counts[c, (c + 1) % C] == 45 and counts[c, c] == 55


def test_draw_sampler_is_binomial_around_r() -> None:
    labels = np.repeat(np.arange(C), 1000)
    assert realize("sym-draw:0.3", labels=labels).actual_rate == pytest.approx(0.3, abs=0.02)


def test_idn_rate_close_to_nominal() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(len(LABELS), 32)).astype(float)
    r = realize("idn:0.3", features=lambda: x)
    assert r.actual_rate == pytest.approx(0.3, abs=0.05)
    assert (r.labels >= 0).all() and (r.labels < C).all()


def test_human_named_set_and_file(tmp_path) -> None:
    assert realize("human:aggre", dataset=MapDataset()).actual_rate == 1.0
    path = tmp_path / "labels.npy"
    np.save(path, LABELS)
    assert realize(f"human:{path}").actual_rate == 0.0
    np.save(path, LABELS[:10])
    with pytest.raises(ConfigError, match="has 10 labels but the training set has 1000"):
        realize(f"human:{path}")


def test_noise_is_a_pure_function_of_dataset_spec_and_seed() -> None:
    a, b = realize("sym:0.5", seed=3), realize("sym:0.5", seed=3)
    assert np.array_equal(a.labels, b.labels) and a.sha256 == b.sha256
    assert realize("sym:0.5", seed=4).sha256 != a.sha256
    other = realize_noise("sym:0.5", LABELS, C, 3, dataset_id="other")
    assert other.sha256 != a.sha256


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("sym:1.0", ConfigError, r"outside \[0, 1\)"),
        ("sym:-0.1", ConfigError, r"outside \[0, 1\)"),
        ("sym", ConfigError, "needs a rate"),
        ("sym:abc", ConfigError, "not a number"),
        ("symm:0.2", UnknownNameError, "Did you mean 'sym'"),
        ("human", ConfigError, "needs an argument"),
    ],
)
def test_bad_specs(spec: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_noise(spec)


def test_spec_aliases_and_round_trip() -> None:
    assert str(parse_noise("sym_dividemix:0.50")) == "sym-dividemix:0.5"
    assert str(parse_noise("human:aggre")) == "human:aggre"
    assert str(parse_noise("none")) == "none"


def test_display_names_and_natural_order() -> None:
    from noisybench.noise import noise_display, noise_sort_key

    assert [noise_display(s) for s in ("sym:0.5", "asym:0.4", "pairflip:0.45", "idn:0.2", "human:aggre",
                                       "none", "sym-dividemix:0.8", "mystery:1")] == [
        "Sym. 50 %", "Asym. 40 %", "Pair 45 %", "IDN 20 %", "Human (aggre)", "Clean", "Sym. (DivideMix) 80 %",
        "mystery:1"]
    settings = ["asym:0.4", "sym:0.8", "human:aggre", "sym:0.2", "none", "pairflip:0.45"]
    assert sorted(settings, key=noise_sort_key) == ["none", "sym:0.2", "sym:0.8", "asym:0.4", "pairflip:0.45",
                                                    "human:aggre"]


@pytest.mark.parametrize(("text", "canonical"), [
    ("sym:0.99999999", "sym:0.99999999"),  # %g made it sym:1, refused at run time
    ("sym:0.1234567", "sym:0.1234567"),  # %g made it sym:0.123457, a different rate
    ("sym:-0", "sym:0"), ("sym:0.0", "sym:0"), ("sym:-0.0", "sym:0"),
    ("asym:.40", "asym:0.4"), ("sym:1e-5", "sym:1e-05"), ("idn:2.5e-1", "idn:0.25"),
])
def test_specs_are_canonicalised_exactly(text: str, canonical: str) -> None:
    spec = parse_noise(text)
    assert str(spec) == canonical
    assert parse_noise(str(spec)) == spec  # the planned text reads back as the same rate, bit for bit
    assert spec.rate == float(text.partition(":")[2]) + 0.0


def test_canonical_text_is_what_g_wrote_for_every_rate_grids_use() -> None:
    """Run ids hash the canonical text: for rates of up to six significant digits it must not change."""
    rates = [i / 100 for i in range(100)] + [i / 1000 for i in range(1000)] + [0.45, 0.05, 1e-05, 5e-05, 0.0001,
                                                                                0.00015, 0.123456, 0.999999]
    for rate in rates:
        assert str(NoiseSpec("sym", rate)) == f"sym:{rate:g}"


@pytest.mark.parametrize("text", ["none:0.5", "none:x", "none:"])
def test_a_family_without_arguments_refuses_one(text: str) -> None:
    with pytest.raises(ConfigError, match="takes no argument; write 'none'"):
        parse_noise(text)


def test_rates_print_exactly() -> None:
    from noisybench.noise import noise_display

    assert noise_display("sym:0.1234567") == "Sym. 12.34567 %"
    assert [noise_display(f"sym:{r}") for r in (0.2, 0.4, 0.45, 0.8, 1e-05)] == [
        "Sym. 20 %", "Sym. 40 %", "Sym. 45 %", "Sym. 80 %", "Sym. 0.001 %"]


def test_every_family_declares_its_printed_name_and_lives_in_its_own_plugin_module() -> None:
    from noisybench.noise import FAMILY_DISPLAY
    from noisybench.registry import NOISES

    assert list(FAMILY_DISPLAY) == ["none", "sym", "sym-draw", "sym-dividemix", "asym", "asym-superclass",
                                    "asym-draw", "asym-dividemix", "pairflip", "pairflip-draw", "asym-pairswap5", "idn",
                                    "human"]
    assert FAMILY_DISPLAY["pairflip"] == "Pair"
    modules = {NOISES.origin(name).module for name in NOISES.list()}
    assert modules == {f"noisybench.noises.{m}" for m in ("none", "sym", "asym", "pairflip", "pairswap5", "idn",
                                                                     "human")}
