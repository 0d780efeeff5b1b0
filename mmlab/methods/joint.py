"""Joint-training baselines: every encoder and the fusion trained together on one
cross-entropy loss over the fused logits, one optimizer step per batch.

- concat: features concatenated, linear head (per-modality logits: sliced weights + b/M)
- sum:    one linear head per modality, logits summed
- film:   FiLM (Perez et al. 2018), the last modality modulated by the others
- gated:  gated fusion, every modality gated by the others (fusion_options={"gate": "one"}: the
          one-directional form of OGM-GE's code and MLA's "BiGated" description)
These are the "joint training" rows of every paper's tables.
"""
from mmlab.methods.base import Method, register


@register("concat")
class Concat(Method):
    fusion = "concat"
    description = "joint training, concatenated features, linear head"


@register("sum")
class Sum(Method):
    fusion = "sum"
    description = "joint training, per-modality linear heads summed"


@register("film")
class FiLM(Method):
    fusion = "film"
    description = "joint training, FiLM: last modality modulated by the others"


@register("gated")
class Gated(Method):
    fusion = "gated"
    description = "joint training, gated fusion (sigmoid gates from the other modalities; gate='one': one-way)"
