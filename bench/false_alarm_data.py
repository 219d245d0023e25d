"""The datasets of ``bench_false_alarms.py``: river's bundled ones, and those ``--export`` writes
from a scratch venv with scikit-learn and NannyML (never the project's venv)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Dataset", "export", "load_exported", "river_datasets"]


@dataclass(frozen=True)
class Dataset:
    name: str
    numeric: dict[str, npt.NDArray[np.float64]]
    categorical: dict[str, npt.NDArray[np.str_]]
    ordered: bool  # rows in time order: keep it

    @property
    def rows(self) -> int:
        first = next(iter({**self.numeric, **self.categorical}.values()))
        return int(first.shape[0])


# ---- export (run in a scratch venv with scikit-learn and nannyml) ------------------------------


def export(folder: Path) -> None:
    """Write scikit-learn's and NannyML's bundled datasets as .npz files to ``folder``."""
    from sklearn import datasets as skd  # type: ignore[import-not-found]

    folder.mkdir(parents=True, exist_ok=True)
    for name, loader in (("breast_cancer", skd.load_breast_cancer), ("digits", skd.load_digits)):
        bunch = loader()
        names = [str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1]))]
        cols = {f"num:{n}": bunch.data[:, i].astype(float) for i, n in enumerate(names)}
        np.savez(folder / f"sklearn_{name}.npz", ordered=False, **cols)
    import nannyml  # type: ignore[import-not-found]

    reference, analysis, _targets = nannyml.load_synthetic_car_loan_dataset()
    for name, frame in (("nannyml_car_loan", reference), ("nannyml_car_loan_analysis", analysis)):
        cols = {}
        for col in frame.columns:
            if col in {"id", "timestamp", "y_pred_proba", "y_pred", "repaid", "period"}:
                continue
            series = frame[col]
            if series.dtype.kind in "fi":
                cols[f"num:{col}"] = series.to_numpy(dtype=float)
            else:
                cols[f"cat:{col}"] = np.array(series.astype(str).tolist(), dtype=str)
        np.savez(folder / f"{name}.npz", ordered=True, **cols)
    print(json.dumps({"exported": sorted(p.name for p in folder.glob("*.npz"))}))


def load_exported(folder: Path) -> list[Dataset]:
    out = []
    for path in sorted(folder.glob("*.npz")):
        if path.stem.endswith("_analysis"):
            continue  # the known-drift table's
        with np.load(path, allow_pickle=False) as z:
            num = {k[4:]: z[k].astype(float) for k in z.files if k.startswith("num:")}
            cat = {k[4:]: z[k].astype(str) for k in z.files if k.startswith("cat:")}
            out.append(Dataset(path.stem, num, cat, bool(z["ordered"])))
    return out


def river_datasets() -> list[Dataset]:
    from river import datasets

    out = []
    for name, ds in (
        ("river_phishing", datasets.Phishing()),
        ("river_image_segments", datasets.ImageSegments()),
        ("river_shuttle", datasets.Shuttle()),
    ):
        rows = [x for x, _ in ds]
        keys = list(rows[0])
        num = {k: np.array([float(r[k]) for r in rows]) for k in keys}
        out.append(Dataset(name, num, {}, ordered=False))
    return out
