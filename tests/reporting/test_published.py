"""Published numbers: the packaged file, its provenance tags, and matching to leaderboard cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from noisybench.errors import DataError
from noisybench.reporting import ReportOptions
from noisybench.reporting.published import load_published, normalise_method
from noisybench.store.report import report_dir as make_report
from tests.reporting.conftest import write_run


def _find(rows, **keys):
    hits = [r for r in rows if all(r[k] == v for k, v in keys.items())]
    assert len(hits) == 1, keys
    return hits[0]


def test_packaged_file_holds_spec_values_with_provenance() -> None:
    rows = load_published()
    assert len(rows) > 150
    assert all(r["source"] and r["tag"] for r in rows)
    ce = _find(rows, method="ce", dataset="cifar10", noise_family="sym-dividemix", noise_rate=0.2, metric="best")
    assert ce["value"] == 86.8 and ce["tag"] == "p?;s" and ce["arch"] == "PreAct ResNet-18"
    assert _find(rows, method="dividemix", dataset="cifar100", noise_family="sym-dividemix", noise_rate=0.9,
                 metric="mean-last")["value"] == 31.0
    elr = _find(rows, paper_method="ELR", dataset="cifar100", noise_family="sym-elr", noise_rate=0.8)
    assert elr["value"] == 29.78 and elr["tag"] == "oc" and elr["metric"] == "val"
    trunc = _find(rows, method="gce-truncated", dataset="cifar10", noise_family="sym", noise_rate=0.8)
    assert (trunc["value"], trunc["std"]) == (67.92, 0.60)
    assert _find(rows, method="co-teaching", dataset="mnist", noise_family="pairflip-draw")["value"] == 87.58


def test_method_names_normalise() -> None:
    assert normalise_method("ELR+") == normalise_method("elr_plus") == "elrplus"
    assert normalise_method("Co-Teaching") == "coteaching"


def test_bad_file_names_the_line(tmp_path: Path) -> None:
    header = "source,paper_method,method,dataset,noise_family,noise_rate,metric,value,std,arch,tag,note\n"
    path = tmp_path / "p.csv"
    path.write_text("# comment\n" + header + "S,CE,ce,cifar10,sym,0.2,best,abc,,r18,p,\n")
    with pytest.raises(DataError, match="line 3: not a number"):
        load_published(path)
    path.write_text(header + "S,CE,ce,cifar10,sym,0.2,best,1.0,,r18,maybe,\n")
    with pytest.raises(DataError, match="provenance tags"):
        load_published(path)


def test_matching_setting_shows_paper_value_beside_ours(tmp_path: Path) -> None:
    for seed, v in enumerate([80.0, 81.0, 79.5], 1):
        write_run(tmp_path, "ce", "cifar10", "sym-dividemix:0.5", seed, v)
        write_run(tmp_path, "ce", "cifar10", "sym:0.5", seed, v)  # another noise variant: no match
    text, board = make_report(tmp_path, ReportOptions(fmt="table", metric="best"))
    assert {(p["noise"], p["metric"], p["value"]) for p in board.published} == {
        ("sym-dividemix:0.5", "best", 79.4), ("sym-dividemix:0.5", "mean-last", 57.9)}
    assert all(p["ours_mean"] == pytest.approx(80.1666, abs=1e-3) for p in board.published)
    assert "Published numbers" in text and " 79.4 " in text and " 57.9 " in text
    assert "mean-last (differs)" in text
    latex, _ = make_report(tmp_path, ReportOptions(fmt="latex"))
    assert "Published values" in latex and "& 79.4$^{o}$ &" in latex
    assert "DivideMix (Li et al. 2020) Table 1 (p?;s)" in latex
    assert "published, other protocol" in latex  # CE inside DivideMix's recipe is not our protocol
    html, _ = make_report(tmp_path, ReportOptions(fmt="html"))
    assert "Published numbers beside ours" in html and "<td>79.4</td>" in html
    bare, board = make_report(tmp_path, ReportOptions(fmt="table", published=False))
    assert board.published == [] and "Published" not in bare


def test_published_values_match_only_the_same_protocol_and_metric(tmp_path: Path) -> None:
    """A published value stands beside ours only for the same dataset, noise convention, metric and protocol;
    everything else of the setting is listed apart as "published, other protocol"."""
    shared, paper = tmp_path / "shared", tmp_path / "paper"
    for seed, v in enumerate([94.0, 94.5, 95.0], 1):
        write_run(shared, "dividemix", "cifar10", "sym-dividemix:0.5", seed, v, protocol="shared")
        write_run(paper, "dividemix", "cifar10", "sym-dividemix:0.5", seed, v, protocol="paper")
    _, board = make_report(shared, ReportOptions(fmt="table", metric="best"))
    assert {p["kind"] for p in board.published} == {"published, other protocol"}
    text, board = make_report(paper, ReportOptions(fmt="table", metric="best"))
    kinds = [(p["kind"], p["metric"], p["value"]) for p in board.published]
    assert kinds == [("published", "best", 94.6), ("published, other protocol", "mean-last", 94.4)]
    assert "Protocol: paper (each method's own published recipe)" in text
    assert "published, other protocol" in text
    _, board = make_report(paper, ReportOptions(fmt="table", metric="val"))  # our metric differs from both
    assert {p["kind"] for p in board.published} == {"published, other protocol"}
    long_csv, _ = make_report(paper, ReportOptions(fmt="csv-long"))
    runs_csv, _ = make_report(paper, ReportOptions(fmt="csv"))
    assert "protocol" in long_csv.splitlines()[0] and ",paper," in long_csv.splitlines()[1]
    assert "protocol" in runs_csv.splitlines()[0] and ",paper," in runs_csv
