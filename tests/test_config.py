"""Config composition (Hydra compose API) for every model, and start-up validation."""
import pytest
from omegaconf import OmegaConf

from hyperbench.cli import check_group_choices
from hyperbench.config import group_options
from hyperbench.config import validate
from hyperbench.data import dataset_info
from hyperbench.errors import ConfigError
from hyperbench.models import model_from_config

from .conftest import CONF

MODELS = group_options("model")


def test_every_table2_row_has_a_config():
    assert {"conv", "hyper", "hyper4_4", "hyper4_5", "hyper4_6", "hyper5_5", "hyper6_6", "hyper4_7",
            "hyper4_8", "hyper7_7"} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_validates_and_builds(cfg_of, model):
    cfg = cfg_of(f"model={model}", "data=mnist")
    validate(cfg)
    shape, classes = dataset_info(cfg.data.name)
    net = model_from_config(cfg.model, classes, shape)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_defaults_are_the_published_mnist_recipe(cfg_of):
    cfg = cfg_of()
    assert cfg.model.name == "hyper5_5" and cfg.data.name == "mnist" and cfg.task.name == "classify"
    t = cfg.trainer
    assert (t.optimizer, t.batch_size, t.lr_decay, t.min_lr, t.grad_clip) == ("adam", 1000, 0.999, 0.0001, 100.0)
    assert cfg.data.val_size == 5000 and cfg.data.augment.pad == 1


def test_any_hyper_size_composes_from_the_generic_config(cfg_of):
    cfg = cfg_of("model=hyper", "model.z_dim=9", "model.d=3")
    assert cfg.model.name == "hyper9_3"
    assert model_from_config(cfg.model, 10, (1, 28, 28)).conv_params() == 16 * 3 * 9 + 16 * 3 + 49 * 16 * 3 + 49 * 16 + 9


def test_experiment_presets_sweep_the_table(cfg_of):
    table = OmegaConf.load(CONF / "experiment" / "table_mnist.yaml")
    assert table.hydra.sweeper.params.model.split(",") == [
        "conv", "hyper4_4", "hyper4_5", "hyper4_6", "hyper5_5", "hyper6_6", "hyper4_7", "hyper4_8", "hyper7_7"]
    table = OmegaConf.load(CONF / "experiment" / "table_invariance.yaml")
    assert table.hydra.sweeper.params.model.split(",") == [
        "cnn", "cnn_bn", "cnn_dropout", "cnn_bn_dropout", "cnn_deep", "hyper_cnn", "capsnet", "capsnet_em",
        "steerable_cnn"]
    cfg = cfg_of("experiment=lr_grid_mnist")
    assert cfg.task.name == "classify"


@pytest.mark.parametrize("override,message", [
    ("trainer.lr=abc", "trainer.lr must be a positive number"),
    ("trainer.lr=-0.1", "trainer.lr must be a positive number"),
    ("trainer.epochs=0", "trainer.epochs must be a positive integer"),
    ("trainer.epochs=2.5", "trainer.epochs must be a positive integer"),
    ("trainer.batch_size=many", "trainer.batch_size must be a positive integer"),
    ("trainer.lr_decay=1.5", "trainer.lr_decay must be a number in (0, 1]"),
    ("trainer.device=tpu", "trainer.device must be one of"),
    ("model.z_dim=0", "model.z_dim must be a positive integer"),
    ("model.d=-2", "model.d must be a positive integer"),
    ("data.val_size=0", "data.val_size must be a positive integer"),
    ("data.augment.pad=-1", "data.augment.pad must be a non-negative integer"),
    ("data.scale=[1,0]", "data.scale must be [low, high]"),
    ("seed=-1", "seed must be a non-negative integer"),
    ("trainer.epochs=true", "trainer.epochs must be a positive integer, got True (bool)"),
    ("trainer.optimizer=adamw", "trainer.optimizer must be one of adam, sgd, rmsprop"),
    ("trainer.save_model=maybe", "trainer.save_model must be true or false"),
    ("trainer.progress=sometimes", "trainer.progress must be auto, true or false"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every must be a positive integer"),
    ("trainer.resume=''", "trainer.resume must be true, false or the directory of the run to continue"),
    ("+trainer.lrr=0.1", "unknown key trainer.lrr (known trainer keys: amp, batch_size,"),
    ("+epochs=3", "unknown key epochs (known top-level keys:"),
])
def test_bad_values_fail_validation_with_the_key_and_an_example(cfg_of, override, message):
    cfg = cfg_of("model=hyper", override) if override.startswith("model.") else cfg_of(override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert message in str(err.value) and "Nothing was run" in str(err.value)


@pytest.mark.parametrize("args,message", [
    (["model=resnet"], "Unknown model 'resnet'"),
    (["data=imagenet"], "Unknown data 'imagenet'"),
    (["task=dance"], "Unknown task 'dance'"),
    (["-m", "model=conv,nosuch"], "Unknown model 'nosuch'"),
    (["model=hyper9_3"], "model=hyper model.z_dim=9 model.d=3"),
    (["model=hyper0_5"], "needs a positive embedding size"),
    (["logger=wandb"], "Unknown logger 'wandb'"),
])
def test_unknown_group_options_are_refused_before_hydra(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_group_choices(args)


def test_known_group_options_pass():
    check_group_choices(["-m", "model=conv,hyper5_5", "data=mnist", "trainer.lr=0.003,0.004", "seed=1"])
