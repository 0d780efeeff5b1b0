"""The full profile on the papers' own datasets: each paper's PAPER_SCALE gives its stated
backbone, epochs, optimizer, schedule and batch, and its chapters' specs and protocols use them
for a dataset they have no stand-in spec for."""
import pytest

from mmlab.configs import GENERIC_SIZES, PaperScale, Recipe, Sizes, scale_table
from mmlab.configs.erl_mr import ERL_PAPER_SCALE, ERL_PROTOCOLS
from mmlab.configs.imbalance import IMBALANCE
from mmlab.configs.mie import MIE_PAPER_SCALE, MIE_PROTOCOLS
from mmlab.configs.mla import MLA_PAPER_SCALE, MLA_PROTOCOLS
from mmlab.configs.reconboost import RB_PAPER_SCALE, RB_PROTOCOLS
from mmlab.data import DATASETS

SCALES = {"reconboost": RB_PAPER_SCALE, "mla": MLA_PAPER_SCALE, "mie": MIE_PAPER_SCALE, "erl_mr": ERL_PAPER_SCALE}


@pytest.mark.parametrize("paper", sorted(SCALES))
def test_every_paper_dataset_has_a_loader_and_a_sourced_setting(paper):
    for name, ps in SCALES[paper].items():
        assert name in DATASETS, f"{paper}: no loader registered for {name}"
        assert ps.recipe.source and ps.epochs > 0 and ps.batch_size > 0 and ps.gpu_hours() > 0


def test_the_full_profile_on_cremad_is_each_papers_own_recipe():
    rb = RB_PROTOCOLS["paper"]
    assert rb.specs["cremad"].full == Sizes(100, batch_size=64, lr=0.01)
    r = rb.recipe("cremad", "reconboost")
    assert (r.optimizer, r.lr, r.weight_decay) == ("sgd", 0.01, 5e-4)
    assert r.method_options == {"t1": 4, "t2": 4, "lr_decay": 0.1, "lr_decay_every": 30}   # App. C.3.2
    mla = MLA_PROTOCOLS["paper"].recipe("cremad", "mla")
    assert (mla.optimizer, mla.lr, mla.momentum, mla.weight_decay, mla.lr_step) == ("sgd", 1e-3, 0.9, 1e-4, 70)
    assert MIE_PROTOCOLS["paper"].recipe("cremad", "mie").lr == 1e-2                    # MIE Sec. 4.2.3
    assert ERL_PROTOCOLS["paper"].specs["ave"].full.lr == 1e-4                           # ERL-MR Sec. 5.1
    assert ERL_PROTOCOLS["paper"].specs["uschad"].full.batch_size == 16
    # the equal budget keeps Adam 1e-3 on a paper dataset too; smoke / quick stay small
    assert MLA_PROTOCOLS["equal"].recipe("cremad", "mla").optimizer == "adam"
    assert RB_PROTOCOLS["paper"].specs["cremad"].smoke == GENERIC_SIZES["smoke"]
    assert RB_PROTOCOLS["paper"].specs["cremad"].dominated == "visual"


def test_a_stand_in_keeps_its_own_spec_and_an_unknown_name_is_refused():
    assert RB_PROTOCOLS["paper"].specs["avmnist"].full == Sizes(400)
    with pytest.raises(KeyError, match="unknown dataset 'nope'; available:"):
        IMBALANCE["nope"]


def test_gpu_hours_scale_with_epochs_samples_and_inputs():
    r = Recipe("sgd", 1e-3, source="x")
    a = PaperScale("a", "A", "ResNet-18", 100, 64, r, 1000, resnet_inputs=2.0)
    b = PaperScale("b", "B", "ResNet-18", 200, 64, r, 1000, resnet_inputs=2.0)
    assert b.gpu_hours() == pytest.approx(2 * a.gpu_hours())
    assert RB_PAPER_SCALE["ave"].gpu_hours() > RB_PAPER_SCALE["cremad"].gpu_hours()
    t = scale_table(RB_PAPER_SCALE, {"cremad": 10})
    assert t.loc["cremad", "GPU h (chapters)"] == pytest.approx(round(10 * RB_PAPER_SCALE["cremad"].gpu_hours(), 1))
