"""benchmarks/report.py: the README's speed tables made from one pytest-benchmark JSON file."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

DATA = "synthetic PUBG data (ourdl.datasets.pubg.synthesize): 635,716 rows x 14 columns"


def bench(name, median, **info):
    return {"name": f"test_{name}", "stats": {"median": median},
            "extra_info": {"name": name, "scale": 1.0, **info}}


def fake_run(tmp_path, cpu="Fake CPU 9000", flags=("sse2", "avx2"), predict_numpy=0.050):
    rows = 635_716
    run = {
        "machine_info": {"cpu": {"brand_raw": cpu, "count": 4, "flags": list(flags)}},
        "datetime": "2026-12-03T16:39:37.867704+00:00",
        "benchmarks": [
            bench("ourdl fit", 0.012, rows=rows, data=DATA),
            bench("bare loop", 0.0072, data=DATA),
            bench("reference loop", 0.0045, scale=rows / 20_000, rows=20_000, of=rows),
            bench("mlp16 ourdl", 0.68, scale=1e-6, rows=rows),
            # PyTorch timed on 2,000 rows, 1 thread and default threads: the faster counts
            bench("mlp16 torch, 1 thread", 0.150, scale=1 / 2_000, rows=2_000, of=rows),
            bench("mlp16 torch, default threads", 0.142, scale=1 / 2_000, rows=2_000, of=rows),
            bench("mlp16 predict ourdl", 0.186, rows=500_000),
            bench("mlp16 predict numpy", predict_numpy),
            {"name": "test_not_recorded", "stats": {"median": 1.0}, "extra_info": {}},
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(run))
    return path


SEEN = {"runs": [
    {"cpu": "Machine A", "ratios": {"mlp16 predict: ourdl / numpy": 4.3,
                                    "mlp16: PyTorch eager / ourdl": 104}},
    {"cpu": "Machine B", "ratios": {"mlp16 predict: ourdl / numpy": 0.87,
                                    "mlp16: PyTorch eager / ourdl": 185}},
]}


def lines_with(text, start):
    return [line for line in text.splitlines() if line.startswith(start)]


def test_the_table_shows_medians_and_computes_each_ratio_from_them(tmp_path):
    text = report.table(report.load_run(fake_run(tmp_path)), {"runs": []}, "en")
    assert "on Fake CPU 9000 (AVX2, 4 cores), 2026-12-03" in text
    assert DATA in text
    assert "| **The tutorial's model (13 -> 1), one epoch over 635,716 rows** | | | |" in text
    assert "| `Tape.fit` | 12.0 ms | " in text
    # 12.0 / 7.2 = 1.67, never a figure typed by hand
    assert lines_with(text, "| the same operations in a bare numba loop")[0].startswith(
        "| the same operations in a bare numba loop, nothing else | 7.20 ms | fit takes 1.67x |")


def test_a_peer_timed_on_a_slice_is_shown_per_row_and_says_on_how_many_rows(tmp_path):
    text = report.table(report.load_run(fake_run(tmp_path)), {"runs": []}, "en")
    torch = lines_with(text, "| PyTorch eager, one sample a step")[0]
    # the faster setting, 0.142 s / 2,000 rows = 71 us a row, 71 / 0.68 = 104x
    assert "default threads; measured on 2,000 of 635,716 rows) | 71.0 us | 104x slower |" in torch
    reference = lines_with(text, "| the same loop on `ourdl.reference`")[0]
    assert "(plain Python; measured on 20,000 of 635,716 rows, scaled to all of them) | 143 ms |" \
        in reference
    assert reference.endswith("| 11.9x fit |  |")  # 0.0045 s x 635,716 / 20,000 / 0.012 s


def test_rows_whose_benchmarks_did_not_run_are_left_out_with_their_heading(tmp_path):
    text = report.table(report.load_run(fake_run(tmp_path)), {"runs": []}, "en")
    assert "JAX" not in text and "scikit-learn" not in text and "micrograd" not in text
    assert "General tape" not in text and "ourdl pubg" not in text


def test_the_range_seen_joins_other_machines_and_this_run(tmp_path):
    run = report.load_run(fake_run(tmp_path, predict_numpy=0.031))  # 0.186 / 0.031 = 6.0x
    text = report.table(run, SEEN, "en")
    predict = lines_with(text, "| numpy `tanh(tanh(X @ W1) @ W2) @ W3`")[0]
    assert predict.endswith("| ourdl takes 6.00x | 0.87x-6.00x (3 machines) |")
    torch = lines_with(text, "| PyTorch eager, one sample a step")[0]
    assert torch.endswith("| 104x-185x (3 machines) |")
    # a ratio no other machine measured has no range
    assert lines_with(text, "| the same operations in a bare numba loop")[0].endswith("|  |")


def test_remembering_a_run_replaces_the_older_run_on_the_same_cpu(tmp_path):
    run = report.load_run(fake_run(tmp_path, cpu="Machine A", flags=()))
    assert report.cpu_name(run[2]) == "Machine A (4 cores)"
    seen = report.remember(run, {"runs": [{"cpu": "Machine A (4 cores)", "ratios": {}},
                                          *SEEN["runs"][1:]]})
    assert [r["cpu"] for r in seen["runs"]] == ["Machine B", "Machine A (4 cores)"]
    assert seen["runs"][1] == {"cpu": "Machine A (4 cores)", "date": "2026-12-03", "ratios": {
        "mlp16: PyTorch eager / ourdl": 104.412, "mlp16 predict: ourdl / numpy": 3.72}}


def test_the_chinese_table_says_the_same_in_chinese(tmp_path):
    run = report.load_run(fake_run(tmp_path))
    text = report.table(run, SEEN, "zh")
    assert "机器：Fake CPU 9000 (AVX2, 4 核)，日期：2026-12-03" in text
    assert "数据：合成的 PUBG 数据，635,716 行 x 14 列" in text
    assert "| 同样的运算写成裸 numba 循环，别无其他 | 7.20 ms | fit 用时为它的 1.67 倍 |" in text
    assert "；在 635,716 行中的 2,000 行上测得） | 71.0 us | 慢 104 倍 | 104-185 倍（3 台机器） |" \
        in text
    english = report.table(run, SEEN, "en")
    assert len(text.splitlines()) == len(english.splitlines())


def test_the_table_replaces_only_what_lies_between_the_markers(tmp_path, monkeypatch):
    readmes = {}
    for lang, name in (("en", "README.md"), ("zh", "README.zh-CN.md")):
        readmes[lang] = tmp_path / name
        readmes[lang].write_text(f"# {name}\n\nbefore\n{report.START}\nold table\n{report.END}\n"
                                 f"after\n")
    monkeypatch.setattr(report, "READMES", readmes)
    monkeypatch.setattr(report, "SEEN", tmp_path / "seen.json")
    monkeypatch.setattr(report, "LAST_RUN", tmp_path / "last_run.json")
    assert report.main([str(fake_run(tmp_path))]) == 0
    for path in readmes.values():
        text = path.read_text()
        assert "old table" not in text and "| `Tape.fit` | 12.0 ms |" in text
        assert text.startswith(f"# {path.name}\n\nbefore\n{report.START}\n")
        assert text.endswith(f"\n{report.END}\nafter\n")
    assert not (tmp_path / "seen.json").exists()  # kept only when asked to
    kept = json.loads((tmp_path / "last_run.json").read_text())
    assert kept["machine_info"] == {"cpu": {"brand_raw": "Fake CPU 9000", "count": 4,
                                            "flags": ["avx2"]}}
    assert len(kept["benchmarks"]) == 8  # the one that recorded no name is left out
    assert report.main([str(fake_run(tmp_path)), "--remember"]) == 0
    assert json.loads((tmp_path / "seen.json").read_text())["runs"][0]["cpu"] == \
        "Fake CPU 9000 (AVX2, 4 cores)"


@pytest.mark.parametrize("text", [
    "no markers", f"{report.START}\n", f"{report.END}\n{report.START}",
    f"{report.START}\n{report.END}\n{report.START}\n{report.END}"])
def test_a_readme_without_one_pair_of_markers_is_refused(text):
    with pytest.raises(ValueError, match="README.md needs one <!-- bench:start --> line"):
        report.replace_block(text, "table", "README.md")


def test_a_json_file_without_recorded_benchmarks_is_refused(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": [], "machine_info": {}}))
    with pytest.raises(SystemExit, match="pytest benchmarks --benchmark-json="):
        report.main([str(path)])


def test_both_readmes_show_the_table_the_script_makes_from_the_last_run():
    """No figure in the READMEs' tables is typed by hand: each is what report.py makes from the
    run kept in benchmarks/last_run.json."""
    run, seen = report.load_run(report.LAST_RUN), report.load_seen()
    for lang, path in report.READMES.items():
        text = path.read_text()
        assert report.replace_block(text, report.table(run, seen, lang), path.name) == text


def test_the_seen_ratios_name_rows_of_the_table():
    keys = {row["key"] for row in report.ROWS if row.get("key")}
    for run in report.load_seen()["runs"]:
        assert set(run["ratios"]) <= keys, run["cpu"]
