"""End to end on one procedural creature: training reduces the losses, every stage decodes,
decoding between frames gives in-between shapes, checkpoints round-trip, new shapes fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from backend.methods.dnf.checkpoint import load_checkpoint, save_checkpoint
from backend.methods.dnf.decode import decode_instance, displace, interpolate_vectors
from backend.methods.dnf.fit_shape import fit_shape_mesh
from backend.methods.dnf.sdf import OpenMeshWarning
from shared.errors import FormatError


def test_training_reduces_the_losses(micro_trained):
    model, _ = micro_trained
    first, last = model.info["initial_losses"], model.info["final_losses"]
    assert first["shape-a"] / last["shape-a"] >= 5.0, (first, last)
    assert first["motion-a"] / last["motion-a"] >= 5.0, (first, last)
    # fine-tuning starts where the MLPs ended and does not get worse
    assert last["shape-b"] <= first["shape-b"] * 1.05


def test_every_stage_decodes_with_constant_topology(micro_trained):
    model, instances = micro_trained
    assert model.stages == ["a", "b", "c", "d"]
    for stage in model.stages:
        seq = decode_instance(model, 0, stage, resolution=24)
        assert seq.frame_count == len(instances[0]["times"])
        assert seq.faces.shape[0] > 50
        assert np.isfinite(seq.vertices).all()


def test_per_instance_counts_shrink_with_compression(micro_trained):
    model, _ = micro_trained
    b, c, d = (model.per_instance_counts(s, 5)["total"] for s in "bcd")
    assert c < b and c < d < b


def test_decoding_between_frames_gives_in_between_shapes(micro_trained):
    model, _ = micro_trained
    inst = model.instances[0]
    ft = np.asarray(inst["times"])
    t_mid = 0.5 * (ft[1] + ft[2])
    seq = decode_instance(model, 0, "d", times=np.array([ft[1], t_mid, ft[2]]), resolution=24)
    m0, mid, m1 = seq.vertices.mean(axis=1)
    assert np.linalg.norm(m1 - m0) > 1e-4, "the creature should move between frames"
    lo, hi = np.minimum(m0, m1), np.maximum(m0, m1)
    tol = 0.25 * np.linalg.norm(m1 - m0)
    assert np.all(mid >= lo - tol) and np.all(mid <= hi + tol)
    assert np.linalg.norm(mid - 0.5 * (m0 + m1)) < 0.5 * np.linalg.norm(m1 - m0)
    per_vertex = np.linalg.norm(seq.vertices[1] - 0.5 * (seq.vertices[0] + seq.vertices[2]),
                                axis=1)
    assert per_vertex.mean() < 0.5 * np.linalg.norm(seq.vertices[2] - seq.vertices[0],
                                                    axis=1).mean() + 1e-6


def test_interpolation_of_codes_is_linear_and_clamped():
    vecs = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 2.0]])
    out = interpolate_vectors(np.array([0.0, 1.0, 2.0]), vecs, np.array([-1.0, 0.25, 1.5, 9.0]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.0], [0.25, 0.5], [2.0, 2.0], [3.0, 2.0]]))


def test_displace_moves_every_vertex_per_requested_frame(micro_trained):
    model, _ = micro_trained
    rep = model.motion_rep("a")
    verts = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 3)).astype(np.float32)
    out = displace(rep, verts, model.shape_vecs["a"][0], model.motion_vecs["a"][0, :2])
    assert out.shape == (2, 10, 3)


def test_checkpoint_round_trip(micro_trained, tmp_path):
    model, _ = micro_trained
    save_checkpoint(model, tmp_path / "ck")
    again = load_checkpoint(tmp_path / "ck")
    assert again.stages == model.stages
    x = torch.rand(1, 50, 3) - 0.5
    for stage in model.stages:
        a = model.shape_rep(stage)(x, model.shape_vecs[stage][:1])
        b = again.shape_rep(stage)(x, again.shape_vecs[stage][:1])
        assert torch.allclose(a, b, atol=1e-6)
        assert again.shape_layout(stage).to_json() == model.shape_layout(stage).to_json()
    assert not list(tmp_path.glob("ck/*.pt")) and not list(tmp_path.glob("ck/*.pkl"))


def test_missing_checkpoint_names_file_place_and_command(tmp_path):
    with pytest.raises(FormatError) as info:
        load_checkpoint(tmp_path / "nowhere")
    msg = str(info.value)
    assert "config.json" in msg and str(tmp_path) in msg
    assert "anim4d dnf fit-fields --preset tiny" in msg


def test_fit_new_shape_reduces_loss(micro_trained):
    model, _ = micro_trained
    box = trimesh.creation.box((0.6, 0.4, 0.9))
    fit = fit_shape_mesh(model, box.vertices, box.faces, "box.obj", iters=60)
    assert fit.loss_after < fit.loss_before
    assert fit.vector.shape == (model.shape_layout("d").size,)


def test_open_mesh_warns_and_still_fits(micro_trained):
    model, _ = micro_trained
    box = trimesh.creation.box((0.6, 0.4, 0.9))
    with pytest.warns(OpenMeshWarning, match="artist-open.obj"):
        fit = fit_shape_mesh(model, box.vertices, box.faces[2:], "artist-open.obj", iters=60)
    assert fit.loss_after < fit.loss_before


def test_mesh_without_faces_cannot_be_fitted(micro_trained):
    model, _ = micro_trained
    with pytest.raises(FormatError, match=r"points\.ply: mesh has no faces"):
        fit_shape_mesh(model, np.zeros((4, 3)), np.zeros((0, 3), np.int32), "points.ply")



def test_codes_stay_frozen_while_the_dictionary_is_fine_tuned(micro_trained):
    model, _ = micro_trained
    code = model.shape_vecs["a"]
    pose = model.motion_vecs["a"]
    for stage in ("b", "c", "d"):
        assert torch.equal(model.shape_code(stage, model.shape_vecs[stage]), code), stage
        mcode = model.motion_layout(stage).get(model.motion_vecs[stage], "code")
        assert torch.equal(mcode, pose), stage
    # while the singular values did move
    init = model.shape_dicts["b"].init_vectors(code, model.shape_layout("b"))
    assert (model.shape_vecs["b"] - init).abs().max() > 1e-3


def test_shape_and_motion_chains_run_apart_give_the_same_model(micro_trained):
    from backend.methods.dnf.pipeline import fit_fields, join_fields

    model, instances = micro_trained
    runs = [fit_fields(model.preset, instances, log=lambda s: None, start=model, fields=(f,))
            for f in ("shape", "motion")]
    joined = join_fields(*runs)
    for stage in ("b", "c", "d"):
        assert torch.equal(joined.shape_vecs[stage], model.shape_vecs[stage]), stage
        assert torch.equal(joined.motion_vecs[stage], model.motion_vecs[stage]), stage
    assert set(joined.info["final_losses"]) >= {"shape-d", "motion-d"}
