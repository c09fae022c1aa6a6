"""``medseg auto run`` against nnU-Net v2 at the same wall-clock budget, on a CPU.

For each dataset: convert the shared data once to the nnU-Net raw layout (train cases in
``imagesTr``/``labelsTr``, the fixed test cases in ``imagesTs``/``labelsTs``), then

- medseg: ``medseg auto run --fold all --time-budget B --threads 1`` on the train cases (the
  budget covers check, plan, preprocess, train and its own validation), then
  ``medseg auto predict`` on the test cases (no TTA, final checkpoint);
- nnU-Net v2 (separate venv, ``--nnunet-python``): ``nnUNetv2_plan_and_preprocess`` and
  ``nnUNetv2_train ... all -tr nnUNetTrainerBudget -device cpu`` within the same budget B
  (the trainer, copied into the nnunetv2 package, stops at the deadline and fits its poly
  learning rate to it; its post-training validation is skipped), then ``nnUNetv2_predict``
  (``--disable_tta``, ``checkpoint_final.pth``).

Both tools run with one torch thread. Predictions are scored with ``medseg evaluate``
(Dice, HD95 per class). Each step's wall time and peak RSS (sum over the process tree,
polled from /proc every 0.2 s) are recorded in ``OUT/results.json``.

    python benchmarks/auto_vs_nnunet.py --shared ../shared/data --budget 10m \
        --datasets isbi nuclei brats --out /tmp/autobench \\
        --nnunet-python /tmp/nnunet-venv/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDSEG = [sys.executable, "-m", "medseg"]
DATASETS = {
    "isbi": {
        "src": "isbi2012_em", "id": 501, "config": "2d", "binarize": False,
        "test": [f"train_{i:02d}" for i in range(24, 30)],  # last 6 slices as one block
    },
    "nuclei": {
        "src": "miccai15_nuclei", "id": 502, "config": "2d", "binarize": True,
        "test": ["image03", "image06", "image11", "image14"],  # two 20x, two 40x tiles
    },
    "brats": {
        "src": "brats2015_deepmedic", "id": 503, "config": "3d_fullres", "binarize": False,
        "test": ["brats_2013_pat0001_1", "brats_2013_pat0002_1"],  # the source's test cases
    },
}  # fmt: skip
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# nnU-Net's CLIs call torch.set_num_threads(cpu_count()) on -device cpu: pin it to one.
NNUNET_WRAPPER = """
import sys, torch
_set = torch.set_num_threads
_set(1)
torch.set_num_threads = lambda n: _set(1)
if __name__ == "__main__":  # spawned workers re-import this file
    from importlib import import_module
    mod, fn = sys.argv[1].split(":")
    sys.argv = [fn] + sys.argv[2:]
    getattr(import_module(mod), fn)()
"""
ENTRY = {
    "plan": "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints:"
    "plan_and_preprocess_entry",
    "train": "nnunetv2.run.run_training:run_training_entry",
    "predict": "nnunetv2.inference.predict_from_raw_data:predict_entry_point",
}
TRAINER = ROOT / "benchmarks" / "nnunet_budget_trainer.py"


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def _pss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _tree_memory(pid: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over ``pid`` and all its descendants.

    Summed RSS counts pages shared between processes (torch libraries in worker
    processes) once per process; summed PSS splits them, so it is the tree's real footprint.
    """
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(d.name)] = int(fields.get("PPid", "0").strip())
        rss[int(d.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    pss = 0
    for p in tree:
        with contextlib.suppress(OSError, ValueError):
            pss += _pss(p)
    return sum(rss.get(p, 0) for p in tree), pss


def run_step(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run ``cmd``, polling the tree RSS; returns wall seconds, peak tree RSS, return code."""
    full_env = {**os.environ, **THREAD_ENV, **(env or {})}
    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        fh.write(" ".join(map(str, cmd)) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env)
        peak = [0, 0]

        def poll() -> None:
            while proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    rss, pss = _tree_memory(proc.pid)
                    peak[:] = [max(peak[0], rss), max(peak[1], pss)]
                time.sleep(0.2)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        rc = proc.wait()
        th.join()
    res = {"wall_s": time.perf_counter() - t0, "peak_rss_bytes": peak[0],
           "peak_pss_bytes": peak[1], "rc": rc}  # fmt: skip
    print(f"  {log.name}: rc={rc} {res['wall_s']:.0f} s, peak RSS {peak[0] / 2**30:.2f} GB, "
          f"PSS {peak[1] / 2**30:.2f} GB")  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"{cmd[:4]} failed (rc {rc}), see {log}")
    return res


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def prepare(name: str, shared: Path, out: Path) -> Path:
    """nnU-Net raw dataset with train cases in *Tr and the fixed test cases in *Ts."""
    spec = DATASETS[name]
    raw = out / "nnUNet_raw" / f"Dataset{spec['id']}_{name}"
    if (raw / "dataset.json").is_file():
        return raw
    tmp = out / "convert_tmp" / name
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [*MEDSEG, "auto", "convert", str(shared / spec["src"]), str(tmp)]
    run_step(cmd + (["--binarize"] if spec["binarize"] else []), out / f"{name}_convert.log")
    meta = json.loads((tmp / "dataset.json").read_text())
    ending = meta["file_ending"]
    for case in spec["test"]:
        for f in sorted((tmp / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}")):
            _move(f, tmp / "imagesTs" / f.name)
        _move(tmp / "labelsTr" / f"{case}{ending}", tmp / "labelsTs" / f"{case}{ending}")
    meta["numTraining"] = len(list((tmp / "labelsTr").iterdir()))
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), str(raw))
    return raw


def split_of(raw: Path) -> dict:
    ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    cases = {s: sorted(f.name[: -len(ending)] for f in (raw / s).iterdir()) for s in
             ("labelsTr", "labelsTs")}  # fmt: skip
    return {"train": cases["labelsTr"], "test": cases["labelsTs"]}


def evaluate(pred: Path, raw: Path, log: Path) -> dict:
    labels = json.loads((raw / "dataset.json").read_text())["labels"]
    values = [str(v) for v in sorted(labels.values()) if v != 0]
    out = log.with_suffix(".json")
    cmd = [*MEDSEG, "evaluate", str(pred), str(raw / "labelsTs"), "--labels", *values,
           "--json", str(out), "--csv", str(log.with_suffix(".csv"))]  # fmt: skip
    run_step(cmd, log)
    return json.loads(out.read_text())


def run_medseg(name: str, raw: Path, out: Path, budget: str) -> dict:
    model, pred = out / "medseg" / name, out / "medseg_pred" / name
    shutil.rmtree(model, ignore_errors=True)
    shutil.rmtree(pred, ignore_errors=True)
    cmd = [*MEDSEG, "auto", "run", str(raw), "--out", str(model), "--time-budget", budget,
           "--fold", "all", "--threads", "1"]  # fmt: skip
    train = run_step(cmd, out / f"{name}_medseg_run.log")
    report = json.loads((model / "report" / "report.json").read_text())
    cmd = [*MEDSEG, "auto", "predict", str(model), str(raw / "imagesTs"), str(pred),
           "--threads", "1"]  # fmt: skip
    predict = run_step(cmd, out / f"{name}_medseg_predict.log")
    plan = json.loads((model / "plans.json").read_text())
    return {
        "train_step": train,
        "predict_step": predict,
        "train_s": report.get("timings", {}).get("train_s"),
        "iterations": report.get("train", {}).get("iterations"),
        "plan": {k: plan.get(k) for k in ("configuration", "patch_size", "batch_size", "filters")},
        "metrics": evaluate(pred, raw, out / f"{name}_medseg_eval.log"),
    }


def install_trainer(nnunet_python: str) -> None:
    code = "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"
    pkg = Path(subprocess.check_output([nnunet_python, "-c", code], text=True).strip())
    target = pkg / "training" / "nnUNetTrainer" / "variants" / "nnUNetTrainerBudget.py"
    shutil.copyfile(TRAINER, target)


def _nnunet(py: str, out: Path, step: str, args: list, log: Path, env: dict | None = None):
    wrapper = out / "nnunet_wrapper.py"
    wrapper.write_text(NNUNET_WRAPPER)
    base = {
        "nnUNet_raw": str(out / "nnUNet_raw"),
        "nnUNet_preprocessed": str(out / "nnUNet_preprocessed"),
        "nnUNet_results": str(out / "nnUNet_results"),
        "nnUNet_n_proc_DA": "0",
        "nnUNet_compile": "false",
    }
    return run_step([py, str(wrapper), ENTRY[step], *map(str, args)], log, {**base, **(env or {})})


def run_nnunet(name: str, raw: Path, out: Path, budget_s: float, py: str) -> dict:
    spec = DATASETS[name]
    did, cfg = str(spec["id"]), spec["config"]
    for sub in ("nnUNet_preprocessed", "nnUNet_results"):
        shutil.rmtree(out / sub / raw.name, ignore_errors=True)
    pred = out / "nnunet_pred" / name
    shutil.rmtree(pred, ignore_errors=True)
    t0 = time.time()
    deadline = {"NNUNET_BUDGET_DEADLINE": str(t0 + budget_s)}
    plan = _nnunet(py, out, "plan", ["-d", did, "-c", cfg, "-np", "1", "-npfp", "1"],
                   out / f"{name}_nnunet_plan.log")  # fmt: skip
    train = _nnunet(py, out, "train", [did, cfg, "all", "-tr", "nnUNetTrainerBudget",
                                       "-device", "cpu"],
                    out / f"{name}_nnunet_train.log", deadline)  # fmt: skip
    total = time.time() - t0
    args = ["-i", raw / "imagesTs", "-o", pred, "-d", did, "-c", cfg, "-f", "all",
            "-tr", "nnUNetTrainerBudget", "-device", "cpu", "--disable_tta",
            "-chk", "checkpoint_final.pth", "-npp", "1", "-nps", "1"]  # fmt: skip
    predict = _nnunet(py, out, "predict", args, out / f"{name}_nnunet_predict.log")
    fold = out / "nnUNet_results" / raw.name / f"nnUNetTrainerBudget__nnUNetPlans__{cfg}"
    info_file = fold / "fold_all" / "budget_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    plans = json.loads((fold / "plans.json").read_text())["configurations"][cfg]
    return {
        "plan_step": plan,
        "train_step": train,
        "predict_step": predict,
        "budget_wall_s": total,
        "train_s": info.get("train_s"),
        "iterations": info.get("iterations"),
        "plan": {k: plans.get(k) for k in ("patch_size", "batch_size")},
        "metrics": evaluate(pred, raw, out / f"{name}_nnunet_eval.log"),
    }


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _row(name: str, tool: str, res: dict, n_test: int) -> str:
    s = res["metrics"]
    per_class = " / ".join(_fmt(c["dice"]["mean"]) for c in s["per_class"].values())
    dice, hd = s["overall"]["dice"]["class_mean"], s["overall"]["hd95"]["class_mean"]
    steps = [v for k, v in res.items() if k.endswith("_step")]
    rss = max(v["peak_rss_bytes"] for v in steps) / 2**30
    pss = max(v.get("peak_pss_bytes", 0) for v in steps) / 2**30
    budget_wall = sum(v["wall_s"] for k, v in res.items() if k in ("plan_step", "train_step"))
    per_case = res["predict_step"]["wall_s"] / n_test
    return (f"| {name} | {tool} | {_fmt(dice)} ({per_class}) | {_fmt(hd, 1)} | "
            f"{res.get('iterations')} | {_fmt(res.get('train_s'), 0)} | {budget_wall:.0f} | "
            f"{per_case:.1f} | {rss:.2f} | {pss:.2f} |")  # fmt: skip


def print_table(results: dict) -> None:
    print("| dataset | tool | Dice mean (per class) | HD95 mean | iterations | train s |"
          " budget wall s | inference s/case | peak RSS GB | peak PSS GB |")  # fmt: skip
    print("|---" * 10 + "|")
    for name, entry in results.items():
        for tool in ("medseg", "nnunet"):
            if tool in entry:
                print(_row(name, tool, entry[tool], len(entry["split"]["test"])))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--budget", default="10m", help="wall-clock budget per tool, e.g. 10m")
    ap.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    ap.add_argument("--tools", nargs="+", choices=("medseg", "nnunet"),
                    default=["medseg", "nnunet"])  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/autobench"))
    ap.add_argument("--nnunet-python", default="/tmp/nnunet-venv/bin/python")
    ap.add_argument("--table-only", action="store_true", help="print OUT/results.json")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if args.table_only:
        print_table(results)
        return
    if "nnunet" in args.tools:
        install_trainer(args.nnunet_python)
    for name in args.datasets:
        raw = prepare(name, args.shared, args.out)
        entry = results.setdefault(name, {})
        entry["split"] = split_of(raw)
        for tool in args.tools:
            print(f"{name}: {tool}, budget {args.budget}", flush=True)
            if tool == "medseg":
                res = run_medseg(name, raw, args.out, args.budget)
            else:
                budget_s = parse_duration(args.budget)
                res = run_nnunet(name, raw, args.out, budget_s, args.nnunet_python)
            entry[tool] = {**res, "budget": args.budget, "finished_utc": time.ctime()}
            results_file.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
