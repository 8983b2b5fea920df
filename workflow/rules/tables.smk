rule tables:
    input:
        metrics_files(),
        label_metrics_files(),
    output:
        table_outputs(),
    params:
        settings=tables_settings,
    log:
        "logs/tables.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench tables --metrics-root results/metrics --out results/tables"
        " --settings {params.settings:q} > {log} 2>&1"


rule curves_figure:
    input:
        dataset_curves,
    output:
        "results/figures/operating_curves_{dataset}.png",
    params:
        tables=tables_settings,
    log:
        "logs/figures/operating_curves_{dataset}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench curves-figure --title 'Operating curves: {wildcards.dataset}'"
        " --tables {params.tables:q} --dataset {wildcards.dataset}"
        " --out {output} {input} > {log} 2>&1"


rule figure:
    # a registered paper figure (params `figures:`): per-label F1, training curves (taxonbench.figures)
    wildcard_constraints:
        figure=FIGURE_PATTERN,
    input:
        unpack(figure_inputs),
    output:
        figure="results/figures/{figure}.png",
        numbers="results/figures/{figure}.csv",
    params:
        dataset=figure_dataset,
        eval_split=EXPERIMENTS["eval_split"],
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench figure --figure {wildcards.figure} --dataset {params.dataset}"
        " --eval-split {params.eval_split} --out {output.figure} > {log} 2>&1"
