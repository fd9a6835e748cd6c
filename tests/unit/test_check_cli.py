"""`edgeopt check` and `edgeopt report` through the CLI: exit codes, outputs, bad input, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from sample_report import make_report, scale_latency

from edgeopt.cli import cli
from edgeopt.regress import baseline_json


@pytest.fixture
def files(tmp_path):
    report = make_report()
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "baseline.json").write_text(baseline_json(report))
    slow = make_report()
    scale_latency(slow["variants"][3]["latency"]["local"], 1.3)
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_check_passes_with_exit_0(files):
    result = run("check", files / "report.json", "--baseline", files / "baseline.json")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output


def test_check_prints_its_summary_once(files):
    result = run("check", files / "slow.json", "--baseline", files / "baseline.json")
    assert result.exit_code == 1
    assert result.output.count("edgeopt check digits_cnn: FAILED") == 1
    as_json = run("check", files / "slow.json", "--baseline", files / "baseline.json", "--json")
    assert as_json.stderr.count("edgeopt check digits_cnn: FAILED") == 1
    assert json.loads(as_json.stdout)["passed"] is False  # stdout holds the document only


def test_check_regression_exit_1_with_junit_and_markdown(files):
    junit, md = files / "out" / "junit.xml", files / "summary.md"
    result = run("check", files / "slow.json", "--baseline", files / "baseline.json",
                 "--junit", junit, "--markdown", md)
    assert result.exit_code == 1
    failed = ET.parse(junit).getroot().findall(".//testcase[failure]")
    assert [c.get("name") for c in failed] == ["latency@local"]
    assert md.read_text().startswith("### ❌ edgeopt check digits_cnn: FAILED")


def test_check_json_document(files):
    result = run("check", files / "slow.json", "--baseline", files / "baseline.json", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["exit_code"] == 1 and doc["passed"] is False
    assert any(f["status"] == "regression" and f["check"] == "latency" for f in doc["findings"])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{corrupt", "not valid report JSON"),
        (json.dumps({**make_report(), "schema_version": 7}), "schema_version 7 is not supported"),
        (baseline_json(make_report("regression")), "baseline is for name 'facepose_mlp'"),
        ('{"schema_version": 1, "variants": [{"name": "x", "p50_ms": Infinity}]}', "Infinity is not valid"),
    ],
)
def test_bad_baseline_is_one_line_exit_2(files, content, fragment):
    (files / "bad.json").write_text(content)
    result = run("check", files / "report.json", "--baseline", files / "bad.json")
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_missing_files_and_bad_tolerances_exit_2(files):
    assert run("check", files / "nope.json", "--baseline", files / "baseline.json").exit_code == 2
    missing = run("check", files / "report.json", "--baseline", files / "none.json")
    assert missing.exit_code == 2 and "--update-baseline" in missing.stderr
    (files / "tol.yaml").write_text("latency_ratio_rel: fast\n")
    bad_tol = run("check", files / "report.json", "--baseline", files / "baseline.json",
                  "--tolerances", files / "tol.yaml")
    assert bad_tol.exit_code == 2 and "latency_ratio_rel" in bad_tol.stderr


def test_unwritable_output_is_environment_exit_3(files):
    (files / "blocker").write_text("a file, not a folder")
    result = run("check", files / "report.json", "--baseline", files / "baseline.json",
                 "--junit", files / "blocker" / "junit.xml")
    assert result.exit_code == 3


def test_update_baseline_accepts_and_says_so(files):
    result = run("check", files / "slow.json", "--baseline", files / "baseline.json", "--update-baseline",
                 "--json")
    assert result.exit_code == 0
    assert "accepted 1 regressions" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 0 and doc["passed"] is False
    assert doc["baseline_updated"] == str(files / "baseline.json")
    assert json.loads((files / "baseline.json").read_text())["variants"][3]["latency"]["local"]["p50_ms"] == \
        pytest.approx(0.021 * 1.3)
    assert run("check", files / "slow.json", "--baseline", files / "baseline.json").exit_code == 0


def test_update_baseline_creates_a_missing_one_but_refuses_a_failing_report(files):
    new = files / "models" / "digits_cnn" / "baseline.json"
    assert run("check", files / "report.json", "--baseline", new, "--update-baseline").exit_code == 0
    assert new.is_file()
    failing = make_report()
    failing["recipe"]["budgets"] = {"max_size_kb": 1}
    (files / "failing.json").write_text(json.dumps(failing))
    before = new.read_text()
    result = run("check", files / "failing.json", "--baseline", new, "--update-baseline")
    assert result.exit_code == 1 and "not updating" in result.stderr
    assert new.read_text() == before


def test_report_command_formats_and_overwrite(files):
    table = run("report", files / "report.json")
    assert table.exit_code == 0 and "trained_float32" in table.stdout
    md = run("report", files / "report.json", "--format", "md")
    assert md.stdout.startswith("### ✅ edgeopt: digits_cnn")
    out = files / "r.md"
    assert run("report", files / "report.json", "--format", "md", "--out", out).exit_code == 0
    again = run("report", files / "report.json", "--format", "md", "--out", out)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert run("report", files / "report.json", "--format", "md", "--out", out, "--overwrite").exit_code == 0
    assert run("report", files / "missing.json").exit_code == 2


def test_check_and_report_do_not_import_tensorflow(files):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom edgeopt.cli import cli\n"
        f"a = CliRunner().invoke(cli, ['check', r'{files / 'slow.json'}', '--baseline', "
        f"r'{files / 'baseline.json'}'])\n"
        f"b = CliRunner().invoke(cli, ['report', r'{files / 'report.json'}', '--format', 'md'])\n"
        "print(a.exit_code, b.exit_code, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "0", "False"]
