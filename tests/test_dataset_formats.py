"""Dataset formats come from plugins, like models: the core reads a folder per class and a path,label
CSV; the video plugins add the Kinetics annotation CSV; a third-party plugin can add its own, and
`zoo eval --format` uses it. Accuracy is checked against the hand count, as in test_eval.py.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fake_dist import write_distribution
from test_eval import GREEN, RED, color_classifier
from zoo_cli import invoke

from modelzoo.core.contract.registry import get_registry, reset_registry
from modelzoo.core.errors import InputError

A, B, C = 1, 217, 208  # air drumming, playing accordion, passing American football (in game)
HEADER = "label,youtube_id,time_start,time_end,split\n"


def mp4_clip(path: Path, rgb: tuple, frames: int = 20) -> Path:
    """A solid-colour clip in the container and codec the Kinetics downloads use."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (96, 72))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(np.full((72, 96, 3), rgb[::-1], np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    """The CVDF layout: k400/annotations/val.csv, clips in k400/val/ (some in label folders, as
    arrange_by_classes.py makes them), and a training copy of one clip's name that must not be used."""
    root = tmp_path_factory.mktemp("kinetics")
    model = color_classifier(
        root / "color.onnx", "video", [3, 16, 112, 112], 400, {A: (10, 0, 0), B: (0, 10, 0), C: (5, 0, 0)}
    )
    k400 = root / "k400"
    (k400 / "annotations").mkdir(parents=True)
    csv = k400 / "annotations" / "val.csv"
    csv.write_text(
        HEADER
        + "air drumming,redAAAAAAAA,10,20,val\n"  # right
        + "air drumming,grnAAAAAAAA,0,10,val\n"  # wrong: B; A is not even in its Top-5
        + "playing accordion,grnBBBBBBB,5.0,15.0,val\n"  # right; whole seconds as the downloader names it
        + '"passing American football (in game)",red-CCCCCCC,30,40,val\n'  # wrong: A, with C second
        + "playing accordion,goneXXXXXXX,1,11,val\n"  # never downloaded: skipped, named
    )
    mp4_clip(k400 / "val" / "air drumming" / "redAAAAAAAA_000010_000020.mp4", RED)
    mp4_clip(k400 / "train" / "redAAAAAAAA_000010_000020.mp4", GREEN)  # same name in another split
    mp4_clip(k400 / "val" / "grnAAAAAAAA_000000_000010.mp4", GREEN)
    mp4_clip(k400 / "val" / "playing_accordion" / "grnBBBBBBB_000005_000015.mp4", GREEN)
    mp4_clip(k400 / "val" / "red-CCCCCCC_000030_000040.mp4", RED)
    return {"root": root, "model": model, "k400": k400, "csv": csv}


def _eval(capsys, *args):
    result = invoke(capsys, "eval", *map(str, args), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_kinetics_csv_gives_the_hand_counted_accuracy_and_names_the_missing_clip(capsys, kinetics):
    report = _eval(capsys, "r3d_18", "--dataset", kinetics["csv"], "--model", kinetics["model"], "--clips", 1)
    assert report["dataset"]["format"] == "kinetics" and report["dataset"]["form"].startswith("Kinetics annotation")
    (result,) = report["results"]
    # 4 evaluated: air drumming 1/2, playing accordion 1/1, passing American football (in game) 0/1
    assert (result["samples"], result["correct"]) == (4, 2)
    assert result["acc@1"] == pytest.approx(100 * 2 / 4, abs=1e-3)
    assert result["acc@5"] == pytest.approx(100 * 3 / 4, abs=1e-3)
    assert result["mean_class_acc"] == pytest.approx(100 * (1 / 2 + 1 + 0) / 3, abs=1e-3)
    (skipped,) = report["protocol"]["skipped"]
    assert Path(skipped["input"]).name == "goneXXXXXXX_000001_000011.mp4"
    assert "not downloaded" in skipped["reason"] and str(kinetics["k400"]) in skipped["reason"]

    records = {}
    target = kinetics["root"] / "predictions.jsonl"
    _eval(capsys, "r3d_18", "--dataset", kinetics["csv"], "--model", kinetics["model"], "--clips", 1, "-o", target)
    for line in target.read_text().splitlines():
        record = json.loads(line)
        records[Path(record["input"]).name] = record
    red_a = records["redAAAAAAAA_000010_000020.mp4"]
    assert "val" in Path(red_a["input"]).parts  # the validation clip, not the training copy of that name
    assert red_a["predictions"]["fp32 onnxruntime"]["correct"] is True


def test_the_dataset_folder_finds_its_one_annotation_csv(capsys, kinetics):
    report = _eval(capsys, "r3d_18", "--dataset", kinetics["k400"], "--model", kinetics["model"], "--clips", 1)
    assert report["dataset"]["format"] == "kinetics" and report["results"][0]["correct"] == 2


def test_a_folder_with_several_annotation_csvs_asks_for_one(capsys, kinetics, tmp_path):
    (tmp_path / "annotations").mkdir()
    for split in ("train", "val"):
        (tmp_path / "annotations" / f"{split}.csv").write_text(HEADER + "air drumming,redAAAAAAAA,10,20,val\n")
    invoke(capsys, "eval", "r3d_18", "--dataset", tmp_path, "--model", kinetics["model"]).assert_user_error(
        "2 Kinetics annotation CSVs", "annotations/train.csv", "annotations/val.csv", "--format folders"
    )


def test_labels_of_the_kinetics_csv_are_checked_before_any_work(capsys, tmp_path):
    listing = tmp_path / "val.csv"
    listing.write_text(
        HEADER
        + "air drums,aaaaaaaaaaa,0,10,val\n"
        + "zzz,bbbbbbbbbbb,0,10,val\n"
        + "zzz,ccccccccccc,0,10,val\n"
        + "air drumming,ddddddddddd,0,10,val\n"
    )
    # no clip exists and --model does not: the labels are checked first, and every unknown one is named
    result = invoke(capsys, "eval", "r3d_18", "--dataset", listing, "--model", tmp_path / "missing.onnx")
    line = result.assert_user_error("2 label(s)", "'air drums' (line 2)", "'zzz' (line 3, and 1 more)")
    assert "did you mean 'air drumming'" in line


def test_a_malformed_kinetics_row_is_named(capsys, tmp_path):
    listing = tmp_path / "val.csv"
    listing.write_text(HEADER + "air drumming,aaaaaaaaaaa,20,10,val\nair drumming,a/../b,0,10,val\n")
    invoke(capsys, "eval", "r3d_18", "--dataset", listing).assert_user_error("line(s) 2, 3")


def test_clip_names_follow_the_download_tools():
    from modelzoo.models.video_resnet.kinetics_annotations import CLIP_NAME, clip_stem

    assert clip_stem("--33Lscn6sk", 4, 14) == "--33Lscn6sk_000004_000014"
    assert clip_stem("abcdefghijk", 12.9, 1234567) == "abcdefghijk_000012_1234567"  # %06d truncates, never pads less
    assert CLIP_NAME.match("--33Lscn6sk_000004_000014") and not CLIP_NAME.match("--33Lscn6sk")


def test_finding_clips_stops_at_a_bound_on_the_files_looked_at(tmp_path):
    from modelzoo.models.video_resnet.kinetics_annotations import clip_index

    for index in range(6):
        (tmp_path / "deep" / f"d{index}").mkdir(parents=True)
        (tmp_path / "deep" / f"d{index}" / f"abcdefghijk_{index:06d}_{index + 10:06d}.mp4").write_bytes(b"")
    assert len(clip_index(tmp_path, frozenset({".mp4"}), most=100)) == 6
    with pytest.raises(InputError, match="more than 5 files and folders under"):
        clip_index(tmp_path, frozenset({".mp4"}), most=5)


def test_the_generic_forms_and_the_video_plugins_register_formats(capsys):
    plugins = {p["name"]: p for p in json.loads(invoke(capsys, "plugins", "--json").out)}
    assert plugins["modelzoo.core.builtin"]["dataset_formats"] == ["csv", "folders"]
    family = ("mc3_18", "r2plus1d_18", "r3d_18")
    assert all("zoo_register_dataset_formats" in plugins[name]["hooks"] for name in family)
    # each registers it, so any one of them installed brings it; the first registration is kept
    assert [plugins[name]["dataset_formats"] for name in family] == [["kinetics"], [], []]
    assert plugins["resnet18"]["dataset_formats"] == []


def test_the_kinetics_format_comes_with_any_video_plugin_and_only_with_them(monkeypatch):
    for plugins, formats in (("resnet18", ["csv", "folders"]), ("r3d_18", ["csv", "folders", "kinetics"])):
        monkeypatch.setenv("ZOO_PLUGINS", plugins)
        reset_registry()
        try:
            registry = get_registry()
            assert sorted(registry.dataset_formats) == formats
        finally:
            reset_registry()
    assert registry.dataset_formats["kinetics"].plugin == "r3d_18"


def test_an_unknown_format_lists_the_installed_ones(capsys, kinetics):
    invoke(capsys, "eval", "r3d_18", "--dataset", kinetics["csv"], "--format", "imagenet").assert_user_error(
        "unknown dataset format 'imagenet'", "csv, folders, kinetics"
    )


def test_the_generic_csv_can_be_chosen_for_a_kinetics_csv(capsys, kinetics):
    # read as path,label, its first column is a label and its second not a label: both are named
    invoke(capsys, "eval", "r3d_18", "--dataset", kinetics["csv"], "--format", "csv").assert_user_error(
        "label(s) in", "'redAAAAAAAA' (line 2)"
    )


# -- bounds -----------------------------------------------------------------------------------------------


def test_annotation_csvs_are_bounded(tmp_path):
    from modelzoo.plugin import csv_rows

    listing = tmp_path / "list.csv"
    listing.write_text("a,1\n" * 5)
    assert [number for number, _ in csv_rows(listing)] == [1, 2, 3, 4, 5]
    with pytest.raises(InputError, match="more than 4 rows"):
        list(csv_rows(listing, max_rows=4))
    with pytest.raises(InputError, match="more than an annotation CSV may be"):
        list(csv_rows(listing, max_bytes=10))
    listing.write_text("a,1\n" + "b" * 100 + ",2\n")
    with pytest.raises(InputError, match="line 2 is longer than 50 characters"):
        list(csv_rows(listing, max_line=50))


def test_a_huge_line_is_refused_through_the_cli(capsys, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + "x" * 20_000 + ",air drumming\n")
    invoke(capsys, "eval", "r3d_18", "--dataset", listing).assert_user_error("line 2 is longer than 8192")


# -- a third-party format ----------------------------------------------------------------------------------

TSV_PLUGIN = """
from pathlib import Path

from modelzoo.plugin import DatasetEntry, DatasetFormat, DatasetListing, InputError, csv_rows, hookimpl

ZOO_HOOKSPEC_VERSION = 2


class LabelledList(DatasetFormat):
    '''A `.list` file: `label<TAB>file` per line, files relative to it.'''

    name = "tab-list"
    description = "tab-separated label and file"

    def recognizes(self, path):
        return path.suffix == ".list"

    def read(self, path, suffixes):
        listing = DatasetListing(labels_from=f"label(s) in {path}")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            label, _, file = line.partition("\\t")
            if {KIND!r} == "buggy":
                raise KeyError(label)
            listing.entries.append(DatasetEntry(path.parent / file, label, f"line {number}"))
        return listing


@hookimpl
def zoo_register_dataset_formats(register):
    register({REGISTERED})
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for hand-made plugin distributions, and a fresh registry."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    before = set(sys.modules)
    reset_registry()
    yield folder
    reset_registry()
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


def install_format(site: Path, kind: str = "good", registered: str = "LabelledList()", extra: str = "") -> None:
    body = textwrap.dedent(TSV_PLUGIN).replace("{KIND!r}", repr(kind)).replace("{REGISTERED}", registered) + extra
    write_distribution(site, "zoo-tab-list", "0.2", {"tablist": "zoo_tab_list"}, {"zoo_tab_list/__init__.py": body})


def test_a_plugin_adds_a_format_that_zoo_eval_uses(site, capsys, kinetics, tmp_path):
    install_format(site)
    clips = kinetics["k400"] / "val"
    listing = tmp_path / "set.list"
    listing.write_text(
        f"Air_Drumming\t{clips / 'air drumming' / 'redAAAAAAAA_000010_000020.mp4'}\n"
        f"air drumming\t{clips / 'grnAAAAAAAA_000000_000010.mp4'}\n"
        f"{C}\t{clips / 'red-CCCCCCC_000030_000040.mp4'}\n"  # a class number
        f"playing accordion\tnot-here.mp4\n"
    )
    args = ["r3d_18", "--dataset", listing, "--model", kinetics["model"], "--clips", 1]
    for chosen in (["--format", "tab-list"], []):  # named, or recognised from the path
        report = _eval(capsys, *args, *chosen)
        assert report["dataset"]["format"] == "tab-list" and report["dataset"]["form"] == "tab-separated label and file"
        (result,) = report["results"]
        assert (result["samples"], result["correct"]) == (3, 1)
        assert result["acc@5"] == pytest.approx(100 * 2 / 3, abs=1e-3)
        assert [(Path(s["input"]).name, s["reason"]) for s in report["protocol"]["skipped"]] == [
            ("not-here.mp4", "does not exist")
        ]
    info = {p["name"]: p for p in json.loads(invoke(capsys, "plugins", "--json").out)}["tablist"]
    assert info["error"] is None and info["dataset_formats"] == ["tab-list"]
    assert info["hooks"] == ["zoo_register_dataset_formats"]


def test_a_bug_in_a_plugins_format_is_blamed_on_it(site, capsys, tmp_path):
    install_format(site, kind="buggy")
    listing = tmp_path / "set.list"
    listing.write_text("air drumming\tx.mp4\n")
    line = invoke(capsys, "eval", "r3d_18", "--dataset", listing).assert_user_error("plugin 'tablist'", "KeyError")
    assert "reading --dataset as tab-list" in line


@pytest.mark.parametrize(
    ("registered", "extra", "problem"),
    [
        ("object()", "", "not a DatasetFormat"),
        ("Named()", "\n\nclass Named(LabelledList):\n    name = 'Tab List'\n", "not lowercase words joined by hyphens"),
        (
            "Lazy()",
            "\n\nclass Lazy(DatasetFormat):\n    name = 'lazy'\n    description = 'x'\n",
            "does not implement read",
        ),
    ],
)
def test_a_bad_format_keeps_the_whole_plugin_out(site, capsys, registered, extra, problem):
    install_format(site, registered=registered, extra=extra)
    info = {p["name"]: p for p in json.loads(invoke(capsys, "plugins", "--json").out)}["tablist"]
    assert problem in info["error"] and info["dataset_formats"] == []
    assert "tab-list" not in get_registry().dataset_formats


@pytest.mark.parametrize("text", ["", "path,label\n", HEADER])
def test_a_csv_listing_nothing_says_so(capsys, kinetics, tmp_path, text):
    """It said the CSV "holds no input files this model takes (.3gp, .avi, ...)", as for a folder."""
    listing = tmp_path / "val.csv"
    listing.write_text(text)
    result = invoke(capsys, "eval", "r3d_18", "--dataset", listing, "--model", kinetics["model"])
    line = result.assert_user_error(str(listing), "lists no inputs")
    assert ".avi" not in line


def test_a_csv_row_naming_a_folder_is_skipped_as_a_folder_not_as_missing(capsys, kinetics, tmp_path):
    clip = kinetics["k400"] / "val" / "grnAAAAAAAA_000000_000010.mp4"
    listing = tmp_path / "val.csv"
    listing.write_text(f"path,label\n{clip},playing accordion\n{kinetics['k400'] / 'val'},air drumming\n")
    report = _eval(capsys, "r3d_18", "--dataset", listing, "--model", kinetics["model"], "--clips", 1)
    assert report["results"][0]["samples"] == 1
    assert report["protocol"]["skipped"] == [
        {"input": str(kinetics["k400"] / "val"), "reason": "is a folder, not an input file"}
    ]
