"""Fingerprints of scheme 1 (raw source bytes), translated to the current scheme
(noisybench.orchestration.fingerprint_legacy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisybench.config import RunConfig
from noisybench.orchestration import fingerprint_legacy as legacy
from noisybench.orchestration.fingerprint import (
    SCHEME,
    current_digest,
    differences,
    digest,
    fingerprint,
    matches,
    source_hash,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "legacy_store"
RECORDS = [json.loads(p.read_text()) for p in sorted(FIXTURE.glob("store/runs/*/result.json"))]
COMMIT = (FIXTURE / "COMMIT").read_text().split()[-1]


def _git_has(commit: str) -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    return done.returncode == 0


needs_history = pytest.mark.skipif(not _git_has(COMMIT), reason=f"needs a git checkout holding commit {COMMIT[:9]}")


@pytest.mark.parametrize("record", RECORDS, ids=[r["run_id"] for r in RECORDS])
def test_a_scheme_1_record_translates_to_the_fingerprint_the_code_gives_now(record: dict) -> None:
    translated = legacy.translate(record)
    now = fingerprint(RunConfig.from_dict(record["config"]))
    assert translated is not None, "a part of this record is not in the migration table"
    assert differences(translated, now) == [] and translated["scheme"] == SCHEME
    assert current_digest(record) == digest(now) != record["fingerprint_digest"]
    assert matches(record, digest(now)) and matches(record, record["fingerprint_digest"])  # new plan, old plan
    assert not matches(record, "0" * 16) and not matches(None, digest(now))


def test_what_the_table_cannot_translate_stays_stale() -> None:
    record = RECORDS[0]
    for broken in ({**record["fingerprint"], "core": "0" * 16},  # a core state the table does not know
                   {**record["fingerprint"], "method": {**record["fingerprint"]["method"], "source": "0" * 16}},
                   {k: v for k, v in record["fingerprint"].items() if k != "runtime"} | {"device": "cpu"}):  # older
        assert legacy.translate({**record, "fingerprint": broken}) is None
        assert current_digest({**record, "fingerprint": broken}) == record["fingerprint_digest"]
    assert legacy.translate({**record, "fingerprint": {**record["fingerprint"], "scheme": 2}}) is None


@needs_history
def test_the_scheme_1_rules_recreated_from_git_give_the_values_the_old_code_recorded() -> None:
    state = legacy.migration_state(COMMIT, ROOT)
    known = {(e["part"], e["family"], json.dumps(e["legacy"], sort_keys=True)) for e in state["parts"]}
    for record in RECORDS:
        old = record["fingerprint"]
        assert old["core"] == state["core"]["legacy"]
        family = record["config"]["noise"].partition(":")[0]
        for part in legacy.PLUGIN_PARTS:
            assert (part, family if part == "noise" else "", json.dumps(old[part], sort_keys=True)) in known
    table = json.loads(legacy.TABLE.read_text())["states"][state["legacy_commit"]]
    assert table["core"]["legacy"] == state["core"]["legacy"]
    assert [e["legacy"] for e in table["parts"]] == [e["legacy"] for e in state["parts"]]


@needs_history
def test_the_migration_command_is_rerunnable_and_keeps_other_states(tmp_path: Path, capsys) -> None:
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"states": {"f" * 40: {"core": {"legacy": "a", "current": "b"}, "parts": []}}}))
    assert legacy.main(["migrate", "--legacy-commit", COMMIT, "--table", str(table)]) == 0
    first = json.loads(table.read_text())
    assert legacy.main(["migrate", "--legacy-commit", COMMIT, "--table", str(table)]) == 0
    assert json.loads(table.read_text()) == first and set(first["states"]) == {"f" * 40, COMMIT}
    parts = first["states"][COMMIT]["parts"]
    assert len(parts) >= 30 and f"{len(parts)} plugin parts" in capsys.readouterr().out
    assert legacy.main(["migrate", "--legacy-commit", "no-such-commit", "--table", str(table)]) == 2
    legacy.clear_caches()


PLUGIN = '''
import torch.nn.functional as F
from noisybench.method import Method
from noisybench.registry import register_method

@register_method("legacy-plugin")
class LegacyPlugin(Method):
    """A third-party method, fingerprinted under scheme 1 before the upgrade."""

    def training_step(self, ctx, batch, epoch):
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)
'''


def test_a_plugin_outside_the_table_translates_while_its_files_are_unchanged(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nb_legacy_plugin.py"
    path.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nb_legacy_plugin", raising=False)
    part = {"module": "nb_legacy_plugin", "distribution": "", "version": "",
            "source": legacy.legacy_source_hash("nb_legacy_plugin", legacy.installed_bytes)}
    record = {**RECORDS[0], "fingerprint": {**RECORDS[0]["fingerprint"], "method": part}}
    legacy.clear_caches()
    assert legacy.translate(record)["method"] == {**part, "source": source_hash("nb_legacy_plugin")}
    path.write_text(PLUGIN + "# edited since\n")  # scheme 1 cannot tell a comment from code: stale, as before
    legacy.clear_caches()
    assert legacy.translate(record) is None
