"""insightface's data formats: .bin verification sets and MXNet RecordIO training sets, written by our packer
and by hand (the framing's edge cases, a Python 2 pickle), read back, scored, used for repair, and refused
in one line when broken."""
import pickle
import struct

import numpy as np
import pytest
import torch

from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.recordio import MAGIC, RecordFile, face_layout, frame, pack, write_recordio
from compression_tool.commen_utils.verification_bin import read_verification_bin, write_verification_bin
from compression_tool.data.pack import encode_jpeg, pack_image_folder, pack_pairs
from compression_tool.dataloader import TrainImages, make_loader, sample_images, training_set
from compression_tool.model_define import InputSpec
from compression_tool.model_define.loading import load_model
from compression_tool.pruning_analysis_tools.report import ReportConfig, build_report
from compression_tool.test_module.evaluate import EvaluationConfig, make_evaluator
from compression_tool.test_module.metrics import insightface_metrics
from tests.cli import ORL, one_line_error, read_json, run_in_process, subset_pairs

TRAIN = ORL.parent.parent / "train_data/orl_s1-20"
MODEL = "tests/inception_face.py:build"
WEIGHTS = "tests/fixtures/inception_weights.pth"
FACE = encode_jpeg(ORL / "s1/1.png")


def py2_pickle(images: list, issame: list) -> bytes:
    """(images, issame) as Python 2's cPickle writes it with protocol 2: `str` as (SHORT_)BINSTRING."""
    def binstring(b):
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b
    images_list = b"](" + b"".join(binstring(b) for b in images) + b"e"
    labels_list = b"](" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e"
    return b"\x80\x02" + images_list + labels_list + b"\x86."


def test_bin_python2_and_python3_pickles_read_the_same(tmp_path):
    images, issame = [FACE, b"tiny", FACE, FACE], [True, False]
    (tmp_path / "py2.bin").write_bytes(py2_pickle(images, issame))
    write_verification_bin(tmp_path / "py3.bin", images, issame)
    assert read_verification_bin(tmp_path / "py2.bin") == read_verification_bin(tmp_path / "py3.bin") == \
        (images, [1, 0])


class Opens:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_bin_refuses_broken_files_and_pickles_that_name_anything(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([Opens(str(marker))], []), protocol=2))
    with pytest.raises(UserError, match=r"evil.bin: refused to load, the pickle it names io.open"):
        read_verification_bin(tmp_path / "evil.bin")
    assert not marker.exists()
    write_verification_bin(tmp_path / "ok.bin", [FACE] * 4, [True, False])
    (tmp_path / "cut.bin").write_bytes((tmp_path / "ok.bin").read_bytes()[:len(FACE)])
    with pytest.raises(UserError, match="cut.bin: not a readable .bin verification set, truncated or corrupt"):
        read_verification_bin(tmp_path / "cut.bin")
    (tmp_path / "odd.bin").write_bytes(pickle.dumps(([FACE] * 3, [True, False])))
    with pytest.raises(UserError, match="odd.bin: 3 images for 2 pairs"):
        read_verification_bin(tmp_path / "odd.bin")


def split_record_by_hand() -> tuple:
    """A payload with the magic word at two aligned offsets, and its framing written out by hand: three parts
    (cflag 1, 2, 3), the magic words taken out, the last part padded."""
    magic = struct.pack("<I", MAGIC)
    header = struct.pack("<IfQQ", 0, 7.0, 1, 0)
    payload = header + b"AAAA" + magic + b"BBBB" + magic + b"CC"
    parts = [(1, header + b"AAAA"), (2, b"BBBB"), (3, b"CC")]
    framed = b"".join(struct.pack("<II", MAGIC, cflag << 29 | len(p)) + p + b"\0" * (-len(p) % 4)
                      for cflag, p in parts)
    return payload, framed


def test_recordio_split_record_and_header_record_last(tmp_path):
    payload, framed = split_record_by_hand()
    assert frame(payload) == framed  # our writer splits as dmlc's does
    assert frame(b"x" + struct.pack("<I", MAGIC) + b"yyy")[4:8] == struct.pack("<I", 8)  # unaligned: one part
    header = frame(pack(b"", (2, 3)))
    identity = frame(pack(b"", (1, 2)))
    (tmp_path / "x.rec").write_bytes(framed + identity + header)
    # the header record (key 0) last, as insightface's writer leaves it
    (tmp_path / "x.idx").write_text(f"1\t0\n2\t{len(framed)}\n0\t{len(framed) + len(identity)}\n")
    records = RecordFile(tmp_path / "x.rec", tmp_path / "x.idx")
    assert records.payload(1) == payload and records.record(1) == ((7.0,), payload[24:])
    keys, identities = face_layout(records)
    assert list(keys) == [1] and identities == 1


def test_packer_round_trip_and_workers(tmp_path):
    rec, idx, _ = pack_image_folder(TRAIN, tmp_path)
    assert idx.read_text().splitlines()[-1].startswith("0\t")
    folder, records = training_set(TRAIN), training_set(rec)
    assert len(records) == len(folder) == 200 and records.identities == folder.identities == 20
    assert [records.sample(i)[1] for i in (0, 9, 10, 199)] == [folder.sample(i)[1] for i in (0, 9, 10, 199)]
    assert np.abs(records.sample(42)[0] - folder.sample(42)[0]).mean() < 2  # JPEG quality 95
    spec = InputSpec()
    loader = make_loader(TrainImages(training_set(tmp_path), spec), batch_size=50, workers=2)
    labels = torch.cat([y for _, y in loader])
    assert labels.tolist() == [folder.items[i][1] for i in range(200)]


def test_recordio_broken_files_are_one_line_each(tmp_path):
    rec, idx, _ = write_recordio(tmp_path / "train", [(FACE, 0), (b"not a jpeg", 0)])
    size = rec.stat().st_size
    with pytest.raises(UserError, match=r"train.rec record 2: not a readable image"):
        training_set(tmp_path).sample(1)
    good_idx = idx.read_text()
    idx.write_text(good_idx + f"9\t{size + 100}\n")
    with pytest.raises(UserError, match=rf"train.idx:5: record 9 at byte {size + 100} lies past the end"):
        training_set(rec)
    idx.write_text(good_idx.replace("\t0\n", "\t4\n", 1))
    with pytest.raises(UserError, match="record 1 at byte 4 does not start with RecordIO's magic"):
        training_set(tmp_path).sample(0)
    idx.write_text("1 zero\n")
    with pytest.raises(UserError, match="train.idx:1: expected 'key<TAB>offset'"):
        training_set(tmp_path)
    idx.write_text(good_idx)
    rec.write_bytes(rec.read_bytes()[:len(FACE) // 2])
    with pytest.raises(UserError, match="lies past the end|is truncated"):
        training_set(tmp_path).sample(0)


def test_insightface_protocol_on_separable_and_random_scores():
    labels = np.array([1, 0] * 50)
    rng = np.random.default_rng(0)
    separable = insightface_metrics(np.where(labels == 1, rng.uniform(0.5, 0.9, 100), rng.uniform(-0.5, 0.2, 100)),
                                    labels)
    assert separable["accuracy"] >= 0.98 and separable["val_at_far"] == 1.0 and separable["far"] < 0.05
    noisy = insightface_metrics(rng.uniform(-1, 1, 100), labels)
    assert 0.3 < noisy["accuracy"] < 0.7 and noisy["val_at_far"] < 0.2


def test_same_model_scores_the_bin_and_the_text_list_alike(tmp_path):
    """The small test model on 120 held-out pairs: the .bin (JPEG) and the text list (PNG) of the same pairs.
    (SFace on all 1,800: BENCHMARKS.md.)"""
    pairs = subset_pairs(tmp_path, 120, ORL / "pair_list/orl_heldout_pairs.txt")
    pack_pairs(pairs, ORL, tmp_path / "heldout.bin")
    loaded = load_model(MODEL, WEIGHTS)
    results = [make_evaluator("lfw", root, path, loaded.spec, progress=False)(loaded.model)
               for root, path in ((ORL, pairs), (None, tmp_path / "heldout.bin"))]
    assert results[1]["num_pairs"] == 120 and results[0]["accuracy"] > 0.7
    assert abs(results[0]["accuracy"] - results[1]["accuracy"]) <= 0.01
    assert abs(results[0]["auc"] - results[1]["auc"]) <= 0.01


def test_several_sets_with_insightface_protocol_one_row_each(tmp_path):
    pack_pairs(subset_pairs(tmp_path, 10), ORL, tmp_path / "a.bin")
    (tmp_path / "b.bin").write_bytes(py2_pickle(*read_verification_bin(tmp_path / "a.bin")))
    proc = run_in_process("--mode", "test", "--model", MODEL, "--best_model_path", WEIGHTS, "--test_root_path",
                          tmp_path, "--val_targets", "a,b", "--data_source", "insightface", "--device", "cpu",
                          "--roc_png", tmp_path / "roc.png", "--result_json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    sets = read_json(tmp_path / "r.json")["sets"]
    assert list(sets) == ["a", "b"] and sets["a"] == sets["b"] and sets["a"]["protocol"] == "insightface"
    assert "| a | 10 |" in proc.stdout and "| b | 10 |" in proc.stdout and "VAL@FAR" in proc.stdout
    # report.py as a library call: its main() tunes the allocator of the process it runs in
    evaluation = EvaluationConfig("lfw", str(tmp_path), None, val_targets=("a", str(tmp_path / "b.bin")))
    build_report(ReportConfig(variants=(("pruned", "tests/fixtures/pruned_inception.pt"),), evaluation=evaluation,
                              output_dir=str(tmp_path / "report"), train_root=str(tmp_path / "none")))
    report = (tmp_path / "report/report.md").read_text()
    assert "## Every set" in report and "| pruned | a | 10 |" in report and "| pruned | b | 10 |" in report


def test_cli_refuses_broken_inputs_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([Opens(str(tmp_path / "ran"))], []), protocol=2))
    out = tmp_path / "out"
    common = ["--model", MODEL, "--best_model_path", WEIGHTS, "--device", "cpu", "--result_json", out / "r.json"]
    line = one_line_error(run_in_process("--mode", "test", "--img_list_label_path", tmp_path / "evil.bin",
                                         "--roc_png", out / "roc.png", *common))
    assert "evil.bin: refused to load, the pickle it names io.open" in line
    write_recordio(tmp_path / "rec/train", [(FACE, 0), (b"not a jpeg", 0)])
    line = one_line_error(run_in_process("--mode", "prune", "--test_root_path", ORL, "--img_list_label_path",
                                         subset_pairs(tmp_path, 8), "--train_data_path", tmp_path / "rec",
                                         "--reconstruct", "2", "--yaml_path", "tests/fixtures/schedule.yaml",
                                         "--save_model_pt", "--pruned_save_model_path", out,
                                         "--layers_out_path", out / "out.txt", *common))
    assert "rec/train.rec record 2: not a readable image" in line
    assert not out.exists() and not (tmp_path / "ran").exists()


def test_prune_repaired_from_recordio_equals_one_from_the_image_folder(tmp_path):
    pack_image_folder(TRAIN, tmp_path / "rec")
    pairs = subset_pairs(tmp_path, 8)
    embeddings = []
    for name, train in (("folder", TRAIN), ("rec", tmp_path / "rec/train.rec")):
        out = tmp_path / name
        proc = run_in_process("--mode", "prune", "--model", MODEL, "--best_model_path", WEIGHTS, "--device", "cpu",
                              "--test_root_path", ORL, "--img_list_label_path", pairs, "--train_data_path", train,
                              "--reconstruct", "16", "--yaml_path", "tests/fixtures/schedule.yaml", "--save_model_pt",
                              "--pruned_save_model_path", out, "--layers_out_path", out / "out.txt")
        assert proc.returncode == 0, proc.stderr
        loaded = load_model(checkpoint=next(out.glob("*.pt")))
        with torch.no_grad():
            embeddings.append(loaded.model(sample_images(TRAIN, loaded.spec, 16, seed=1)))
    cosine = torch.nn.functional.cosine_similarity(*embeddings)
    assert cosine.min() >= 0.999
