"""strategy=multitask on real digits: heads beat chance, learned weights, missing labels, finetune parity, reload."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import FAST, compose_config

from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import build, instantiate, train
from transferlab.strategies import Finetune, Multitask, TransferModule

# Long enough for every head to learn on CPU (45 steps of 32 images at 32 px), short enough for CI.
LEARN = ["strategy=multitask", "trainer.max_epochs=3", "trainer.limit_train_batches=15", "data.batch_size=32",
         "optimizer.lr=3e-3", "scheduler=none", "trainer.limit_test_batches=null", "logger=none",
         "callbacks.evaluation_figures=null"]
CHANCE = {"digit": 0.1, "parity": 0.5, "ge5": 0.5}
BEATS = {"digit": 0.5, "parity": 0.75, "ge5": 0.75}  # well above chance on the 360 test digits


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-head model (digit, parity, >= 5) trained and tested through ``transferlab.experiment.train``."""
    out = tmp_path_factory.mktemp("multitask") / "run"
    cfg = compose_config(out, *FAST, *LEARN)
    train(cfg)
    return cfg, json.loads((out / "metrics.json").read_text())


def test_three_heads_each_beat_chance_clearly(trained):
    _, payload = trained
    metrics = payload["metrics"]
    print({k: round(v, 3) for k, v in metrics.items() if k.startswith("test/")})
    for task, floor in BEATS.items():
        assert metrics[f"test/task/{task}/acc"] > floor, task
        assert metrics[f"test/task/{task}/f1"] > floor - 0.1, task
    assert metrics["test/acc"] == pytest.approx(sum(metrics[f"test/task/{t}/acc"] for t in CHANCE) / 3, abs=1e-6)
    assert payload["monitor"] == "val/acc" and not math.isnan(payload["monitor_value"])
    assert payload["best_model_path"].endswith(".ckpt")


def test_checkpoint_reproduces_every_task_metric(trained):
    cfg, payload = trained
    best = payload["best_model_path"]
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["transferlab"]["task_class_names"]["parity"] == ["even", "odd"]
    assert [t["name"] for t in ckpt["hyper_parameters"]["tasks"]] == ["digit", "parity", "ge5"]
    expected = {k: v for k, v in payload["metrics"].items() if k.startswith("test/")}

    _, datamodule, fresh, trainer = build(cfg)  # trainer.test(ckpt_path=...) on a newly built module
    trainer.test(fresh, datamodule=datamodule, ckpt_path=best, verbose=False)
    assert {k: float(trainer.callback_metrics[k]) for k in expected} == pytest.approx(expected, abs=1e-6)

    loaded = Multitask.load_from_checkpoint(best, backbone=instantiate(cfg.model))  # no config needed
    assert loaded.task_class_names["ge5"] == ["below 5", "5 or more"]
    tester = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    tester.test(loaded, datamodule=datamodule, verbose=False)
    assert {k: float(tester.callback_metrics[k]) for k in expected} == pytest.approx(expected, abs=1e-6)


def test_uncertainty_weights_are_learned(make_cfg):
    cfg = make_cfg("strategy=multitask", "strategy.weighting=uncertainty", "trainer.limit_train_batches=4",
                   "optimizer.lr=0.01", "logger=none", "test=false")
    _, datamodule, module, trainer = build(cfg)
    assert torch.equal(module.effective_weights(), torch.ones(3))
    trainer.fit(module, datamodule=datamodule)
    weights = module.effective_weights().detach()
    assert not torch.allclose(weights, torch.ones(3), atol=1e-3)  # moved from the start
    assert len(set(weights.tolist())) == 3  # and differently per task
    logged = torch.stack([trainer.callback_metrics[f"train/task/{t}/weight"] for t in CHANCE])  # before last step
    assert torch.allclose(logged, weights, atol=0.01) and not torch.allclose(logged, torch.ones(3), atol=1e-3)
    assert "log_vars" in {n for g in trainer.optimizers[0].param_groups if g["name"].startswith("head")
                          for n, p in module.named_parameters() if any(p is q for q in g["params"])}


def test_missing_labels_are_ignored_per_task(make_cfg):
    """parity labelled for half the batch, a regression task for none, a multi-label task for all."""
    data_tasks = {"digit": {"num_classes": 10, "kind": "multiclass", "class_names": None},
                  "parity": {"num_classes": 2, "kind": "multiclass", "class_names": None},
                  "size": {"num_classes": 1, "kind": "regression", "class_names": None},
                  "flags": {"num_classes": 3, "kind": "multilabel", "class_names": None}}
    cfg = make_cfg("model.weights=none")
    module = Multitask(instantiate(cfg.model), tasks=[{"name": n} for n in data_tasks], data_tasks=data_tasks,
                       optimizer=None)
    n = 8
    targets = {"digit": torch.arange(n), "parity": torch.tensor([0, 1, 0, 1, -1, -1, -1, -1]),
               "size": torch.full((n,), math.nan), "flags": torch.randint(0, 2, (n, 3)).float()}
    images = torch.randn(n, 3, 32, 32)
    total, losses, _ = module.compute_losses(module(images), targets)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in losses.values())
    assert losses["size"] == 0 and losses["parity"] > 0
    total.backward()
    module.shared_step((images, targets), "val")  # updates the metrics
    assert module.head["size"][-1].weight.grad.abs().sum() == 0  # no label, no gradient
    assert module.head["parity"][-1].weight.grad.abs().sum() > 0
    counted = {name: int(c[f"val/task/{name}/acc"].tp.sum() + c[f"val/task/{name}/acc"].fn.sum())
               for name, c in module.val_metrics.items() if name in ("digit", "parity")}
    assert counted == {"digit": 8, "parity": 4}
    assert not any(m.update_called for m in module.val_metrics["size"].values())
    assert int(module.val_metrics["flags"]["val/task/flags/acc"].tp.sum()
               + module.val_metrics["flags"]["val/task/flags/acc"].fn.sum()
               + module.val_metrics["flags"]["val/task/flags/acc"].tn.sum()
               + module.val_metrics["flags"]["val/task/flags/acc"].fp.sum()) == 3 * n


def test_freezing_and_lr_multipliers_are_finetunes(make_cfg):
    """Same helpers, not copies: the stage groups and frozen stages of multitask equal finetune's."""
    assert issubclass(Multitask, Finetune)
    assert Multitask.parameter_groups is TransferModule.parameter_groups
    assert Multitask.frozen_depth is Finetune.frozen_depth and Multitask.apply_freezing is TransferModule.apply_freezing
    common = ("strategy.freeze_depth=3", "strategy.backbone_lr_mult=0.1", "strategy.layer_decay=0.5")
    single = build(make_cfg(*common, run="finetune"))[2]
    multi = build(make_cfg("strategy=multitask", *common, run="multitask"))[2]
    groups = {name: module.parameter_groups(0.01, 0.05) for name, module in (("single", single), ("multi", multi))}
    stage = {name: [(g["name"], g["lr"], len(g["params"])) for g in gs if g["name"].startswith("stage")]
             for name, gs in groups.items()}
    assert stage["single"] == stage["multi"] and len(stage["multi"]) >= multi.backbone.num_stages
    head = [p for g in groups["multi"] if g["name"].startswith("head") for p in g["params"]]
    assert {id(p) for p in multi.head.parameters()} == {id(p) for p in head}
    assert all(g["lr"] == 0.01 for g in groups["multi"] if g["name"].startswith("head"))
    trainable = [[p.requires_grad for p in m.backbone.parameters()] for m in (single, multi)]
    assert trainable[0] == trainable[1] and not all(trainable[1]) and any(trainable[1])


def test_single_task_multitask_equals_finetune(make_cfg):
    """One task through multitask is finetune: same init order, data order and loss, so bit-identical weights."""
    common = ("trainer.limit_train_batches=3", "logger=none", "callbacks.evaluation_figures=null")
    results = {}
    for name, extra in {"finetune": [], "multitask": ["strategy=multitask", "strategy.tasks=[{name: digit}]"]}.items():
        _, datamodule, module, trainer = build(make_cfg(*common, *extra, run=name))
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)
        results[name] = (float(trainer.callback_metrics["test/acc"]), module)
    (acc_f, finetune), (acc_m, multitask) = results["finetune"], results["multitask"]
    assert acc_f == acc_m
    assert all(torch.equal(a, b) for a, b in zip(finetune.backbone.state_dict().values(),
                                                 multitask.backbone.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(finetune.head.parameters(), multitask.head["digit"].parameters()))


def test_bad_task_declarations_are_clear(make_cfg):
    with pytest.raises(TransferlabError, match=r"task\(s\) \['shape'\]: DigitsDataModule derives \['digit', 'ge5', "):
        build(make_cfg("strategy=multitask", "strategy.tasks=[{name: digit}, {name: shape}]"))
    with pytest.raises(TransferlabError, match=r"strategy.tasks\[parity\].num_classes=3 but the data's task has"):
        build(make_cfg("strategy=multitask", "strategy.tasks=[{name: parity, num_classes: 3}]"))
    with pytest.raises(TransferlabError, match="use strategy=multitask"):
        build(make_cfg("data.tasks=[digit]"))
    with pytest.raises(TransferlabError, match="strategy.weighting='magic'"):
        build(make_cfg("strategy=multitask", "strategy.weighting=magic"))


def test_task_losses_are_torch_losses_over_labelled_rows():
    from torch.nn import functional as F

    from transferlab.contracts.tasks import resolve_tasks
    from transferlab.losses.tasks import TaskLoss

    specs = resolve_tasks([{"name": "organ", "num_classes": 3, "class_weights": [1.0, 2.0, 3.0]},
                           {"name": "flags", "num_classes": 2, "kind": "multilabel"},
                           {"name": "age", "kind": "regression", "num_classes": 1}], None, label_smoothing=0.1)
    organ, flags, age = (TaskLoss(s) for s in specs)
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([2, -1, 0, 1])
    expected = F.cross_entropy(logits[[0, 2, 3]], target[[0, 2, 3]], weight=torch.tensor([1.0, 2.0, 3.0]),
                               label_smoothing=0.1)
    assert torch.allclose(organ(*organ.labelled(logits, target)), expected)
    multi, multi_target = torch.randn(3, 2), torch.tensor([[1.0, 0.0], [math.nan, math.nan], [0.0, 0.0]])
    assert torch.allclose(flags(*flags.labelled(multi, multi_target)),
                          F.binary_cross_entropy_with_logits(multi[[0, 2]], multi_target[[0, 2]]))
    values = torch.randn(3, 1)
    assert torch.allclose(age(*age.labelled(values, torch.tensor([1.0, math.nan, 3.0]))),
                          F.mse_loss(values[[0, 2], 0], torch.tensor([1.0, 3.0])))
    none = organ(*organ.labelled(logits, torch.full((4,), -1)))
    assert none == 0 and none.requires_grad  # zero, not NaN, and still part of the graph
    with pytest.raises(TransferlabError, match=r"class_weights needs a multiclass task and one weight per class"):
        resolve_tasks([{"name": "organ", "num_classes": 3, "class_weights": [1.0, 2.0]}], None)


def test_predict_and_export_give_every_task(trained, tmp_path):
    """A multi-task checkpoint predicts one column set per task on real digit files; ONNX gives one output per task."""
    import csv

    import numpy as np
    import onnxruntime
    from omegaconf import OmegaConf
    from PIL import Image
    from sklearn.datasets import load_digits

    from transferlab.experiment import load_module
    from transferlab.export import export
    from transferlab.predict import main

    cfg, _ = trained
    run = Path(cfg.paths.output_dir)
    (run / ".hydra").mkdir(exist_ok=True)  # as `python -m transferlab.run` leaves it
    OmegaConf.save(OmegaConf.masked_copy(cfg, ["model", "strategy", "data"]), run / ".hydra" / "config.yaml")
    digits = load_digits()
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(40):  # the first 40 digits as 32 px PNG files, as the DataModule draws them
        pixels = (digits.images[i] / 16 * 255).round().astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.BILINEAR).save(folder / f"{i:02d}_{digits.target[i]}.png")
    ckpt, out = run / "checkpoints" / "last.ckpt", tmp_path / "pred.csv"
    assert main([f"ckpt={ckpt}", f"input={folder}", f"output={out}", "topk=2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 40 and list(rows[0]) == ["path", *(f"{t}_{c}_{i}" for t in ("digit", "parity", "ge5")
                                                          for i in (1, 2) for c in ("class", "prob"))]
    truth = [int(r["path"].rsplit("_", 1)[1][0]) for r in rows]
    digit_acc = np.mean([r["digit_class_1"] == str(t) for r, t in zip(rows, truth)])
    assert digit_acc > 0.5, digit_acc  # the trained heads, not random ones (chance 10%)
    module, names, _, _ = load_module(ckpt)
    assert set(names) == {"digit", "parity", "ge5"} and {r["parity_class_1"] for r in rows} <= set(names["parity"])

    path = export(str(ckpt), "onnx", str(tmp_path / "m.onnx"))
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(images)
    session = onnxruntime.InferenceSession(str(path))
    got = session.run(None, {"images": images.numpy()})
    assert [o.name for o in session.get_outputs()] == ["logits_digit", "logits_parity", "logits_ge5"]
    for task, array in zip(("digit", "parity", "ge5"), got):
        np.testing.assert_allclose(array, expected[task].numpy(), rtol=0, atol=1e-4)
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["class_names"] == names and set(sidecar["output"]) == {"digit", "parity", "ge5"}


def test_prediction_columns_for_each_task_kind():
    from transferlab.predict import task_columns

    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    assert task_columns(probs, ["a", "b", "c"], "multiclass", 2, "t_") == [
        {"t_class_1": "b", "t_prob_1": "0.700000", "t_class_2": "c", "t_prob_2": "0.200000"},
        {"t_class_1": "a", "t_prob_1": "0.500000", "t_class_2": "b", "t_prob_2": "0.300000"}]
    assert task_columns(probs[:, :2], ["x", "y"], "multilabel", 5) == [
        {"prob_x": "0.100000", "prob_y": "0.700000"}, {"prob_x": "0.500000", "prob_y": "0.300000"}]
    assert task_columns(torch.tensor([[1.5], [-2.0]]), ["0"], "regression", 5, "age_") == [
        {"age_value": "1.500000"}, {"age_value": "-2.000000"}]


# --- uncertainty weighting (Kendall, Gal & Cipolla 2018) with task weights -------------------------------------------
def small_multitask(make_cfg, tasks, weighting="uncertainty"):
    """A Multitask module on an untrained backbone; its ``compute_losses`` is fed outputs directly."""
    return Multitask(instantiate(make_cfg("model.weights=none").model), tasks=tasks, weighting=weighting,
                     optimizer=None)


def test_uncertainty_loss_is_kendalls_form_scaled_by_each_weight():
    """combine_losses = sum_i w_i * (c_i * exp(-s_i) * L_i + s_i / 2), c = 1 (classification) or 1/2 (regression)."""
    from transferlab.strategies.multitask import LIKELIHOOD_SCALE, combine_losses

    assert LIKELIHOOD_SCALE == {"multiclass": 1.0, "multilabel": 1.0, "regression": 0.5}
    losses = [0.7, 1.3, 0.4, 2.5]
    log_vars = [0.2, -0.5, 1.1, 0.3]
    weights = [1.0, 0.5, 2.0, 0.0]
    scales = [1.0, 1.0, 0.5, 1.0]  # multiclass, multilabel, regression, multiclass with weight 0
    expected = sum(w * (c * math.exp(-s) * loss + 0.5 * s) for loss, s, w, c in zip(losses, log_vars, weights, scales))
    s = torch.tensor(log_vars, dtype=torch.float64, requires_grad=True)
    as_tensor = {"losses": torch.tensor(losses, dtype=torch.float64),
                 "weights": torch.tensor(weights, dtype=torch.float64),
                 "scales": torch.tensor(scales, dtype=torch.float64)}
    total = combine_losses(as_tensor["losses"], as_tensor["weights"], s, as_tensor["scales"])
    assert total.item() == pytest.approx(expected, rel=1e-14, abs=0)
    total.backward()
    grads = [w * (0.5 - c * math.exp(-si) * loss) for loss, si, w, c in zip(losses, log_vars, weights, scales)]
    assert s.grad.tolist() == pytest.approx(grads, rel=1e-12, abs=1e-15)
    assert s.grad[3] == 0  # weight 0: the task's whole term, its s term included, is gone
    # A task without labels in the batch drops out entirely; fixed weighting is sum_i w_i * L_i.
    present = torch.tensor([True, False, True, True])
    dropped = combine_losses(as_tensor["losses"], as_tensor["weights"], s, as_tensor["scales"], present)
    term_1 = weights[1] * (math.exp(-log_vars[1]) * losses[1] + 0.5 * log_vars[1])
    assert dropped.item() == pytest.approx(expected - term_1, rel=1e-14, abs=0)
    fixed = combine_losses(as_tensor["losses"], as_tensor["weights"])
    assert fixed.item() == pytest.approx(sum(w * loss for w, loss in zip(weights, losses)), rel=1e-14, abs=0)


def test_module_total_follows_the_form_of_each_task_kind(make_cfg):
    """The module's total over real outputs: classification, multi-label and regression forms, weights and a task
    without labels; the log-variances are in the state dict (checkpoints, resume) and load back."""
    from torch.nn import functional as F

    tasks = [{"name": "digit", "num_classes": 10, "weight": 1.0},
             {"name": "flags", "num_classes": 3, "kind": "multilabel", "weight": 0.5},
             {"name": "size", "num_classes": 1, "kind": "regression", "weight": 2.0},
             {"name": "parity", "num_classes": 2, "weight": 0.5}]
    module = small_multitask(make_cfg, tasks)
    log_vars = [0.3, -0.4, 0.8, 1.5]
    with torch.no_grad():
        module.log_vars.copy_(torch.tensor(log_vars))
    g = torch.Generator().manual_seed(0)
    outputs = {"digit": torch.randn(6, 10, generator=g), "flags": torch.randn(6, 3, generator=g),
               "size": torch.randn(6, 1, generator=g), "parity": torch.randn(6, 2, generator=g)}
    targets = {"digit": torch.tensor([0, 3, 9, 1, -1, 4]), "flags": torch.randint(0, 2, (6, 3), generator=g).float(),
               "size": torch.tensor([1.5, -0.5, math.nan, 2.0, 0.0, 0.7]), "parity": torch.full((6,), -1)}
    total, losses, _ = module.compute_losses(outputs, targets)
    keep = [0, 1, 2, 3, 5]
    by_hand = {"digit": F.cross_entropy(outputs["digit"][keep], targets["digit"][keep]).item(),
               "flags": F.binary_cross_entropy_with_logits(outputs["flags"], targets["flags"]).item(),
               "size": F.mse_loss(outputs["size"][[0, 1, 3, 4, 5], 0], targets["size"][[0, 1, 3, 4, 5]]).item()}
    assert {k: losses[k].item() for k in by_hand} == pytest.approx(by_hand, rel=1e-6)
    s = dict(zip(("digit", "flags", "size"), log_vars))
    expected = (1.0 * (math.exp(-s["digit"]) * by_hand["digit"] + 0.5 * s["digit"])
                + 0.5 * (math.exp(-s["flags"]) * by_hand["flags"] + 0.5 * s["flags"])
                + 2.0 * (0.5 * math.exp(-s["size"]) * by_hand["size"] + 0.5 * s["size"]))  # parity: no label
    assert total.item() == pytest.approx(expected, rel=1e-6)
    effective = [1.0 * math.exp(-0.3), 0.5 * math.exp(0.4), 2.0 * 0.5 * math.exp(-0.8), 0.5 * math.exp(-1.5)]
    assert module.effective_weights().tolist() == pytest.approx(effective, rel=1e-6)

    state = module.state_dict()
    assert "log_vars" in state and not any("task_weights" in k or "likelihood_scales" in k for k in state)
    fresh = small_multitask(make_cfg, tasks)
    fresh.load_state_dict(state)  # strict: the checkpoint's keys are exactly the module's
    assert torch.equal(fresh.log_vars, module.log_vars)
    assert fresh.compute_losses(outputs, targets)[0].item() == pytest.approx(total.item(), rel=1e-6)


def test_weight_scales_the_effective_weight_at_the_optimal_log_variance(make_cfg):
    """For fixed losses L the learned s reaches s* = log(2L) (classification) or log(L) (regression), whatever the
    weight, so the effective weight there is w / (2L): proportional to w. (The old sum_i w_i exp(-s_i) L_i + s_i
    had s* = log(wL) and effective weight 1/L for every w.)"""
    tasks = [{"name": "a", "num_classes": 2, "weight": 1.0}, {"name": "b", "num_classes": 2, "weight": 0.5},
             {"name": "c", "num_classes": 2, "weight": 0.25}, {"name": "r", "num_classes": 1, "kind": "regression",
                                                                "weight": 0.5}]
    module = small_multitask(make_cfg, tasks)
    g = torch.Generator().manual_seed(1)
    outputs = {n: torch.randn(16, 2 if n != "r" else 1, generator=g) for n in "abcr"}
    targets = {n: torch.randint(0, 2, (16,), generator=g) for n in "abc"} | {"r": torch.randn(16, generator=g)}
    optimizer = torch.optim.LBFGS([module.log_vars], lr=1, max_iter=200, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        total = module.compute_losses(outputs, targets)[0]
        total.backward()
        return total

    optimizer.step(closure)
    _, losses, _ = module.compute_losses(outputs, targets)
    loss = torch.stack([losses[n] for n in "abcr"]).detach()
    optimum = torch.log(torch.stack([2 * loss[0], 2 * loss[1], 2 * loss[2], loss[3]]))
    assert torch.allclose(module.log_vars.detach(), optimum, atol=1e-4)
    weights = torch.tensor([1.0, 0.5, 0.25, 0.5])
    effective = module.effective_weights().detach()
    assert torch.allclose(effective, weights / (2 * loss), rtol=1e-4)
    assert torch.allclose(effective * loss, weights / 2, rtol=1e-4)  # each task's pull w_i/2, whatever its loss


def test_changing_a_weight_changes_the_learned_balance(make_cfg):
    """Two binary tasks that disagree pull one shared logit z (each head's logits are (0, z)): task a's labels are
    3/4 class 1, b's 3/4 class 0, so L_b(z) = L_a(-z). With s and z learned together, equal weights balance at z = 0;
    quartering b's weight moves z towards a's optimum (logit(3/4) = 1.10), so b's loss rises relative to a's. Under
    the old form the weight was absorbed into s (effective weight 1/L_i for any w) and z stayed at 0."""
    labels = {"a": torch.tensor([1, 1, 1, 0]), "b": torch.tensor([0, 0, 0, 1])}
    results = {}
    for weight_b in (1.0, 0.25):
        tasks = [{"name": "a", "num_classes": 2}, {"name": "b", "num_classes": 2, "weight": weight_b}]
        module = small_multitask(make_cfg, tasks)
        z = torch.zeros(1, requires_grad=True)  # the shared parameter: both heads read it

        def outputs(z=z):
            logits = torch.cat([torch.zeros(1), z]).expand(4, 2)
            return {"a": logits, "b": logits}

        optimizer = torch.optim.LBFGS([z, module.log_vars], lr=1, max_iter=500, tolerance_grad=1e-10,
                                      tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure(module=module, optimizer=optimizer, outputs=outputs):
            optimizer.zero_grad()
            total = module.compute_losses(outputs(), labels)[0]
            total.backward()
            return total

        optimizer.step(closure)
        _, losses, _ = module.compute_losses(outputs(), labels)
        results[weight_b] = (z.item(), losses["a"].item(), losses["b"].item(), module.log_vars.detach().clone(),
                             module.effective_weights().detach())
        assert z.grad.abs().item() < 1e-5 and module.log_vars.grad.abs().max().item() < 1e-5  # a stationary point

    (z_equal, a_equal, b_equal, s_equal, _), (z_low, a_low, b_low, s_low, eff_low) = results[1.0], results[0.25]
    print({"equal": (z_equal, a_equal, b_equal), "b at 0.25": (z_low, a_low, b_low)})
    assert abs(z_equal) < 1e-4 and a_equal == pytest.approx(b_equal, rel=1e-4)
    assert z_low > 0.3  # towards a's optimum
    assert b_low / a_low > 1.2 * b_equal / a_equal  # the balance of the per-task losses moved
    assert s_low[1] - s_low[0] > s_equal[1] - s_equal[0] + 0.2  # the learned log-variances followed the losses
    # Stationary in z: the effective weights w_i / (2 L_i) balance the gradients of the two losses.
    assert eff_low.tolist() == pytest.approx([1.0 / (2 * a_low), 0.25 / (2 * b_low)], rel=1e-4)


def test_a_binary_task_is_a_multilabel_task_of_one_label_with_binary_metrics():
    from transferlab.contracts.tasks import resolve_tasks
    from transferlab.losses.tasks import TaskLoss
    from transferlab.metrics.tasks import task_metrics

    (spec,) = resolve_tasks([{"name": "defect", "num_classes": 1, "kind": "multilabel"}], None)
    loss, metrics = TaskLoss(spec), task_metrics(spec, "val/task/defect/")
    logits = torch.tensor([[2.0], [-1.0], [0.5], [math.nan]])
    target = torch.tensor([[1.0], [0.0], [0.0], [math.nan]])  # the last row is unlabelled
    metrics.update(*loss.for_metrics(*loss.labelled(logits, target)))
    values = {k: v.item() for k, v in metrics.compute().items()}
    assert values == pytest.approx({"val/task/defect/acc": 2 / 3, "val/task/defect/f1": 2 / 3})


def test_a_multitask_module_with_a_binary_task_trains_and_measures_it(make_cfg):
    data_tasks = {"digit": {"num_classes": 10, "kind": "multiclass", "class_names": None},
                  "defect": {"num_classes": 1, "kind": "multilabel", "class_names": None}}
    cfg = make_cfg("model.weights=none")
    module = Multitask(instantiate(cfg.model), tasks=[{"name": n} for n in data_tasks], data_tasks=data_tasks,
                       optimizer=None)
    targets = {"digit": torch.arange(6), "defect": torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]])}
    images = torch.randn(6, 3, 32, 32)
    total, losses, _ = module.compute_losses(module(images), targets)
    total.backward()
    assert losses["defect"] > 0 and module.head["defect"][-1].weight.grad.abs().sum() > 0
    module.shared_step((images, targets), "val")
    values = module.val_metrics["defect"].compute()
    assert set(values) == {"val/task/defect/acc", "val/task/defect/f1"}
    assert 0 <= values["val/task/defect/acc"] <= 1
