"""Every dataset loader on a tiny fixture written in that dataset's real on-disk format: real file names,
real label-file syntax, real image formats (written by OpenCV), and the ways such a copy goes wrong."""

import csv

import numpy as np
import pytest

from ferbench.errors import DatasetError
from ferbench_datasets import (ckplus, ckplus48, fer2013_csv, fer2013_folder, imagefolder, jaffe, mpi_faces,
                               oulu_casia, rafdb)
from face_fixtures import photo, write_corrupt, write_image


def crop48(value=0):
    return np.full((48, 48), value, np.uint8) + np.arange(48, dtype=np.uint8)[None, :]


def labels_of(data):
    return [data.classes[i] for i in data.labels]


# --- FER2013, csv -------------------------------------------------------------------------------------

def write_fer2013_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def fer_row(emotion, usage, value=7, length=2304):
    return [emotion, " ".join(str((value + i) % 256) for i in range(length)), usage]


def test_fer2013_csv_official_splits_codes_and_a_corrupt_row(tmp_path):
    rows = [fer_row(0, "Training"), fer_row(3, "Training"), fer_row(6, "PublicTest"), fer_row(5, "PrivateTest"),
            [2, "1 2 x " + " ".join(["4"] * 2301), "Training"]]
    path = write_fer2013_csv(tmp_path / "fer2013.csv", rows)
    assert fer2013_csv.sniff(tmp_path) and fer2013_csv.sniff(path)
    data = fer2013_csv.load(str(tmp_path))
    assert data.images.shape == (4, 48, 48) and data.images[0, 0, :3].tolist() == [7, 8, 9]
    assert labels_of(data) == ["anger", "happiness", "neutral", "surprise"]
    assert data.splits.tolist() == ["train", "train", "public_test", "private_test"]
    assert data.load_report["excluded"]["corrupt"] == ["fer2013.csv:6"]
    assert data.meta["source_file"][2] == "fer2013.csv:4"


def test_fer2013_csv_columns_in_any_order_with_spaces(tmp_path):
    path = tmp_path / "icml_face_data.csv"
    path.write_text("emotion, Usage, pixels\n" + f"4,Training,{' '.join(['9'] * 2304)}\n")
    assert fer2013_csv.load(str(tmp_path)).classes[4] == "sadness"


@pytest.mark.parametrize("row, message", [
    (fer_row(9, "Training"), r"fer2013.csv:3: unknown emotion code '9'"),
    (fer_row(1, "Validation"), r"fer2013.csv:3: unknown Usage 'Validation'"),
    (fer_row(1, "Training", length=2000), r"fer2013.csv:3: 2000 pixel values where the first row has 2304"),
])
def test_fer2013_csv_bad_rows_are_errors_naming_the_line(tmp_path, row, message):
    write_fer2013_csv(tmp_path / "fer2013.csv", [fer_row(0, "Training"), row])
    with pytest.raises(DatasetError, match=message):
        fer2013_csv.load(str(tmp_path))


def test_fer2013_csv_missing_file_or_column(tmp_path):
    with pytest.raises(DatasetError, match="no FER2013 CSV found"):
        fer2013_csv.load(str(tmp_path))
    (tmp_path / "fer2013.csv").write_text("label,pixels\n0,1 2 3\n")
    assert not fer2013_csv.sniff(tmp_path)
    with pytest.raises(DatasetError, match="lacks column"):
        fer2013_csv.load(str(tmp_path))


# --- FER2013, folders ---------------------------------------------------------------------------------

def write_fer2013_folder(root):
    write_image(root / "train" / "angry" / "Training_10118481.jpg", crop48(10))
    write_image(root / "train" / "happy" / "Training_10019449.jpg", crop48(50))
    write_image(root / "test" / "happy" / "PublicTest_88187364.jpg", crop48(90))
    write_image(root / "test" / "angry" / "PrivateTest_10131363.jpg", crop48(120))
    write_image(root / "test" / "surprise" / "PrivateTest_1047211.jpg", crop48(150))
    return root


def test_fer2013_folder_splits_come_from_the_file_name_prefix(tmp_path):
    root = write_fer2013_folder(tmp_path / "fer2013")
    write_corrupt(root / "train" / "happy" / "Training_999.jpg")
    assert fer2013_folder.sniff(root)
    data = fer2013_folder.load(str(root))
    assert dict(zip(data.meta["source_file"], data.splits)) == {
        "train/angry/Training_10118481.jpg": "train", "train/happy/Training_10019449.jpg": "train",
        "test/happy/PublicTest_88187364.jpg": "public_test", "test/angry/PrivateTest_10131363.jpg": "private_test",
        "test/surprise/PrivateTest_1047211.jpg": "private_test"}
    assert data.classes == ("anger", "happiness", "surprise") and data.images.shape == (5, 48, 48)
    assert data.load_report["excluded"]["unreadable"] == ["train/happy/Training_999.jpg"]


def test_fer2013_folder_errors_name_the_path(tmp_path):
    root = write_fer2013_folder(tmp_path / "fer2013")
    write_image(root / "train" / "angry" / "Training_1.jpg", np.zeros((64, 64), np.uint8))
    with pytest.raises(DatasetError, match="Training_1.jpg: image size differs from the other images' 48x48: 1 image"):
        fer2013_folder.load(str(root))
    (root / "train" / "angry" / "Training_1.jpg").unlink()
    (root / "train" / "bored").mkdir()
    with pytest.raises(DatasetError, match="bored: class name 'bored' has no canonical equivalent"):
        fer2013_folder.load(str(root))
    (root / "train" / "bored").rename(root / "train" / "sad")
    with pytest.raises(DatasetError, match="sad: class folder 'sad' holds no images"):
        fer2013_folder.load(str(root))
    with pytest.raises(DatasetError, match="elsewhere/train: FER2013 train/ folder not found"):
        fer2013_folder.load(str(tmp_path / "elsewhere"))


# --- CK+, original layout -----------------------------------------------------------------------------

def write_ckplus(root, sequences, frames=5, missing_face=None):
    """``sequences``: {(subject, sequence): emotion code or None (no label file)}."""
    for (subject, sequence), code in sequences.items():
        for frame in range(1, frames + 1):
            name = f"{subject}_{sequence}_{frame:08d}.png"
            face = (subject, sequence, frame) != missing_face
            write_image(root / "cohn-kanade-images" / subject / sequence / name,
                        photo(240, 200, 90, face=face, smile=frame / frames))
        if code is not None:
            label = root / "Emotion" / subject / sequence / f"{subject}_{sequence}_{frames:08d}_emotion.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"   {float(code):.7e}\n")
    return root


def test_ckplus_last_frames_of_labelled_sequences_with_face_crops(tmp_path):
    root = write_ckplus(tmp_path / "CK+", {("S005", "001"): 3, ("S010", "002"): 5, ("S011", "001"): None},
                        missing_face=("S010", "002", 4))
    assert ckplus.sniff(root)
    data = ckplus.load(str(root))
    assert data.images.shape == (5, 48, 48)
    assert labels_of(data) == ["disgust"] * 3 + ["happiness"] * 2
    assert data.subjects.tolist() == ["S005"] * 3 + ["S010"] * 2
    assert set(data.meta["sequence"]) == {"S005_001", "S010_002"}
    assert data.meta["source_file"][0] == "cohn-kanade-images/S005/001/S005_001_00000003.png"
    report = data.load_report
    assert report["excluded"]["no_face"] == ["cohn-kanade-images/S010/002/S010_002_00000004.png"]
    assert report["excluded_counts"] == {"unreadable": 0, "no_face": 1} and report["no_face_rate"] == pytest.approx(1 / 6, abs=1e-5)
    assert report["face_pipeline"]["detect"] == "haar" and report["cache"]["reused"] is False


def test_ckplus_neutral_frames_and_preprocessing_cache(tmp_path):
    root = write_ckplus(tmp_path / "CK+", {("S005", "001"): 7})
    first = ckplus.load(str(root), frames=2, neutral_frames=1)
    assert labels_of(first) == ["neutral", "surprise", "surprise"]
    again = ckplus.load(str(root), frames=2, neutral_frames=1)
    assert again.load_report["cache"] == {"file": first.load_report["cache"]["file"], "reused": True}
    assert np.array_equal(again.images, first.images) and again.classes == first.classes
    other = ckplus.load(str(root), frames=2, neutral_frames=1, size=64)  # other settings: another entry
    assert other.load_report["cache"]["reused"] is False and other.images.shape[1:] == (64, 64)
    write_image(root / "cohn-kanade-images/S005/001/S005_001_00000005.png", photo(240, 200, 80))  # a changed file
    assert ckplus.load(str(root), frames=2, neutral_frames=1).load_report["cache"]["reused"] is False


def test_ckplus_bad_label_file_and_missing_sequence(tmp_path):
    root = write_ckplus(tmp_path / "CK+", {("S005", "001"): 3}, frames=2)
    label = root / "Emotion/S005/001/S005_001_00000002_emotion.txt"
    label.write_text("   9.0000000e+00\n")
    with pytest.raises(DatasetError, match="S005_001_00000002_emotion.txt: unknown CK\\+ emotion code 9"):
        ckplus.load(str(root))
    label.write_text("three\n")
    with pytest.raises(DatasetError, match="not a CK\\+ emotion file"):
        ckplus.load(str(root))
    label.write_text("1.0\n")
    other = root / "Emotion/S099/004/S099_004_00000001_emotion.txt"
    other.parent.mkdir(parents=True)
    other.write_text("2.0\n")
    with pytest.raises(DatasetError, match="cohn-kanade-images/S099/004: image sequence for .* not found"):
        ckplus.load(str(root))
    with pytest.raises(DatasetError, match="cohn-kanade-images: CK\\+ cohn-kanade-images/ folder not found"):
        ckplus.load(str(tmp_path))


# --- CK+48 folders ------------------------------------------------------------------------------------

def test_ckplus48_folder_subject_and_sequence_from_the_file_name(tmp_path):
    root = tmp_path / "CK+48"
    for name, value in [("anger/S010_004_00000017.png", 10), ("anger/S010_004_00000018.png", 20),
                        ("contempt/S138_008_00000009.png", 30), ("happy/S011_006_00000013.png", 40)]:
        write_image(root / name, crop48(value))
    assert ckplus48.sniff(root)
    data = ckplus48.load(str(root))
    assert data.classes == ("anger", "contempt", "happiness")
    assert data.subjects.tolist() == ["S010", "S010", "S138", "S011"]
    assert data.meta["sequence"].tolist() == ["S010_004", "S010_004", "S138_008", "S011_006"]
    write_image(root / "happy" / "smile.png", crop48())
    with pytest.raises(DatasetError, match="smile.png: not a CK\\+ file name"):
        ckplus48.load(str(root))


# --- JAFFE --------------------------------------------------------------------------------------------

def test_jaffe_tiff_names_give_subject_and_expression(tmp_path):
    root = tmp_path / "jaffe"
    for name in ("KA.AN1.39.tiff", "KA.HA2.30.tiff", "KL.SU1.164.tiff", "YM.NE3.51.tiff"):
        write_image(root / name, photo(256, 256, 120))
    (root / "README").write_text("The Japanese Female Facial Expression (JAFFE) Database\n")
    assert jaffe.sniff(root)
    data = jaffe.load(str(root))
    assert labels_of(data) == ["anger", "happiness", "surprise", "neutral"]
    assert data.subjects.tolist() == ["KA", "KA", "KL", "YM"] and data.images.shape == (4, 48, 48)
    write_image(root / "KA.XX1.40.tiff", photo(256, 256, 120))
    with pytest.raises(DatasetError, match="KA.XX1.40.tiff: unknown label 'XX'"):
        jaffe.load(str(root))


# --- OULU-CASIA ---------------------------------------------------------------------------------------

def write_oulu(root, modality="VL", illumination="Strong", people=("P001", "P002"),
               expressions=("Anger", "Happiness"), frames=5):
    for person in people:
        for expression in expressions:
            for frame in range(frames):
                write_image(root / "OriginalImg" / modality / illumination / person / expression / f"{frame:03d}.jpeg",
                            photo(160, 160, 80, smile=frame / frames))
    return root


def test_oulu_casia_last_frames_of_each_sequence_in_one_modality(tmp_path):
    root = write_oulu(tmp_path / "Oulu-CASIA")
    write_oulu(root, modality="NI", people=("P001",), expressions=("Fear",), frames=2)
    assert oulu_casia.sniff(root)
    data = oulu_casia.load(str(root))
    assert len(data) == 12 and data.classes == ("anger", "happiness")
    assert sorted(set(data.meta["sequence"])) == ["P001_Anger", "P001_Happiness", "P002_Anger", "P002_Happiness"]
    assert [f.rsplit("/", 1)[1] for f in data.meta["source_file"][:3]] == ["002.jpeg", "003.jpeg", "004.jpeg"]
    near_infrared = oulu_casia.load(str(root), modality="NI", frames=1)
    assert labels_of(near_infrared) == ["fear"] and near_infrared.subjects.tolist() == ["P001"]
    with pytest.raises(DatasetError, match="NI/Dark folder not found"):
        oulu_casia.load(str(root), modality="NI", illumination="Dark")
    with pytest.raises(DatasetError, match="modality must be one of VL, NI"):
        oulu_casia.load(str(root), modality="IR")


# --- FACES (MPI) --------------------------------------------------------------------------------------

def test_mpi_faces_file_names_give_person_and_expression_in_colour(tmp_path):
    root = tmp_path / "FACES"
    for name in ("004_o_m_a_A.jpg", "004_o_m_h_B.jpg", "066_y_f_n_A.jpg", "140_m_f_s_A.jpg"):
        write_image(root / name, photo(300, 360, 160, colour=True))
    assert mpi_faces.sniff(root)
    data = mpi_faces.load(str(root), color="rgb", size=64)
    assert data.images.shape == (4, 64, 64, 3) and data.images.dtype == np.uint8
    assert labels_of(data) == ["anger", "happiness", "neutral", "sadness"]
    assert data.subjects.tolist() == ["004", "004", "066", "140"]
    write_image(root / "004_o_m_z_A.jpg", photo(300, 360, 160))
    with pytest.raises(DatasetError, match="004_o_m_z_A.jpg: unknown label 'z'"):
        mpi_faces.load(str(root))


# --- RAF-DB basic -------------------------------------------------------------------------------------

def write_rafdb(root, entries):
    labels = root / "basic" / "EmoLabel" / "list_patition_label.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("".join(f"{name} {code}\n" for name, code in entries))
    for name, _ in entries:
        stem = name.rsplit(".", 1)[0]
        write_image(root / "basic" / "Image" / "aligned" / f"{stem}_aligned.jpg", photo(100, 100, 96, colour=True))
        write_image(root / "basic" / "Image" / "original" / name, photo(320, 240, 110, colour=True))
    return root


def test_rafdb_basic_label_list_codes_and_splits(tmp_path):
    root = write_rafdb(tmp_path / "RAF-DB", [("train_00001.jpg", 5), ("train_00002.jpg", 4), ("test_0001.jpg", 1),
                                             ("test_0002.jpg", 7)])
    assert rafdb.sniff(root)
    data = rafdb.load(str(root))
    assert labels_of(data) == ["sadness", "happiness", "surprise", "neutral"]
    assert data.splits.tolist() == ["train", "train", "test", "test"] and data.images.shape == (4, 100, 100)
    assert data.load_report["face_pipeline"]["detect"] == "none"
    photos = rafdb.load(str(root), aligned=False, size=48)
    assert photos.load_report["face_pipeline"]["detect"] == "haar" and photos.images.shape == (4, 48, 48)
    (root / "basic/Image/aligned/test_0002_aligned.jpg").unlink()
    with pytest.raises(DatasetError, match="test_0002_aligned.jpg: listed in .*list_patition_label.txt:4 but missing"):
        rafdb.load(str(root))


def test_rafdb_unknown_code_names_the_line(tmp_path):
    root = write_rafdb(tmp_path / "RAF-DB", [("train_00001.jpg", 5), ("train_00002.jpg", 8)])
    with pytest.raises(DatasetError, match="list_patition_label.txt:2: unknown label '8'"):
        rafdb.load(str(root))


# --- generic image folder -----------------------------------------------------------------------------

def test_imagefolder_flat_and_split_layouts(tmp_path):
    flat = tmp_path / "flat"
    write_image(flat / "Happy" / "a.png", crop48(1))
    write_image(flat / "Happy" / "nested" / "b.png", crop48(2))
    write_image(flat / "sad" / "c.jpg", crop48(3))
    assert imagefolder.sniff(flat)
    data = imagefolder.load(str(flat))
    assert labels_of(data) == ["happiness", "happiness", "sadness"] and set(data.splits) == {"all"}
    split = tmp_path / "split"
    write_image(split / "train" / "angry" / "a.png", crop48(1))
    write_image(split / "validation" / "angry" / "b.png", crop48(2))
    write_image(split / "test" / "fear" / "c.png", crop48(3))
    assert imagefolder.load(str(split)).splits.tolist() == ["test", "train", "val"]


def test_imagefolder_sizes_must_match_unless_resized(tmp_path):
    write_image(tmp_path / "happy" / "a.png", crop48())
    write_image(tmp_path / "happy" / "b.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(DatasetError, match="b.png \\(40x30\\).* give the loader a size option"):
        imagefolder.load(str(tmp_path))
    assert imagefolder.load(str(tmp_path), size=32).images.shape == (2, 32, 32)


def test_a_loader_with_nothing_usable_says_why(tmp_path):
    write_corrupt(tmp_path / "happy" / "a.png")
    with pytest.raises(DatasetError, match="none of the 1 images could be used \\(1 unreadable"):
        imagefolder.load(str(tmp_path))


# --- the registry and folder sniffing -----------------------------------------------------------------

def test_every_format_is_recognised_from_its_folder(zoo, tmp_path):
    write_fer2013_csv(tmp_path / "csv" / "fer2013.csv", [fer_row(0, "Training"), fer_row(1, "PublicTest")])
    write_fer2013_folder(tmp_path / "fer-folders")
    write_ckplus(tmp_path / "ck", {("S005", "001"): 3}, frames=1)
    write_image(tmp_path / "ck48" / "anger" / "S010_004_00000017.png", crop48())
    write_image(tmp_path / "jaffe" / "KA.AN1.39.tiff", crop48())
    write_image(tmp_path / "oulu" / "VL" / "Weak" / "P001" / "Fear" / "000.jpeg", crop48())
    write_image(tmp_path / "faces" / "004_o_m_a_A.jpg", crop48())
    (tmp_path / "raf" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    write_image(tmp_path / "plain" / "neutral" / "x.png", crop48())
    expected = {"csv": "fer2013-csv", "fer-folders": "fer2013-folder", "ck": "ckplus", "ck48": "ckplus48-folder",
                "jaffe": "jaffe", "oulu": "oulu-casia", "faces": "mpi-faces", "raf": "rafdb-basic",
                "plain": "imagefolder"}
    assert {name: zoo.dataset(str(tmp_path / name)).spec.name for name in expected} == expected


def test_registry_datasets_without_a_copy_say_where_they_looked(monkeypatch, tmp_path):
    from ferbench.plugins import PluginManager
    from ferbench.registry import Zoo

    monkeypatch.setenv("FERBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    zoo = Zoo(PluginManager())
    for name in ("ckplus", "jaffe", "oulu-casia", "mpi-faces", "rafdb-basic", "fer2013-csv", "fer2013-folder",
                 "ckplus48-folder"):
        with pytest.raises(DatasetError, match=f"dataset '{name}': no copy found; looked in:\n  {tmp_path}/{name}"):
            zoo.dataset(name)
    write_image(tmp_path / "jaffe" / "KA.AN1.39.tiff", photo(256, 256, 120))
    write_image(tmp_path / "jaffe" / "KA.SU1.42.tiff", photo(256, 256, 120, smile=1))
    data = zoo.dataset("jaffe").with_options({"size": 32}).load()
    assert data.name == "jaffe" and data.images.shape == (2, 32, 32)


def test_a_run_shows_and_records_what_the_loader_skipped(zoo, tmp_path):
    from rich.console import Console

    from ferbench.runner import RunRequest, run

    root = write_ckplus(tmp_path / "CK+", {(f"S{p:03d}", "001"): 3 + 2 * (p % 2) for p in range(4)}, frames=3,
                        missing_face=("S001", "001", 3))
    write_corrupt(root / "cohn-kanade-images/S002/001/S002_001_00000003.png")
    console = Console(record=True, width=200)
    request = RunRequest(method="example-tinycnn", dataset=str(root), protocol="kfold", folds=2,
                         config={"epochs": 1, "batch_size": 4}, data_options={"size": 32}, out_dir=tmp_path / "out",
                         device="cpu", save_model=False)
    records = run(zoo, request, console)
    output = console.export_text()
    assert "skipped 1 unreadable, 1 no face image(s)" in output and "S001_001_00000003.png" in output
    report = records[0]["load_reports"]["CK+"]
    assert report["excluded"] == {"unreadable": ["cohn-kanade-images/S002/001/S002_001_00000003.png"],
                                  "no_face": ["cohn-kanade-images/S001/001/S001_001_00000003.png"]}
    assert report["face_pipeline"]["size"] == 32 and report["images"] == 10
    again = zoo.dataset(str(root)).with_options({"size": 32}).load()
    assert again.load_report["cache"]["reused"] is True
    assert again.load_report["excluded"] == report["excluded"]  # the cache keeps the exclusions
