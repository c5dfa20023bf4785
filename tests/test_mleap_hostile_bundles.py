"""mleap_bridge: hostile bundles are refused when loaded, with an error naming what is wrong.

Bundles are real ones (written by ``write_bundle`` or by MLeap, ``tests/fixtures/mleap/``)
corrupted in ``tmp_path``: paths out of the bundle, links, zip bombs, declared sizes that
would allocate terabytes, files that are not zips, and node folders that do not parse.
"""

import json
import re
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest

import mleap_bridge
from mleap_bridge import Bundle, Node
from mleap_bridge import attributes as A
from spark_models.exceptions import MalformedModelError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mleap"
FOREST = FIXTURES / "airbnb.model.rf.zip"  # MLeap 0.8: feature pipeline → random forest of 20 trees
FOREST_NODE = "root/rfr_5af14f58ae5f.node"
HUGE = 10**13
LIMIT = 1 << 24  # SPARK_MODELS_MAX_VECTOR_SIZE's default


def _binarizer(name: str = "bin") -> Node:
    return Node(name, "binarizer", {"threshold": A.scalar("double", 0.5)}, [("input", "x")], [("output", f"{name}_y")])


def _dir_bundle(path: Path, *children: Node) -> Path:
    """A directory bundle: a pipeline ``p`` of ``children`` (a binarizer by default)."""
    root = Node("p", "pipeline", children=list(children) or [_binarizer()])
    return mleap_bridge.write_bundle(Bundle(root, "p"), path)


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return archive


def _edit(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _forest_dir(tmp_path: Path) -> Path:
    target = tmp_path / "forest"
    with zipfile.ZipFile(FOREST) as zf:
        zf.extractall(target)
    return target


# ---- 1. pipeline children and tree files must stay inside the bundle -------------------

@pytest.mark.parametrize("escape", ["relative", "absolute"])
def test_child_node_outside_the_bundle_is_refused(tmp_path, escape):
    bundle = _dir_bundle(tmp_path / "b")
    outside = tmp_path / "outside.node"  # a valid node folder next to (not inside) the bundle
    shutil.copytree(bundle / "root" / "bin.node", outside)
    child = "../../outside" if escape == "relative" else str(tmp_path / "outside")
    _edit(bundle / "root" / "model.json", lambda m: m["attributes"]["nodes"]["string"].append(child))
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(bundle))}.*lists child {re.escape(repr(child))}"):
        mleap_bridge.load_bundle(bundle)


def test_child_path_in_a_zip_bundle_is_refused(tmp_path):
    bundle = _dir_bundle(tmp_path / "b")
    shutil.copytree(bundle / "root" / "bin.node", tmp_path / "outside.node")
    _edit(bundle / "root" / "model.json",
          lambda m: m["attributes"]["nodes"]["string"].append(str(tmp_path / "outside")))
    archive = _zip(bundle, tmp_path / "b.zip")
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*lists child .*outside'"):
        mleap_bridge.load_bundle(archive)


def test_child_listed_twice_is_refused(tmp_path):
    bundle = _dir_bundle(tmp_path / "b")
    _edit(bundle / "root" / "model.json", lambda m: m["attributes"]["nodes"]["string"].append("bin"))
    with pytest.raises(MalformedModelError, match=r"lists child 'bin' in 'nodes' more than once"):
        mleap_bridge.load_bundle(bundle)


def test_tree_name_that_is_a_path_is_refused(tmp_path):
    forest = _forest_dir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(forest / FOREST_NODE / "tree0" / "tree.json", tmp_path / "elsewhere" / "tree.json")
    _edit(forest / FOREST_NODE / "model.json",
          lambda m: m["attributes"]["trees"]["string"].__setitem__(0, "../../../elsewhere"))
    with pytest.raises(MalformedModelError, match=r"'rfr_5af14f58ae5f'.*tree '\.\./\.\./\.\./elsewhere' in 'trees'"):
        mleap_bridge.load_bundle(forest)


def test_missing_tree_file_names_node_and_file(tmp_path):
    forest = _forest_dir(tmp_path)
    (forest / FOREST_NODE / "tree3" / "tree.json").unlink()
    with pytest.raises(MalformedModelError, match=r"'rfr_5af14f58ae5f'.*has no file 'tree3/tree\.json'"):
        mleap_bridge.load_bundle(forest)


# ---- 2. no symbolic links in a directory bundle ----------------------------------------

def _link_model_json(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "outside-model.json"  # valid JSON, so only the link itself is wrong
    shutil.copy(bundle / "root" / "bin.node" / "model.json", target)
    link = bundle / "root" / "bin.node" / "model.json"
    link.unlink()
    link.symlink_to(target)
    return link


def _link_etc_passwd(bundle: Path, tmp_path: Path) -> Path:
    link = bundle / "root" / "bin.node" / "notes.txt"  # would be read into Node.files
    link.symlink_to("/etc/passwd")
    return link


def _link_node_folder(bundle: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "outside.node"
    shutil.move(bundle / "root" / "bin.node", outside)
    link = bundle / "root" / "bin.node"
    link.symlink_to(outside, target_is_directory=True)
    return link


def _link_inside(bundle: Path, tmp_path: Path) -> Path:
    link = bundle / "root" / "bin.node" / "copy.json"  # points inside the bundle: refused all the same
    link.symlink_to(bundle / "root" / "model.json")
    return link


@pytest.mark.parametrize("make_link", [_link_model_json, _link_etc_passwd, _link_node_folder, _link_inside])
def test_symbolic_links_in_a_directory_bundle_are_refused(tmp_path, make_link):
    bundle = _dir_bundle(tmp_path / "b")
    link = make_link(bundle, tmp_path)
    rel = link.relative_to(bundle).as_posix()
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(bundle))}.*{re.escape(rel)} is a symbolic link"):
        mleap_bridge.load_bundle(bundle)


def test_link_to_a_tree_file_outside_is_refused(tmp_path):
    forest = _forest_dir(tmp_path)
    tree = forest / FOREST_NODE / "tree7" / "tree.json"
    shutil.move(tree, tmp_path / "stolen-tree.json")
    tree.symlink_to(tmp_path / "stolen-tree.json")
    with pytest.raises(MalformedModelError, match=rf"{FOREST_NODE}/tree7/tree\.json is a symbolic link"):
        mleap_bridge.load_bundle(forest)


def test_symlink_entry_in_a_zip_is_refused(tmp_path):
    archive = _zip(_dir_bundle(tmp_path / "b"), tmp_path / "b.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("root/bin.node/notes.txt")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(MalformedModelError, match=r"'root/bin\.node/notes\.txt': it is a symbolic link"):
        mleap_bridge.load_bundle(archive)


# ---- 3. zip archives: entry count and uncompressed size are capped ---------------------

def test_zip_bomb_is_refused_before_extraction(tmp_path, monkeypatch):
    archive = _zip(_dir_bundle(tmp_path / "b"), tmp_path / "bomb.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("root/bin.node/padding.bin", bytes(20_000_000))  # 20 MB of zeros, ~20 KB compressed
    assert archive.stat().st_size < 100_000
    with zipfile.ZipFile(archive) as zf:
        declared = sum(i.file_size for i in zf.infolist())
    monkeypatch.setenv("SPARK_MODELS_MAX_ARCHIVE_BYTES", "1000000")
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*declares {declared} bytes.*"
                                                  r"limit of 1000000 bytes.*SPARK_MODELS_MAX_ARCHIVE_BYTES"):
        mleap_bridge.load_bundle(archive)


def test_zip_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    archive = _zip(_dir_bundle(tmp_path / "b"), tmp_path / "many.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        for i in range(60):
            zf.writestr(f"root/bin.node/extra{i}.txt", "")
        count = len(zf.infolist())
    monkeypatch.setenv("SPARK_MODELS_MAX_ARCHIVE_ENTRIES", "50")
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*holds {count} entries.*limit of 50 "
                                                  r"entries.*SPARK_MODELS_MAX_ARCHIVE_ENTRIES"):
        mleap_bridge.load_bundle(archive)


def _lie_about_size(archive: Path, member: str, size: int) -> None:
    """Patch the local and central headers of ``member`` to declare ``size`` uncompressed bytes."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        local = zf.getinfo(member).header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, size)
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))


def test_zip_entry_lying_about_its_size_is_refused(tmp_path, monkeypatch):
    archive = _zip(_dir_bundle(tmp_path / "b"), tmp_path / "liar.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("root/bin.node/padding.bin", bytes(5_000_000))
    _lie_about_size(archive, "root/bin.node/padding.bin", 100)  # declared: 100 bytes; inflates to 5 MB
    monkeypatch.setenv("SPARK_MODELS_MAX_ARCHIVE_BYTES", "1000000")
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*'root/bin\.node/padding\.bin'"):
        mleap_bridge.load_bundle(archive)


def test_damaged_zip_entry_names_archive_and_entry(tmp_path):
    archive = _zip(_dir_bundle(tmp_path / "b"), tmp_path / "damaged.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("root/bin.node/model.json")
    start = info.header_offset + 30 + len(info.filename.encode())  # the compressed bytes
    data[start:start + info.compress_size] = bytes(info.compress_size)
    archive.write_bytes(bytes(data))
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*'root/bin\.node/model\.json'"):
        mleap_bridge.load_bundle(archive)


# ---- 4. declared sizes are checked when the bundle is loaded ---------------------------

def _pca_components() -> dict:
    dimensions = [{"size": 0, "name": ""}, {"size": HUGE, "name": ""}]  # 0 values, so the shape "agrees"
    return {"type": "tensor", "double": [], "shape": {"dimensions": dimensions}}


_OVERSIZED = [  # (node, attribute as named in the error, value)
    (Node("ohe", "one_hot_encoder", {"size": A.scalar("long", HUGE), "drop_last": A.scalar("boolean", True)},
          [("input", "i")], [("output", "o")]), "size", HUGE),
    (Node("ohe", "one_hot_encoder",
          {"category_sizes": A.listed("int", [3, HUGE]), "drop_last": A.scalar("boolean", False)},
          [("input0", "i"), ("input1", "j")], [("output0", "o"), ("output1", "q")]), "category_sizes[1]", HUGE),
    (Node("htf", "hashing_term_frequency",
          {"num_features": A.scalar("long", 2**40), "binary": A.scalar("boolean", False)},
          [("input", "words")], [("output", "tf")]), "num_features", 2**40),
    (Node("va", "vector_assembler", {"input_shapes": {"type": "list", "data_shape": [
        {"base": "scalar", "isNullable": True},
        {"base": "tensor", "isNullable": True, "tensorShape": {"dimensions": [{"size": 10**9, "name": ""}]}}]}},
        [("input0", "a"), ("input1", "v")], [("output", "features")]), "input_shapes[1] size", 10**9),
    (Node("pca", "pca", {"principal_components": _pca_components()}, [("input", "v")], [("output", "pcs")]),
     "principal_components (dimension 1)", HUGE),
    (Node("nb", "naive_bayes", {"num_classes": A.scalar("long", HUGE), "pi": A.tensor([0.5, 0.5]),
                                "theta": A.matrix_tensor([[0.1, 0.2], [0.3, 0.4]])},
          [("features", "v")], [("prediction", "p")]), "num_classes", HUGE),
]


@pytest.mark.parametrize("node,attribute,value", _OVERSIZED, ids=[f"{n.op}-{a}" for n, a, _ in _OVERSIZED])
def test_oversized_declared_sizes_are_refused_at_load(tmp_path, node, attribute, value):
    bundle = _dir_bundle(tmp_path / "b", node)
    with pytest.raises(MalformedModelError, match=rf"'{node.name}'.*'{re.escape(attribute)}' is {value}, over the "
                                                  rf"limit of {LIMIT}.*SPARK_MODELS_MAX_VECTOR_SIZE"):
        mleap_bridge.load_bundle(bundle)


def test_oversized_tree_num_features_is_refused(tmp_path):
    forest = _forest_dir(tmp_path)
    _edit(forest / FOREST_NODE / "model.json", lambda m: m["attributes"].update(num_features={"long": HUGE}))
    with pytest.raises(MalformedModelError, match=rf"'rfr_5af14f58ae5f'.*'num_features' is {HUGE}.*limit of {LIMIT}"):
        mleap_bridge.load_bundle(forest)


def test_count_vectorizer_vocabulary_over_the_limit(tmp_path, monkeypatch):
    node = Node("cv", "count_vectorizer", {"vocabulary": A.listed("string", [f"w{i}" for i in range(101)])},
                [("input", "words")], [("output", "counts")])
    bundle = _dir_bundle(tmp_path / "b", node)
    monkeypatch.setenv("SPARK_MODELS_MAX_VECTOR_SIZE", "100")
    with pytest.raises(MalformedModelError, match=r"'cv'.*'vocabulary.*' is 101, over the limit of 100"):
        mleap_bridge.load_bundle(bundle)


@pytest.mark.parametrize("length,match", [(2000, r"'labels_length' is 2000, over the limit of 1000"),
                                          (5, r"labels_length is 5 but there is no attribute 'labels_array_1'")])
def test_string_indexer_labels_length_is_checked(tmp_path, monkeypatch, length, match):
    node = Node("si", "string_indexer", {"labels_length": A.scalar("int", length),
                                         "labels_array_0": A.listed("string", ["a", "b"])},
                [("input0", "s")], [("output0", "s_index")])
    bundle = _dir_bundle(tmp_path / "b", node)
    monkeypatch.setenv("SPARK_MODELS_MAX_VECTOR_SIZE", "1000")
    with pytest.raises(MalformedModelError, match=rf"'si'.*{match}"):
        mleap_bridge.load_bundle(bundle)


def test_tensor_shape_disagreeing_with_its_values_is_refused(tmp_path):
    std = {"type": "tensor", "double": [1.0, 2.0, 3.0], "shape": {"dimensions": [{"size": 5, "name": ""}]}}
    bundle = _dir_bundle(tmp_path / "b", Node("scaler", "standard_scaler", {"std": std}, [("input", "v")],
                                              [("output", "scaled")]))
    with pytest.raises(MalformedModelError, match=r"'scaler'.*'std' has 3 values but dimensions \[5\]"):
        mleap_bridge.load_bundle(bundle)


# ---- 5. what is not a bundle, or a node that does not parse, names the file ------------

@pytest.mark.parametrize("name,content", [("random.zip", bytes(range(256)) * 16),
                                          ("model.txt", b"just some text, no zip here\n")])
def test_file_that_is_not_a_zip_names_the_path(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(path))}.*neither a directory nor a zip"):
        mleap_bridge.load_bundle(path)


@pytest.mark.parametrize("missing", ["node.json", "model.json"])
def test_missing_node_file_in_a_zip_names_bundle_file_and_node(tmp_path, missing):
    bundle = _dir_bundle(tmp_path / "b")
    (bundle / "root" / "bin.node" / missing).unlink()
    archive = _zip(bundle, tmp_path / "b.zip")
    with pytest.raises(MalformedModelError,
                       match=rf"{re.escape(str(archive))}.*root/bin\.node/{re.escape(missing)} \(node 'bin'\) "
                             r"is missing"):
        mleap_bridge.load_bundle(archive)


@pytest.mark.parametrize("drop", ["port", "name"])
def test_socket_without_port_or_name_names_file_and_node(tmp_path, drop):
    bundle = _dir_bundle(tmp_path / "b")
    _edit(bundle / "root" / "bin.node" / "node.json", lambda n: n["shape"]["inputs"][0].pop(drop))
    with pytest.raises(MalformedModelError, match=rf"root/bin\.node/node\.json \(node 'bin'\).*has no string '{drop}'"):
        mleap_bridge.load_bundle(bundle)


@pytest.mark.parametrize("file", ["bundle.json", "root/model.json", "root/bin.node/model.json"])
def test_invalid_json_in_a_zip_names_bundle_and_file(tmp_path, file):
    bundle = _dir_bundle(tmp_path / "b")
    (bundle / file).write_text('{"op": "binarizer", ')
    archive = _zip(bundle, tmp_path / "b.zip")
    with pytest.raises(MalformedModelError, match=rf"{re.escape(str(archive))}.*{re.escape(file)}.*not valid JSON"):
        mleap_bridge.load_bundle(archive)


def test_invalid_json_in_a_tree_names_node_and_file(tmp_path):
    forest = _forest_dir(tmp_path)
    tree = forest / FOREST_NODE / "tree2" / "tree.json"
    tree.write_text(tree.read_text().replace("}", "", 1))
    with pytest.raises(MalformedModelError, match=r"'rfr_5af14f58ae5f'.*tree2/tree\.json.*not valid JSON"):
        mleap_bridge.load_bundle(forest)


def test_truncated_tree_names_node_and_file(tmp_path):
    forest = _forest_dir(tmp_path)
    tree = forest / FOREST_NODE / "tree4" / "tree.json"
    tree.write_text("\n".join(tree.read_text().splitlines()[:3]) + "\n")  # three internal nodes, no leaves
    with pytest.raises(MalformedModelError, match=r"'rfr_5af14f58ae5f'.*tree4/tree\.json: the tree ends"):
        mleap_bridge.load_bundle(forest)


def test_node_without_op_names_file_and_node(tmp_path):
    bundle = _dir_bundle(tmp_path / "b")
    _edit(bundle / "root" / "bin.node" / "model.json", lambda m: m.pop("op"))
    with pytest.raises(MalformedModelError, match=r"root/bin\.node/model\.json \(node 'bin'\) has no 'op'"):
        mleap_bridge.load_bundle(bundle)


def test_the_corrupted_bundles_above_start_from_loadable_ones(tmp_path):
    """The unmodified inputs of these tests load and score, so each refusal is the corruption's doing."""
    import pandas as pd

    model = mleap_bridge.load_bundle(_dir_bundle(tmp_path / "b"))
    assert model.transform(pd.DataFrame({"x": [0.2, 0.9]}))["bin_y"].tolist() == [0.0, 1.0]
    assert mleap_bridge.load_bundle(_zip(tmp_path / "b", tmp_path / "b.zip")).schema["outputs"] == ["bin_y"]
    assert len(mleap_bridge.load_bundle(_forest_dir(tmp_path)).nodes) > 1
