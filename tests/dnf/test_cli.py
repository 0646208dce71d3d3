"""``anim4d dnf``: the sub-commands register with one call and fail with clear messages."""

from __future__ import annotations

import argparse

from backend.cli.dnf_cmds import add_dnf_commands, main


def test_one_call_registers_every_command():
    parser = argparse.ArgumentParser(prog="anim4d")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dnf_commands(sub)
    args = parser.parse_args(["dnf", "fit-fields", "--preset", "tiny"])
    assert args.preset == "tiny" and callable(args.func)
    for cmd in (["prepare"], ["evaluate"], ["decode", "--instance", "x", "--out", "o.npz"],
                ["fit-shape", "m.glb"]):
        assert callable(parser.parse_args(["dnf", *cmd]).func)


def test_missing_checkpoint_message(tmp_path, capsys):
    rc = main(["decode", "--checkpoint", str(tmp_path / "ck"), "--instance", "x",
               "--out", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "config.json" in err and "anim4d dnf fit-fields --preset tiny" in err
