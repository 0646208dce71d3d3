"""The batch's planning and index, without a backend or Blender."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from backend.batch.index import BatchEntry, write_index
from backend.batch.plan import parse_seeds, plan_batch
from shared.errors import ParamError
from shared.params import InputSpec, KindSpec, ParamSpec

SEEDED = KindSpec(name="x.seeded", title="Seeded", description="", representation="mesh_sequence",
                  params=(
    ParamSpec("seed", "int", 0, "seed", 0, 1000), ParamSpec("frames", "int", 4, "frames", 1, 9)))
FILES = KindSpec(name="x.files", title="Files", description="", representation="mesh_sequence",
                 params=(ParamSpec("fps", "float", 24.0, "fps"),),
                 inputs=(InputSpec("source", (".glb",), "a clip"),))


@pytest.mark.parametrize("text, seeds", [("1..4", [1, 2, 3, 4]), ("3,7,11", [3, 7, 11]),
                                         ("1..3,10,2", [1, 2, 3, 10]), (" 5 ", [5])])
def test_seeds_are_ranges_lists_or_both(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, says", [("4..1", "runs backwards"), ("a", "'a' is neither"),
                                        ("1..2,x..3", "'x..3' is neither"),
                                        ("0..99999", "more than a batch takes")])
def test_bad_seeds_are_named(text, says):
    with pytest.raises(ParamError, match=says):
        parse_seeds(text)


def test_items_are_seed_by_input_named_in_order_and_remade_by_one_command(tmp_path):
    clips = []
    for name in ("b clip", "a"):
        (tmp_path / f"{name}.glb").write_bytes(b"x")
        clips.append(str(tmp_path / f"{name}.glb"))
    spec = KindSpec(name="x.both", title="Both", description="", representation="mesh_sequence",
                    params=SEEDED.params, inputs=FILES.inputs)
    items = plan_batch(spec, {"frames": "3"}, [5, 6], clips)
    assert [i.name for i in items] == ["1-seed5-b_clip", "2-seed5-a", "3-seed6-b_clip",
                                       "4-seed6-a"]
    assert items[2].params == {"frames": "3", "seed": "6"}
    assert items[2].inputs == (str(Path(clips[0]).resolve()),)
    words = shlex.split(items[2].remake_command())
    assert words[:3] == ["anim4d", "submit", "x.both"]
    assert words[words.index("--input") + 1] == str(Path(clips[0]).resolve())
    assert "seed=6" in words and "frames=3" in words
    ten = plan_batch(SEEDED, {}, list(range(10)), None)
    assert ten[0].name == "01-seed0" and ten[9].name == "10-seed9"  # folders sort in order


@pytest.mark.parametrize("spec, params, seeds, inputs, says", [
    (FILES, {}, [1], ["f.glb"], "has no seed parameter"),
    (SEEDED, {"seed": "3"}, [1], None, "not both"),
    (SEEDED, {}, [1], ["f.glb"], "takes no input file"),
    (FILES, {}, None, None, "needs an input file"),
    (FILES, {}, None, ["missing.glb"], "missing.glb is not a file"),
])
def test_a_batch_that_cannot_run_says_why(spec, params, seeds, inputs, says):
    with pytest.raises(ParamError, match=says):
        plan_batch(spec, params, seeds, inputs)



def test_index_json_and_contact_sheet_name_every_item_with_relative_files(tmp_path,
                                                                         html_links):
    items = plan_batch(SEEDED, {"frames": "2"}, [1, 2], None)
    ok, bad = (BatchEntry.for_item(i) for i in items)
    ok.state, ok.result, ok.video, ok.still = "done", "results/1-seed1", "renders/a.mp4", "s.png"
    bad.state, bad.error = "failed", "bad_param: <oops> & more"
    json_path, html_path = write_index(tmp_path, "x.seeded", [ok, bad], {"resolution": 32})
    doc = json.loads(json_path.read_text())
    assert (doc["done"], doc["total"], doc["render"]) == (1, 2, {"resolution": 32})
    assert [i["name"] for i in doc["items"]] == ["1-seed1", "2-seed2"]
    assert doc["items"][1]["error"] == "bad_param: <oops> & more"
    assert "seed=2" in doc["items"][1]["remake"]
    page = html_path.read_text()
    assert html_links(page) == ["renders/a.mp4", "s.png", "results/1-seed1"]
    assert "&lt;oops&gt; &amp; more" in page and "<oops>" not in page
    assert "1 of 2 done" in page
