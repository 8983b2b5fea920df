# taxonbench: the whole pipeline. A table of contents only; helpers live in
# workflow/rules/common.smk and every step is one `taxonbench <step>` call.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/label_graph.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/leaderboard.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
