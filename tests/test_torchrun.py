"""Multi-process DDP as a cluster launches it: ``torchrun --nproc_per_node=2`` on CPU (gloo), every rank running
``python -m transferlab.run trainer=ddp`` with its own Hydra.

One run folder for all ranks (``hydra.run.dir`` names it after the launcher's job id, ``run_folder.job_stamp``), one
metrics.json, a best checkpoint that one process re-tests to the same numbers, and the DANN lambda schedule,
gradual unfreezing and the weights themselves equal on both ranks (``RankProbe`` records them per rank).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_in_process
from omegaconf import OmegaConf

from transferlab.experiment import instantiate, load_config, load_module
from transferlab.heads import dann_lambda
from transferlab.run_folder import job_stamp

EPOCHS, STEPS, BATCH, TEST_BATCHES, RANKS = 2, 3, 8, 2, 2
JOB = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32", "channels_last=false", "strategy=dann",
       f"trainer.max_epochs={EPOCHS}", f"trainer.limit_train_batches={STEPS}", "trainer.limit_val_batches=2",
       f"trainer.limit_test_batches={TEST_BATCHES}", "data.image_size=32", f"data.batch_size={BATCH}",
       "data.validator_samples=16", "callbacks.domain_report.max_samples=16", "logger=none",
       "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
       "strategy.freeze_depth=6", "strategy.unfreeze_epochs=[1]",  # epoch 1 trains one more backbone stage
       "+callbacks.probe._target_=test_torchrun.RankProbe"]
LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "NODE_RANK")


class RankProbe(L.Callback):
    """Test-only: one JSON line per training step and per test batch in ``<run>/probe/rank<r>.jsonl``.

    Training: global step, lambda (the GRL coefficient the step uses), frozen depth, the trainable parameter names
    (a count and a digest) and, at each epoch end, a digest of every parameter's bytes. Test: each sample's label,
    prediction and loss, so one process can re-test exactly the samples each rank saw.
    """

    def _write(self, trainer, record: dict) -> None:
        folder = Path(trainer.default_root_dir) / "probe"
        folder.mkdir(exist_ok=True)
        with open(folder / f"rank{trainer.global_rank}.jsonl", "a") as out:
            out.write(json.dumps({"rank": trainer.global_rank, "world_size": trainer.world_size, **record}) + "\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        trainable = [name for name, p in pl_module.named_parameters() if p.requires_grad]
        self._write(trainer, {"event": "train", "epoch": trainer.current_epoch, "step": trainer.global_step,
                              "lambda": pl_module.grl_coeff(), "frozen_depth": pl_module.frozen_depth(),
                              "trainable": len(trainable),
                              "trainable_names": hashlib.sha1(" ".join(trainable).encode()).hexdigest()})

    def on_train_epoch_end(self, trainer, pl_module):
        digest = hashlib.sha1()
        for p in pl_module.parameters():
            digest.update(p.detach().cpu().numpy().tobytes())
        self._write(trainer, {"event": "weights", "epoch": trainer.current_epoch, "digest": digest.hexdigest()})

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        images, labels = batch
        logits = pl_module(images)
        self._write(trainer, {"event": "test", "loader": dataloader_idx, "batch": batch_idx,
                              "labels": labels.tolist(), "preds": logits.argmax(1).tolist(),
                              "losses": F.cross_entropy(logits, labels, reduction="none").tolist()})


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One torchrun job (about a minute on 2 cores): its cwd, run folder, metrics.json and per-rank probe records."""
    cwd = tmp_path_factory.mktemp("torchrun")
    env = {key: value for key, value in os.environ.items()  # a clean launch, also when pytest runs under SLURM
           if not key.startswith(("SLURM_", "TORCHELASTIC_")) and key not in LAUNCHER_ENV}
    env.update(PYTHONWARNINGS="ignore", PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               TRANSFERLAB_OUTPUTS=str(cwd / "outputs"), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
               "-m", "transferlab.run", *JOB]  # no trainer.devices / num_nodes: trainer=ddp reads torchrun's
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    print(f"torchrun job: {time.perf_counter() - start:.0f} s")
    runs = sorted((cwd / "outputs" / "runs").iterdir())
    records = {rank: [json.loads(line) for line in (runs[0] / "probe" / f"rank{rank}.jsonl").read_text().splitlines()]
               for rank in range(RANKS)} if len(runs) == 1 else {}
    return {"cwd": cwd, "runs": runs, "metrics": json.loads((runs[0] / "metrics.json").read_text()),
            "records": records}


def test_all_ranks_share_one_run_folder_named_after_the_job(ddp_run):
    [run] = ddp_run["runs"]  # not one folder per rank: the name comes from torchrun's run id, not each rank's clock
    assert run.name.startswith("torchrun-") and run.name.endswith("_dann-efficientnet_lite0"), run.name
    assert [p.relative_to(ddp_run["cwd"]) for p in ddp_run["cwd"].rglob("metrics.json")] == \
        [run.relative_to(ddp_run["cwd"]) / "metrics.json"]  # written once, by rank 0
    assert ddp_run["metrics"]["status"] == "completed"
    assert Path(ddp_run["metrics"]["best_model_path"]).parent == run / "checkpoints"
    assert OmegaConf.load(run / ".hydra" / "overrides.yaml")[0] == "trainer=ddp"
    assert {r["world_size"] for records in ddp_run["records"].values() for r in records} == {RANKS}


def ranks_records(ddp_run, event: str) -> dict[int, list[dict]]:
    return {rank: [{k: v for k, v in r.items() if k != "rank"} for r in records if r["event"] == event]
            for rank, records in ddp_run["records"].items()}


def test_lambda_schedule_and_gradual_unfreezing_agree_across_ranks(ddp_run):
    """Both ranks train the same steps with the same lambda (a function of global_step / total steps alone) and
    the same trainable parameters, one more stage from epoch 1 on."""
    records = ranks_records(ddp_run, "train")
    assert records[0] == records[1]
    train = records[0]
    assert [r["step"] for r in train] == list(range(EPOCHS * STEPS))
    assert [r["lambda"] for r in train] == pytest.approx([dann_lambda(s / (EPOCHS * STEPS)) for s in range(6)])
    assert [r["frozen_depth"] for r in train] == [6] * STEPS + [5] * STEPS
    counts = [r["trainable"] for r in train]
    assert counts == [counts[0]] * STEPS + [counts[-1]] * STEPS and counts[-1] > counts[0]
    assert ddp_run["metrics"]["metrics"]["dann/lambda"] == pytest.approx(train[-1]["lambda"], rel=1e-6)
    weights = ranks_records(ddp_run, "weights")  # before any unfreezing the ranks' weights are equal, bit for bit
    assert weights[0][0]["epoch"] == 0 and weights[0][0] == weights[1][0]


def test_weights_agree_across_ranks_after_every_epoch(ddp_run):
    """Identical averaged gradients and one optimizer: every parameter equal on both ranks, bit for bit."""
    records = ranks_records(ddp_run, "weights")
    assert [r["epoch"] for r in records[0]] == list(range(EPOCHS))
    assert records[0] == records[1]


def retest_in_one_process(run: Path) -> dict[int, dict[str, torch.Tensor]]:
    """The best checkpoint on the first ``RANKS * TEST_BATCHES`` test batches of each test loader, in this process:
    per-sample labels, predictions and losses, in dataset order."""
    module, _, data_config, _ = load_module(json.loads((run / "metrics.json").read_text())["best_model_path"])
    cfg = load_config(list(OmegaConf.load(run / ".hydra" / "overrides.yaml")), output_dir=run.parent / "retest")
    datamodule = instantiate(cfg.data, data_config=data_config, seed=cfg.seed)
    datamodule.setup("test")
    out = {}
    with torch.no_grad():
        for index, loader in enumerate(datamodule.test_dataloader()):
            images, labels = (torch.cat(parts) for parts in zip(*islice(loader, RANKS * TEST_BATCHES)))
            logits = module(images)
            out[index] = {"labels": labels, "preds": logits.argmax(1),
                          "losses": F.cross_entropy(logits, labels, reduction="none")}
    return out


@pytest.fixture(scope="module")
def retest(ddp_run):
    """DDP's per-sample test records next to one process's re-test of the same samples.

    Lightning's DistributedSampler (shuffle off) gives rank r the samples r, r + 2, r + 4, ...; with 2 batches of 8
    per rank the two ranks cover the first 32 samples exactly once (no padding: the test sets are larger). So one
    process testing 4 batches sees the very samples DDP tested, and sample i was rank i % 2's.
    """
    single = retest_in_one_process(ddp_run["runs"][0])
    ddp = {}
    for loader in single:
        tests = [r for rank in range(RANKS) for r in ddp_run["records"][rank] if r["event"] == "test"
                 and r["loader"] == loader]
        by_index = {rank + RANKS * (r["batch"] * BATCH + j): (r["labels"][j], r["preds"][j], r["losses"][j])
                    for r in tests for rank in [r["rank"]] for j in range(len(r["labels"]))}
        assert sorted(by_index) == list(range(RANKS * TEST_BATCHES * BATCH))
        ddp[loader] = {key: torch.tensor([by_index[i][k] for i in sorted(by_index)])
                       for k, key in enumerate(("labels", "preds", "losses"))}
    return ddp, single


@pytest.mark.parametrize("loader,domain", [(0, "source"), (1, "target")])
def test_best_checkpoint_retested_in_one_process_gives_the_same_test_metrics(ddp_run, retest, loader, domain):
    """Same samples, same predictions (exactly) and per-sample losses (float tolerance: only the batch composition
    differs, and the network is in eval mode, so no sample depends on another). metrics.json's accuracy is the
    torchmetrics state synced over both ranks: exactly the one-process accuracy of those 32 samples. Its loss is a
    plain tensor logged without sync_dist: rank 0's mean today, the mean over all ranks once it is synced."""
    ddp, single = retest
    ddp, single = ddp[loader], single[loader]
    assert torch.equal(ddp["labels"], single["labels"]) and torch.equal(ddp["preds"], single["preds"])
    torch.testing.assert_close(ddp["losses"], single["losses"].float(), rtol=1e-4, atol=1e-5)
    test = ddp_run["metrics"]["test"]
    assert test[f"test/{domain}_acc"] == pytest.approx((single["preds"] == single["labels"]).float().mean().item(),
                                                       abs=1e-7)
    rank0, everyone = single["losses"][::RANKS].mean().item(), single["losses"].mean().item()
    assert test[f"test/{domain}_loss"] in (pytest.approx(rank0, rel=1e-5), pytest.approx(everyone, rel=1e-5))


def test_test_losses_average_over_all_ranks(ddp_run, retest):
    _, single = retest
    for loader, domain in ((0, "source"), (1, "target")):
        assert ddp_run["metrics"]["test"][f"test/{domain}_loss"] == pytest.approx(
            single[loader]["losses"].mean().item(), rel=1e-5)


# --- the run folder's name under each launcher (no processes started) ----------------------------------------
CLOCK = "2026-01-02_03-04-05-000006"


@pytest.mark.parametrize("env,expected", [
    ({}, CLOCK),                                                                       # one process
    ({"WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "91a416e6-0848-46d4-a964-f9ba80b2f1ee"}, CLOCK),  # torchrun, 1 proc
    ({"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "91a416e6-0848-46d4-a964-f9ba80b2f1ee"}, "torchrun-91a416e6"),
    ({"WORLD_SIZE": "8", "TORCHELASTIC_RUN_ID": "exp/7", "TORCHELASTIC_RESTART_COUNT": "2"}, "torchrun-exp-7-restart2"),
    ({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8"}, "slurm123.0"),
    ({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "4", "SLURM_NTASKS": "1"}, CLOCK),      # srun of one task
    ({"SLURM_JOB_ID": "123", "SLURM_NTASKS": "8"}, CLOCK),                             # the batch script itself
    ({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_RESTART_COUNT": "1",
      "WORLD_SIZE": "8", "TORCHELASTIC_RUN_ID": "123"}, "slurm123.1-requeue1"),        # srun torchrun --rdzv-id=$JOB
    ({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "1", "WORLD_SIZE": "4",
      "TORCHELASTIC_RUN_ID": "0a1b2c3d-0000-4000-8000-000000000000"}, "slurm123.1_torchrun-0a1b2c3d"),
])
def test_job_stamp_is_the_clock_for_one_process_and_the_job_id_for_several(monkeypatch, env, expected):
    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in LAUNCHER_ENV:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert job_stamp(CLOCK) == expected


def test_several_processes_without_a_shared_job_id_are_one_line_naming_the_fix(monkeypatch, tmp_path):
    from transferlab.run import main

    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in LAUNCHER_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("WORLD_SIZE", "2")  # multi-node torchrun without --rdzv-id: its run id is "none"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path / "outputs"))
    code, err = run_in_process(main, "trainer.max_epochs=1", monkeypatch=monkeypatch)
    assert code == 2 and "--rdzv-id" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "outputs").exists()


def test_the_folder_name_is_decided_once_per_process(monkeypatch, tmp_path):
    """Lightning's own launcher (trainer=ddp without torchrun) sets WORLD_SIZE in rank 0 and then reads
    hydra.run.dir again to start the other ranks in the same folder: the name must not change (nor fail)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in LAUNCHER_ENV:
            monkeypatch.delenv(key)
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="transferlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["trainer=ddp"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    first = cfg.hydra.run.dir
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cfg.hydra.run.dir == first and Path(first).name.endswith("_finetune-efficientnet_lite0")
