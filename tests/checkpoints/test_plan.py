"""The pure checkpoint plans: which images are frozen, merged, committed and deleted."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from viridian.checkpoints import (
    CapturedState,
    Checkpoint,
    Commit,
    Image,
    Merge,
    Tree,
    active_images,
    check_name,
    find_checkpoint,
    orphan_files,
    plan_apply,
    plan_delete,
    plan_take,
    slots_needing_overlays,
)
from viridian.errors import InvalidSetting, NotFound
from viridian.model import VMSettings, settings_from_dict, to_dict

BASE = "/disks/base.vhd"


def settings(path: str = BASE, fmt: str = "vpc") -> VMSettings:
    return settings_from_dict({"name": "vm", "ide": [{"controller": 0, "location": 0,
                                                      "kind": "hard_disk", "path": path,
                                                      "format": fmt}],
                               "scsi": []})


def namer() -> Any:
    counter = iter(range(1000))
    return lambda slot, below: f"/cp/{slot}-{next(counter)}.qcow2"


def take(tree: Tree, name: str, conf: VMSettings | None = None,
         names: Any = None) -> Tree:
    conf = conf or settings()
    layers, now = plan_take(tree, conf, names or NAMES)
    cp = Checkpoint(name, name, tree.now_parent, "t", CapturedState.OFF, to_dict(conf), layers,
                    seq=len(tree.checkpoints) + 1)
    return Tree((*tree.checkpoints, cp), cp.id, now)


def apply(tree: Tree, name: str) -> Tree:
    cp = tree.get(name)
    return Tree(tree.checkpoints, cp.id, plan_apply(cp, NAMES))


NAMES = namer()


def test_first_checkpoint_freezes_the_admins_disk_and_now_gets_an_overlay() -> None:
    tree = take(Tree(), "one")
    layer = tree.get("one").disks["ide:0:0"]
    assert layer == Image(BASE, "vpc")  # not owned: never merged away or deleted
    now = tree.now_disks["ide:0:0"]
    assert now.base == BASE and now.image.owned
    assert (now.image.backing, now.image.backing_format) == (BASE, "vpc")
    assert active_images(tree, settings())["ide:0:0"] == now.image


def test_second_checkpoint_freezes_nows_overlay() -> None:
    tree = take(take(Tree(), "one"), "two")
    first_overlay = tree.get("two").disks["ide:0:0"]
    assert first_overlay.owned and first_overlay.backing == BASE
    assert tree.now_disks["ide:0:0"].image.backing == first_overlay.path


def test_deleting_the_middle_merges_into_its_only_dependent() -> None:
    tree = take(take(take(Tree(), "one"), "two"), "three")
    two, three = tree.get("two").disks["ide:0:0"], tree.get("three").disks["ide:0:0"]
    plan = plan_delete(tree, "two", subtree=False)
    assert plan.steps == (Merge(three.path, two.path, BASE, "vpc"),)
    assert plan.files == (two.path,)
    after = plan.tree
    assert [cp.id for cp in after.checkpoints] == ["one", "three"]
    assert after.get("three").parent_id == "one"
    assert after.get("three").disks["ide:0:0"].backing == BASE
    assert after.now_disks == tree.now_disks  # Now did not depend on "two" directly


def test_a_layer_with_branches_is_merged_into_every_branch() -> None:
    tree = take(take(Tree(), "one"), "two")
    tree = take(apply(tree, "two"), "branch")  # two children stand on two's layer
    layer = tree.get("two").disks["ide:0:0"]
    tree = apply(tree, "one")
    dependents = {i.path for cp in tree.checkpoints for i in cp.disks.values()
                  if i.backing == layer.path}
    plan = plan_delete(tree, "two", subtree=False)
    assert {s.target for s in plan.steps if isinstance(s, Merge)} == dependents
    assert len(dependents) == 1  # "branch"'s layer; Now is under "one"
    assert plan.files == (layer.path,)


def test_deleting_the_admins_disk_layer_moves_no_data() -> None:
    tree = take(take(Tree(), "one"), "two")
    plan = plan_delete(tree, "one", subtree=False)
    assert plan.steps == () and plan.files == ()
    assert plan.tree.get("two").parent_id is None


def test_deleting_everything_commits_now_into_the_admins_disk() -> None:
    tree = take(take(take(Tree(), "one"), "two"), "three")
    now = tree.now_disks["ide:0:0"].image
    plan = plan_delete(tree, "one", subtree=True)
    assert [cp.id for cp in plan.removed] == ["one", "two", "three"]
    merges = [s for s in plan.steps if isinstance(s, Merge)]
    assert all(m.target == now.path for m in merges) and len(merges) == 2
    assert plan.steps[-1] == Commit("ide:0:0", now.path, BASE, "vpc")
    assert now.path in plan.files and BASE not in plan.files
    assert plan.tree == Tree((), None, {})


def test_subtree_goes_deepest_first_and_keeps_other_branches() -> None:
    tree = take(take(Tree(), "one"), "two")
    tree = take(apply(tree, "one"), "other")
    plan = plan_delete(tree, "two", subtree=True)
    assert [cp.id for cp in plan.tree.checkpoints] == ["one", "other"]
    assert plan.tree.now_parent == "other"


def test_a_reattached_disk_a_checkpoint_reads_needs_an_overlay() -> None:
    tree = take(Tree(), "one")
    detached = replace(tree, now_disks={})
    assert slots_needing_overlays(detached, settings()) == ["ide:0:0"]
    assert slots_needing_overlays(tree, settings()) == []
    assert slots_needing_overlays(tree, settings("/disks/other.raw", "raw")) == []


def test_orphans_are_files_nothing_refers_to() -> None:
    tree = take(take(Tree(), "one"), "two")
    referenced = [tree.get("two").disks["ide:0:0"].path, tree.now_disks["ide:0:0"].image.path]
    stray = "/cp/leftover.qcow2"
    assert orphan_files([*referenced, stray], tree) == [stray]
    assert orphan_files([stray], tree, keep=[stray]) == []


def test_names_and_lookup() -> None:
    assert check_name("  before upgrade ") == "before upgrade"
    for bad in ("", "   ", "x" * 101, "a\nb"):
        with pytest.raises(InvalidSetting):
            check_name(bad)
    tree = take(Tree(), "one")
    assert find_checkpoint(tree, "vm", "one").id == "one"
    with pytest.raises(NotFound, match="its checkpoints: 'one'"):
        find_checkpoint(tree, "vm", "two")


def test_every_hard_disk_slot_is_frozen_and_media_are_not() -> None:
    conf = settings_from_dict({
        "name": "vm",
        "ide": [{"controller": 0, "location": 0, "kind": "hard_disk", "path": BASE,
                 "format": "vpc"},
                {"controller": 1, "location": 0, "kind": "dvd", "path": "/iso/os.iso",
                 "format": "raw"}],
        "scsi": [{"controller": 2, "disks": [{"location": 5, "path": "/disks/data.qcow2",
                                              "format": "qcow2"}]}]})
    tree = take(Tree(), "one", conf)
    assert tree.get("one").disks == {"ide:0:0": Image(BASE, "vpc"),
                                     "scsi:2:5": Image("/disks/data.qcow2", "qcow2")}
    assert sorted(tree.now_disks) == ["ide:0:0", "scsi:2:5"]
    assert set(apply(tree, "one").now_disks) == {"ide:0:0", "scsi:2:5"}
