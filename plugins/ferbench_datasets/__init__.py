"""Loaders for real FER datasets in their on-disk formats, one format per module.

Registered loaders (registry.yaml binds them to dataset names and paths; each also recognises a folder
in its format, so ``--dataset path/to/folder`` works):

- ``ferbench-npz``: ferbench's ``.npz`` folder format (``../shared/data/fer2013``, ``ckplus48``).
- ``fer2013-csv``: FER2013's ``fer2013.csv`` (``emotion,pixels,Usage``).
- ``fer2013-folder``: FER2013's folder release (``train/<class>/``, ``test/<class>/PublicTest_*``).
- ``ckplus``: CK+'s original layout (``cohn-kanade-images/`` + ``Emotion/``), last N frames per sequence.
- ``ckplus48-folder``: the CK+48 crops (``<class>/S010_004_00000017.png``).
- ``jaffe``: JAFFE (``KA.AN1.39.tiff``).
- ``oulu-casia``: OULU-CASIA (``VL|NI/Strong|Weak|Dark/P001/Anger/*.jpeg``), last N frames per sequence.
- ``mpi-faces``: FACES (``004_o_m_a_A.jpg``).
- ``rafdb-basic``: RAF-DB basic (``EmoLabel/list_patition_label.txt`` + ``Image/aligned/``).
- ``imagefolder``: any ``<class>/<images>`` or ``<split>/<class>/<images>`` folder.

Loaders of photos run :class:`ferbench.faces.FacePipeline` (options ``detect``, ``margin``, ``mask``,
``color``, ``size``) and cache the result (option ``cache``); see :mod:`.images` and :mod:`.cache`.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import DatasetSpec

from . import ckplus, ckplus48, fer2013_csv, fer2013_folder, imagefolder, jaffe, mpi_faces, npz, oulu_casia, rafdb


@hookimpl
def ferbench_register_datasets():
    # Sniffers are tried in this order: the specific layouts first, the generic image folder last.
    return [
        DatasetSpec(name="ferbench-npz", load=npz.load, sniff=npz.sniff,
                    summary="a folder of ferbench .npz archives (images, labels, classes, split, subject)"),
        DatasetSpec(name=fer2013_csv.LOADER, load=fer2013_csv.load, sniff=fer2013_csv.sniff,
                    summary="FER2013 fer2013.csv (emotion,pixels,Usage): train / public_test / private_test"),
        DatasetSpec(name=fer2013_folder.LOADER, load=fer2013_folder.load, sniff=fer2013_folder.sniff,
                    summary="FER2013 folder release: train/<class>/, test/<class>/PublicTest_*|PrivateTest_*"),
        DatasetSpec(name=ckplus.LOADER, load=ckplus.load, sniff=ckplus.sniff, protocol="kfold",
                    summary="CK+ original layout (cohn-kanade-images/ + Emotion/), last N frames, face-cropped"),
        DatasetSpec(name=ckplus48.LOADER, load=ckplus48.load, sniff=ckplus48.sniff, protocol="kfold",
                    summary="CK+48 crops: <class>/S010_004_00000017.png"),
        DatasetSpec(name=jaffe.LOADER, load=jaffe.load, sniff=jaffe.sniff, protocol="kfold",
                    summary="JAFFE: KA.AN1.39.tiff photos, face-cropped"),
        DatasetSpec(name=oulu_casia.LOADER, load=oulu_casia.load, sniff=oulu_casia.sniff, protocol="kfold",
                    summary="OULU-CASIA: VL|NI/Strong|Weak|Dark/P001/Anger/*.jpeg, last N frames, face-cropped"),
        DatasetSpec(name=mpi_faces.LOADER, load=mpi_faces.load, sniff=mpi_faces.sniff, protocol="kfold",
                    summary="FACES (MPI): 004_o_m_a_A.jpg photos, face-cropped"),
        DatasetSpec(name=rafdb.LOADER, load=rafdb.load, sniff=rafdb.sniff,
                    summary="RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/"),
        DatasetSpec(name=imagefolder.LOADER, load=imagefolder.load, sniff=imagefolder.sniff,
                    summary="any <class>/<images> or <split>/<class>/<images> folder"),
    ]
